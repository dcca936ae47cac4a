package vault

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

// benchItems are 256 messages of about 64 KB: headers, a text body and a
// base64 attachment of random bytes (as real attachments are: barely
// compressible), each distinct.
func benchItems() (items [][]byte, total int64) {
	out := make([][]byte, 256)
	for i := range out {
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: A <a@contoso.test>\r\nSubject: report %d\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n\r\n", i)
		for range 40 {
			b.WriteString("Please find the quarterly figures attached; the totals are in the second table.\r\n")
		}
		b.WriteString(base64.StdEncoding.EncodeToString(randomBytes(uint64(i), 45<<10)))
		out[i] = b.Bytes()
		total += int64(b.Len())
	}
	return out, total
}

func benchVault(b *testing.B, encrypted bool) *Vault {
	var pw []byte
	if encrypted {
		pw = []byte("bench")
	}
	v, _, err := Create(b.TempDir(), CreateOptions{Password: pw, KDF: cheap})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

// go test -run '^$' -bench BenchmarkVault -benchtime 3x ./adapters/vault
func BenchmarkVaultWrite(b *testing.B) {
	items, total := benchItems()
	for _, enc := range []bool{false, true} {
		b.Run(fmt.Sprintf("encrypted=%v", enc), func(b *testing.B) {
			b.SetBytes(total)
			for n := range b.N {
				v := benchVault(b, enc)
				for i, it := range items {
					if _, err := v.Put(key("a@x", fmt.Sprint(n, "-", i), "c"), it); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkVaultSmallItems stores 5,000 distinct messages of about 2 KB
// (the size of most mail, where the cost per item, not per byte, is what
// counts), one Put per item and in fetched batches of 100 (PutBatch, one
// index commit per batch); items/s is the figure.
func BenchmarkVaultSmallItems(b *testing.B) {
	const n, batch = 5000, 100
	items := make([][]byte, n)
	for i := range items {
		items[i] = []byte(fmt.Sprintf("From: A <a@contoso.test>\r\nSubject: note %d\r\n\r\n%s\r\n", i,
			base64.StdEncoding.EncodeToString(randomBytes(uint64(i), 1500))))
	}
	for _, mode := range []string{"put", "batch"} {
		b.Run(mode, func(b *testing.B) {
			for r := range b.N {
				b.StopTimer()
				v := benchVault(b, false)
				b.StartTimer()
				for i := 0; i < n; i += batch {
					keys := make([]domain.ItemKey, 0, batch)
					for j := i; j < i+batch; j++ {
						keys = append(keys, key("a@x", fmt.Sprint(r, "-", j), "c"))
					}
					if mode == "batch" {
						if _, err := v.PutBatch(keys, items[i:i+batch]); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for j, k := range keys {
						if _, err := v.Put(k, items[i+j]); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

func BenchmarkVaultRead(b *testing.B) {
	items, total := benchItems()
	for _, enc := range []bool{false, true} {
		b.Run(fmt.Sprintf("encrypted=%v", enc), func(b *testing.B) {
			v := benchVault(b, enc)
			var vers []Version
			for i, it := range items {
				if _, err := v.Put(key("a@x", fmt.Sprint(i), "c"), it); err != nil {
					b.Fatal(err)
				}
				ver, err := v.Lookup(VersionID("graph:t", "a@x", "f1", fmt.Sprint(i), "c"))
				if err != nil {
					b.Fatal(err)
				}
				vers = append(vers, ver)
			}
			b.SetBytes(total)
			b.ResetTimer()
			for range b.N {
				for _, ver := range vers {
					if _, err := v.Read(ver); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// The same messages in three mailboxes: the ratio of item bytes to unique
// bytes, and what was written to disk per item byte.
func BenchmarkVaultDedup(b *testing.B) {
	items, _ := benchItems()
	for range b.N {
		v := benchVault(b, true)
		for _, mb := range []string{"a@x", "b@x", "c@x"} {
			for i, it := range items {
				if _, err := v.Put(key(mb, fmt.Sprint(i), "c"), it); err != nil {
					b.Fatal(err)
				}
			}
		}
		st, err := v.Stats()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(st.DedupRatio(), "dedup-ratio")
		b.ReportMetric(float64(st.Stored)/float64(st.Logical), "disk-bytes/item-byte")
	}
}

// A storage of the bench items, closed cleanly; returns its directory.
func benchStorage(b *testing.B, encrypted bool) string {
	var pw []byte
	if encrypted {
		pw = []byte("bench")
	}
	dir := b.TempDir()
	v, _, err := Create(dir, CreateOptions{Password: pw, KDF: cheap})
	if err != nil {
		b.Fatal(err)
	}
	items, _ := benchItems()
	for i, it := range items {
		if _, err := v.Put(key("a@x", fmt.Sprint(i), "c"), it); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// What checking costs: verify reading every byte (MB/s of item data), and
// repair rebuilding the index from the packs alone (items/s and MB/s).
func BenchmarkVaultVerifyAndRebuild(b *testing.B) {
	_, total := benchItems()
	for _, enc := range []bool{false, true} {
		var pw []byte
		if enc {
			pw = []byte("bench")
		}
		dir := benchStorage(b, enc)
		b.Run(fmt.Sprintf("verify-read-data/encrypted=%v", enc), func(b *testing.B) {
			b.SetBytes(total)
			for range b.N {
				v, err := OpenWith(dir, OpenOptions{Password: pw, ReadOnly: true, ForCheck: true})
				if err != nil {
					b.Fatal(err)
				}
				if res, err := v.Verify(true, func(Problem) {}); err != nil || !res.Healthy() {
					b.Fatal(res, err)
				}
				v.Close()
			}
		})
		b.Run(fmt.Sprintf("rebuild-index/encrypted=%v", enc), func(b *testing.B) {
			b.SetBytes(total)
			for range b.N {
				v, err := OpenWith(dir, OpenOptions{Password: pw, ForCheck: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := v.Repair(true, func(Version) error { return nil }); err != nil {
					b.Fatal(err)
				}
				v.Close()
			}
			b.ReportMetric(float64(256*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
