package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkS3Backup backs the same tenant up into a local storage and
// into a storage in S3 (the Versity gateway on loopback, over a directory
// of the same disk), one after the other in one run: what keeping the
// packs in object storage costs against the local disk, and how many
// objects (PUT requests) a stored item takes.
//
//	go test -run '^$' -bench BenchmarkS3Backup -benchtime 1x ./tests/
func BenchmarkS3Backup(b *testing.B) {
	items := envInts(b, "MAILVAULT_BENCH_ITEMS", "20000")[0]
	var t strings.Builder
	t.WriteString("seed: 29\nmailboxes:\n")
	for i := range 4 {
		fmt.Fprintf(&t, "  - address: user%d@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n        size: {min: 2KB, max: 6KB}\n", i, items/4)
	}
	s3 := startS3(b)
	for i := 0; i < b.N; i++ {
		sim := startGraphSim(b, t.String())
		dir := b.TempDir()
		rate := func(name string, storageArgs ...string) float64 {
			data := filepath.Join(dir, name)
			add := mailvault(b, append([]string{"storage", "add", "target", "--path", filepath.Join(data, "store"), "--unencrypted", "--data", data}, storageArgs...)...)
			if add.code != 0 {
				b.Fatalf("storage add: %s", add.stderr)
			}
			started := time.Now()
			r, res := graphBackup(b, sim, data, "--storage", "target", "--graph-content", "export")
			if res.code != 0 || r.ItemsStored != items {
				b.Fatalf("%s: exit %d, stored %d of %d: %s", name, res.code, r.ItemsStored, items, res.stderr)
			}
			return float64(items) / time.Since(started).Seconds()
		}
		local := rate("local")
		bucket := fmt.Sprintf("bench-%d", i)
		s3.makeBucket(b, bucket, true)
		remote := rate("s3", append(s3.s3Args(bucket, "mv"), "--lock-days", "1")...)
		objects := len(s3.objects(b, bucket, "mv/"))
		b.ReportMetric(local, "local-items/s")
		b.ReportMetric(remote, "s3-items/s")
		b.ReportMetric(remote/local, "s3-of-local")
		b.ReportMetric(float64(objects)/float64(items), "objects/item")
	}
}
