package tests

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// BenchmarkLogBytesPerItem backs up a 20,000-message mailbox (1-3 KB each)
// from a tenant file through the real binary and reports the event log's
// size on disk per stored item (every file of DATA/log: records, indexes,
// the resume state, Badger's own files), then what a second run of the
// same mailbox adds (the in-process source has no change tracking, so the
// run reads every item again and records each as unchanged).
//
//	go test -run '^$' -bench BenchmarkLogBytesPerItem -benchtime 1x ./tests/
func BenchmarkLogBytesPerItem(b *testing.B) {
	const items = 20000
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		tenant := writeTenant(b, dir, "seed: 2\nmailboxes:\n  - address: ann@contoso.test\n    folders:\n      - path: Inbox\n        items: 20000\n        size: {min: 1KB, max: 3KB}\n")
		data := filepath.Join(dir, "data")
		r, res := backup(b, data, tenant)
		if res.code != 0 || r.ItemsStored != items {
			b.Fatalf("exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
		}
		first := dirSize(b, filepath.Join(data, "log"))
		if _, res := backup(b, data, tenant); res.code != 0 {
			b.Fatalf("second run: exit %d: %s", res.code, res.stderr)
		}
		second := dirSize(b, filepath.Join(data, "log"))
		b.ReportMetric(float64(first)/items, "log-bytes/item")
		b.ReportMetric(float64(second-first)/items, "log-bytes/item-seen-again")
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
