package vault

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

var cheap = &KDF{Time: 1, MemoryKiB: 1024, Threads: 1}

func message(seed uint64, attachment []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: A <a@contoso.test>\r\nSubject: note %d\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n\r\n", seed)
	b.Write(attachment)
	return b.Bytes()
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func key(mb, item, ck string) domain.ItemKey {
	return domain.ItemKey{Source: "graph:t", Mailbox: mb, FolderPath: "Inbox", FolderID: "f1", ItemID: item, ChangeKey: ck, Kind: "mail", Format: domain.FormatMIME}
}

func TestPutReadDedupAndEncryption(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprint("encrypted=", encrypted), func(t *testing.T) {
			dir := t.TempDir()
			var pw []byte
			if encrypted {
				pw = []byte("correct horse")
			}
			v, rk, err := Create(dir, CreateOptions{Password: pw, KDF: cheap})
			if err != nil {
				t.Fatal(err)
			}
			if encrypted == (rk == "") {
				t.Fatalf("recovery key %q", rk)
			}
			shared := randomBytes(1, 200<<10) // an attachment in every mailbox
			var logical int64
			for _, mb := range []string{"a@x", "b@x", "c@x"} {
				for i := range 5 {
					content := message(uint64(i), shared)
					r, err := v.Put(key(mb, fmt.Sprint("i", i), "c1"), content)
					if err != nil || r.Existed {
						t.Fatal(r, err)
					}
					logical += int64(len(content))
					again, err := v.Put(key(mb, fmt.Sprint("i", i), "c1"), content)
					if err != nil || !again.Existed || again.SHA256 != r.SHA256 {
						t.Fatal(again, err)
					}
				}
			}
			st, err := v.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Versions != 15 || st.Logical != logical || st.DedupRatio() < 3 {
				t.Fatalf("stats %+v ratio %.1f", st, st.DedupRatio())
			}
			ver, err := v.Lookup(VersionID("graph:t", "b@x", "f1", "i3", "c1"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Read(ver)
			if err != nil || !bytes.Equal(got, message(3, shared)) || ver.Subject != "note 3" {
				t.Fatalf("read back %d bytes, subject %q: %v", len(got), ver.Subject, err)
			}
			// Contents are not in the files in the clear when encrypted.
			leaked := false
			filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					b, _ := os.ReadFile(p)
					leaked = leaked || bytes.Contains(b, []byte("note 3")) || bytes.Contains(b, shared[:64])
				}
				return nil
			})
			if encrypted && leaked {
				t.Fatal("plain content found in an encrypted storage")
			}
			v.Close()
			if encrypted {
				if _, err := Open(dir, []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
					t.Fatalf("wrong password: %v", err)
				}
				if _, err := Open(dir, nil); !errors.Is(err, ErrPasswordRequired) {
					t.Fatalf("no password: %v", err)
				}
				v2, err := OpenWithRecoveryKey(dir, strings.ToLower(rk))
				if err != nil {
					t.Fatal(err)
				}
				if err := v2.ChangePassword(pw, []byte("new one")); err != nil {
					t.Fatal(err)
				}
				v2.Close()
				if _, err := Open(dir, pw); !errors.Is(err, ErrWrongPassword) {
					t.Fatalf("old password after change: %v", err)
				}
				pw = []byte("new one")
			}
			v, err = Open(dir, pw)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if got, err := v.Read(ver); err != nil || !bytes.Equal(got, message(3, shared)) {
				t.Fatalf("after reopen: %v", err)
			}
		})
	}
}

func TestVerifyNamesTheDamagedItem(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprint("encrypted=", encrypted), func(t *testing.T) {
			dir := t.TempDir()
			var pw []byte
			if encrypted {
				pw = []byte("pw")
			}
			v, _, err := Create(dir, CreateOptions{Password: pw, KDF: cheap})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			for i := range 20 {
				if _, err := v.Put(key("a@x", fmt.Sprint("i", i), "c1"), message(uint64(i), randomBytes(uint64(i), 3000))); err != nil {
					t.Fatal(err)
				}
			}
			var problems []Problem
			collect := func(p Problem) { problems = append(problems, p) }
			if res, err := v.Verify(true, collect); err != nil || len(problems) != 0 || res.Versions != 20 || res.ChunksRead != 20 {
				t.Fatalf("clean storage: %+v %v %v", res, problems, err)
			}
			victim, _ := v.Lookup(VersionID("graph:t", "a@x", "f1", "i7", "c1"))
			rec, _, _ := v.chunk(victim.Chunks[0])
			path := v.packPath(rec.Pack)
			b, _ := os.ReadFile(path)
			b[rec.Offset+rec.Length/2] ^= 0x01
			os.WriteFile(path, b, 0o600)
			// Without --read-data the file is there, so only reading finds it.
			if res, _ := v.Verify(false, collect); res.DamagedItems != 0 || len(problems) != 0 {
				t.Fatalf("index-only check read data: %+v", problems)
			}
			res, err := v.Verify(true, collect)
			if err != nil || res.DamagedItems != 1 || res.DamagedChunks != 1 {
				t.Fatalf("%+v %v", res, err)
			}
			var item, chunk *Problem
			for i, p := range problems {
				switch {
				case p.Item != nil:
					item = &problems[i]
				case p.Chunk != "":
					chunk = &problems[i]
				}
			}
			if item == nil || item.Item.ItemID != "i7" || !item.Lost || chunk == nil || !strings.Contains(chunk.Problem, "affects 1") {
				t.Fatalf("problems %+v", problems)
			}
			if _, err := v.Read(victim); !errors.Is(err, ErrDamaged) {
				t.Fatalf("read of damaged item: %v", err)
			}
			v.closePack()
			os.Remove(path) // the one pack: every item is lost
			problems = nil
			if res, _ := v.Verify(false, collect); res.DamagedItems != 20 || !strings.Contains(problems[0].Problem, "missing") {
				t.Fatalf("missing file: %+v", problems)
			}
		})
	}
}

func TestPruneFollowsRetention(t *testing.T) {
	dir := t.TempDir()
	v, _, err := Create(dir, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	shared := randomBytes(9, 40<<10)
	for i, ck := range []string{"c1", "c2", "c3", "c4"} {
		if _, err := v.Put(key("a@x", "kept", ck), message(uint64(i), randomBytes(uint64(i+100), 40<<10))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct stored-at times; not a timing assertion
	}
	if _, err := v.Put(key("a@x", "gone", "c1"), message(50, shared)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(key("a@x", "other", "c1"), message(51, shared)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := v.MarkDeleted(key("a@x", "gone", ""), now.AddDate(0, -2, 0)); err != nil {
		t.Fatal(err)
	}
	month := domain.Period{N: 1, Unit: "months"}
	if err := v.SetRetention(domain.Retention{KeepVersions: 2, KeepDeletedFor: &month}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	record := func(p Pruned) error {
		seen = append(seen, p.Version.ItemID+"/"+p.Version.ChangeKey+":"+p.Reason)
		return nil
	}
	dry, err := v.Prune(now, true, record)
	if err != nil || dry.Versions != 3 {
		t.Fatalf("dry run %+v %v %v", dry, seen, err)
	}
	if st, _ := v.Stats(); st.Versions != 6 {
		t.Fatalf("dry run changed the storage: %+v", st)
	}
	seen = nil
	res, err := v.Prune(now, false, record)
	if err != nil || res.Versions != 3 || res.FreedChunks < 2 {
		t.Fatalf("prune %+v %v", res, err)
	}
	want := "gone/c1:deleted_at_source kept/c1:older_version kept/c2:older_version"
	if strings.Join(seen, " ") != want {
		t.Fatalf("pruned %v", seen)
	}
	var problems []Problem
	if _, err := v.Verify(true, func(p Problem) { problems = append(problems, p) }); err != nil || len(problems) != 0 {
		t.Fatalf("after prune: %v %v", problems, err)
	}
	// The shared chunk is still there for "other".
	other, err := v.Lookup(VersionID("graph:t", "a@x", "f1", "other", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(other); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPutsOfSharedContent(t *testing.T) {
	v, _, err := Create(t.TempDir(), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	content := message(1, randomBytes(5, 100<<10))
	var wg sync.WaitGroup
	var newBytes sync.Map
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := v.Put(key(fmt.Sprint("m", i), "x", "c"), content)
			if err != nil {
				t.Error(err)
			}
			newBytes.Store(i, r.NewBytes)
		}()
	}
	wg.Wait()
	var total int64
	newBytes.Range(func(_, v any) bool { total += v.(int64); return true })
	st, _ := v.Stats()
	if st.Versions != 16 || total != st.Stored {
		t.Fatalf("%+v, new bytes reported %d", st, total)
	}
	var problems []Problem
	if _, err := v.Verify(true, func(p Problem) { problems = append(problems, p) }); len(problems) != 0 || err != nil {
		t.Fatal(problems, err)
	}
}

func TestSettingsDamageAndForeignDirs(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, nil); !errors.Is(err, ErrNotVault) {
		t.Fatal(err)
	}
	v, _, err := Create(dir, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Create(dir, CreateOptions{}); err == nil {
		t.Fatal("created over an existing storage")
	}
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	v.Close()
	// One damaged copy of the settings loses nothing: the other opens the
	// storage, verify names the damage, repair writes it again.
	os.WriteFile(filepath.Join(dir, configFile), []byte("{not json"), 0o600)
	v, err = OpenWith(dir, OpenOptions{ForCheck: true})
	if err != nil || len(v.Health().Settings) != 1 || !strings.Contains(v.Health().Settings[0], "vault.json is damaged") {
		t.Fatalf("open with a damaged vault.json: %v %v", err, v.Health())
	}
	if res, _ := v.Verify(false, func(Problem) {}); !res.SettingsDamaged || res.Healthy() {
		t.Fatalf("verify: %+v", res)
	}
	if res, err := v.Repair(false, func(Version) error { return nil }); err != nil || !res.SettingsRewritten {
		t.Fatalf("repair: %+v %v", res, err)
	}
	v.Close()
	if _, problems, _, err := readSettings(dir); err != nil || len(problems) != 0 {
		t.Fatalf("after repair: %v %v", problems, err)
	}
	// A copy missing beside a whole one is a write that a kill stopped
	// between the two (at creation, or a password change): verify names
	// it, and the next writer finishes the write.
	os.Remove(filepath.Join(dir, configFile))
	if v, err = OpenWith(dir, OpenOptions{ForCheck: true, ReadOnly: true}); err != nil || len(v.Health().Settings) != 1 {
		t.Fatalf("a check with vault.json missing: %v %v", err, v.Health())
	}
	v.Close()
	if _, err := os.Stat(filepath.Join(dir, configFile)); !os.IsNotExist(err) {
		t.Fatalf("a check wrote the settings: %v", err)
	}
	if v, err = Open(dir, nil); err != nil || len(v.Health().Settings) != 0 {
		t.Fatalf("a writer with vault.json missing: %v %v", err, v.Health())
	}
	v.Close()
	if _, problems, interrupted, err := readSettings(dir); err != nil || len(problems) != 0 || interrupted {
		t.Fatalf("after a writer opened: %v %v %v", problems, interrupted, err)
	}
	// A flipped digit is caught by the checksum.
	b, _ := os.ReadFile(filepath.Join(dir, configCopy))
	b[bytes.Index(b, []byte(`"min_size": `))+12] ^= 0x01
	os.WriteFile(filepath.Join(dir, configCopy), b, 0o600)
	if _, problems, _, err := readSettings(dir); err != nil || len(problems) != 1 || !strings.Contains(problems[0], "checksum") {
		t.Fatalf("flipped digit in the copy: %v %v", problems, err)
	}
	os.WriteFile(filepath.Join(dir, configFile), []byte("{not json"), 0o600)
	if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "damaged in both copies") {
		t.Fatal(err)
	}
}

// Prune gives the space back: a pack left mostly dead is rewritten with its
// live chunks, and what remains reads back and verifies.
func TestPruneRepacks(t *testing.T) {
	dir := t.TempDir()
	v, _, err := Create(dir, CreateOptions{Password: []byte("pw"), KDF: cheap})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		// Old versions are three times the size of new ones: pruning them
		// leaves the pack a quarter alive, well under the repack threshold
		// whatever the chunk boundaries.
		for _, ck := range []string{"old", "new"} {
			size := 30 << 10
			if ck == "old" {
				size = 90 << 10
			}
			if _, err := v.Put(key("a@x", fmt.Sprint("i", i), ck), message(uint64(i), randomBytes(uint64(i)<<8|uint64(ck[0]), size))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // distinct stored-at times; not a timing assertion
		}
	}
	v.Close()
	v, err = Open(dir, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.SetRetention(domain.Retention{KeepVersions: 1}); err != nil {
		t.Fatal(err)
	}
	var before int64
	v.eachPackFile(func(_ string, size int64) error { before += size; return nil })
	res, err := v.Prune(time.Now(), false, func(Pruned) error { return nil })
	if err != nil || res.Versions != 30 || res.Unreferenced != 1 || res.ReclaimedBytes < before/2 {
		t.Fatalf("prune %+v of %d bytes: %v", res, before, err)
	}
	var after int64
	v.eachPackFile(func(_ string, size int64) error { after += size; return nil })
	if after >= before/2 {
		t.Fatalf("packs hold %d bytes after prune, %d before", after, before)
	}
	var problems []Problem
	if r, err := v.Verify(true, func(p Problem) { problems = append(problems, p) }); err != nil || len(problems) != 0 || r.Versions != 30 {
		t.Fatalf("after repack: %+v %v %v", r, problems, err)
	}
}

// Versions lists one item's versions, oldest first, and nothing of an
// item whose id begins like it.
func TestVersionsOfOneItem(t *testing.T) {
	v, _, err := Create(t.TempDir(), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i, k := range []domain.ItemKey{key("a@x", "item", "c2"), key("a@x", "item", "c1"), key("a@x", "item2", "c1"), key("b@x", "item", "c1")} {
		if _, err := v.Put(k, message(uint64(i), nil)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct stored-at times; not a timing assertion
	}
	var first Version
	if err := v.Walk("a@x", func(ver Version) error {
		if ver.ItemID == "item" && ver.ChangeKey == "c1" {
			first = ver
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := v.Versions(first)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ChangeKey != "c2" || got[1].ChangeKey != "c1" {
		t.Fatalf("versions of a@x/item: %+v", got)
	}
}
