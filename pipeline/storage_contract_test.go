package pipeline_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// The storage contract: what the pipeline relies on from its Storage port
// (and the VersionChecker and DeletionRecorder it asks for), run against
// every variant of every implementation, including one reopened from its
// recovery key mid-way. A new backend (S3, issue 18) joins the table.

type contractStorage interface {
	pipeline.Storage
	pipeline.BatchStorage
	pipeline.VersionChecker
	pipeline.DeletionRecorder
}

type storageVariant struct {
	name string
	// open returns the storage and a function that closes it and opens it
	// again the way the variant says (persistence across processes).
	open func(t *testing.T) (contractStorage, func() contractStorage)
}

var cheapKDF = &vault.KDF{Time: 1, MemoryKiB: 1024, Threads: 1}

func vaultVariant(name string, o vault.CreateOptions, reopen func(dir, recoveryKey string) (*vault.Vault, error)) storageVariant {
	return storageVariant{name: name, open: func(t *testing.T) (contractStorage, func() contractStorage) {
		dir := t.TempDir()
		o.KDF = cheapKDF
		v, rk, err := vault.Create(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		current := v
		t.Cleanup(func() { current.Close() })
		return v, func() contractStorage {
			if err := current.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			nv, err := reopen(dir, rk)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			current = nv
			return nv
		}
	}}
}

var storageVariants = []storageVariant{
	vaultVariant("vault", vault.CreateOptions{}, func(dir, _ string) (*vault.Vault, error) { return vault.Open(dir, nil) }),
	vaultVariant("vault, uncompressed", vault.CreateOptions{NoCompression: true}, func(dir, _ string) (*vault.Vault, error) { return vault.Open(dir, nil) }),
	vaultVariant("vault, encrypted", vault.CreateOptions{Password: []byte("pw")}, func(dir, _ string) (*vault.Vault, error) { return vault.Open(dir, []byte("pw")) }),
	vaultVariant("vault, encrypted, reopened from its recovery key", vault.CreateOptions{Password: []byte("pw")},
		func(dir, rk string) (*vault.Vault, error) { return vault.OpenWithRecoveryKey(dir, rk) }),
}

func contractKey(item, changeKey string) domain.ItemKey {
	return domain.ItemKey{Source: "graph:tenant", Mailbox: "ann@contoso.test", FolderPath: "Inbox", FolderID: "f1",
		ItemID: item, ChangeKey: changeKey, Kind: "mail", Format: domain.FormatMIME, Time: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
}

func contractContent(n int) []byte {
	return []byte(fmt.Sprintf("From: a@contoso.test\r\nSubject: item %d\r\n\r\n%0200d\r\n", n, n))
}

func TestStorageContract(t *testing.T) {
	for _, variant := range storageVariants {
		t.Run(variant.name, func(t *testing.T) {
			s, reopen := variant.open(t)

			// A new version is stored and described.
			content := contractContent(1)
			res, err := s.Put(contractKey("i1", "ck1"), content)
			sum := sha256.Sum256(content)
			if err != nil || res.Existed || res.Size != int64(len(content)) || res.SHA256 != hex.EncodeToString(sum[:]) || res.NewBytes <= 0 {
				t.Fatalf("first put: %+v, %v", res, err)
			}
			// The storage, not a log, says what it holds.
			for key, want := range map[domain.ItemKey]bool{
				contractKey("i1", "ck1"): true,
				contractKey("i1", "ck2"): false, // another version of the item
				contractKey("i2", "ck1"): false,
			} {
				if has, err := s.Has(key); err != nil || has != want {
					t.Fatalf("Has(%s/%s) = %v, %v; want %v", key.ItemID, key.ChangeKey, has, err, want)
				}
			}
			// The same version again is not stored twice.
			if res, err := s.Put(contractKey("i1", "ck1"), content); err != nil || !res.Existed || res.NewBytes != 0 {
				t.Fatalf("second put of the same version: %+v, %v", res, err)
			}
			// The same content under another item costs nothing new.
			if res, err := s.Put(contractKey("i9", "ck1"), content); err != nil || res.Existed || res.NewBytes != 0 {
				t.Fatalf("same content, another item: %+v, %v; want stored with no new bytes", res, err)
			}

			// Concurrent puts of one version: exactly one stores it.
			var mu sync.Mutex
			stored := 0
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := s.Put(contractKey("i3", "ck1"), contractContent(3))
					if err != nil {
						t.Error(err)
						return
					}
					if !res.Existed {
						mu.Lock()
						stored++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if stored != 1 {
				t.Fatalf("8 concurrent puts of one version stored it %d times, want once", stored)
			}

			// A fetched batch in one commit: results in the order given;
			// what is stored already, and a version given twice, are
			// stored once; shared content costs its bytes once.
			shared := contractContent(40)
			batch := []domain.ItemKey{contractKey("b1", "ck1"), contractKey("i1", "ck1"), contractKey("b2", "ck1"), contractKey("b1", "ck1"), contractKey("b3", "ck1")}
			contents := [][]byte{contractContent(41), content, shared, contractContent(41), shared}
			puts, err := s.PutBatch(batch, contents)
			if err != nil || len(puts) != len(batch) {
				t.Fatalf("batch: %d results, %v", len(puts), err)
			}
			for i, want := range []bool{false, true, false, true, false} {
				sum := sha256.Sum256(contents[i])
				if puts[i].Existed != want || puts[i].SHA256 != hex.EncodeToString(sum[:]) || puts[i].Size != int64(len(contents[i])) {
					t.Fatalf("batch item %d: %+v, want existed %v", i, puts[i], want)
				}
			}
			if puts[0].NewBytes <= 0 || puts[2].NewBytes <= 0 || puts[4].NewBytes != 0 || puts[1].NewBytes != 0 {
				t.Fatalf("batch new bytes: %+v", puts)
			}
			for _, key := range batch {
				if has, err := s.Has(key); err != nil || !has {
					t.Fatalf("after the batch, Has(%s) = %v, %v", key.ItemID, has, err)
				}
			}

			if err := s.MarkDeleted(contractKey("i9", "ck1"), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatalf("mark deleted: %v", err)
			}

			// What was stored is there after the storage is closed and
			// opened again, and stays out of reach of a second put.
			s = reopen()
			for _, key := range []domain.ItemKey{contractKey("i1", "ck1"), contractKey("i3", "ck1"), contractKey("i9", "ck1"), contractKey("b3", "ck1")} {
				if has, err := s.Has(key); err != nil || !has {
					t.Fatalf("after reopening, Has(%s) = %v, %v", key.ItemID, has, err)
				}
			}
			if res, err := s.Put(contractKey("i1", "ck1"), content); err != nil || !res.Existed {
				t.Fatalf("after reopening, the stored version was stored again: %+v, %v", res, err)
			}
			if res, err := s.Put(contractKey("i1", "ck2"), contractContent(2)); err != nil || res.Existed || res.NewBytes <= 0 {
				t.Fatalf("after reopening, a new version: %+v, %v", res, err)
			}
		})
	}
}
