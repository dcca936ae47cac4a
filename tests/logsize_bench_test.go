package tests

import (
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvault/adapters/badgerdb"
)

// BenchmarkLogBytesPerItem backs up a 20,000-message mailbox (1-3 KB each)
// from a tenant file through the real binary and reports the event log's
// size on disk per stored item, in blocks and in file lengths (every file of DATA/log: records, indexes,
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
		logDir := filepath.Join(data, "log")
		first, firstApparent := badgerdb.DiskUsage(logDir), dirSize(b, logDir)
		if _, res := backup(b, data, tenant); res.code != 0 {
			b.Fatalf("second run: exit %d: %s", res.code, res.stderr)
		}
		second, secondApparent := badgerdb.DiskUsage(logDir), dirSize(b, logDir)
		// On disk: the blocks the files take (Badger's DISCARD file is 1 MiB
		// long and sparse, 4 KiB on disk); apparent: their lengths.
		b.ReportMetric(float64(first)/items, "log-bytes/item")
		b.ReportMetric(float64(second-first)/items, "log-bytes/item-seen-again")
		b.ReportMetric(float64(firstApparent)/items, "log-apparent-bytes/item")
		b.ReportMetric(float64(secondApparent-firstApparent)/items, "log-apparent-bytes/item-seen-again")
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
