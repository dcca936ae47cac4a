package tests

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRestoreRequests restores one mailbox's messages, backed up as
// export streams, into another mailbox of `mailvault sim graph` and
// reports what the server counted per restored item (the budget units of
// the lookups, the folder making and the import posts), and items/s.
// Then the same restore again (every item is found, nothing is made), and
// one into a folder the restore makes (nothing to look for there).
//
//	go test -run '^$' -bench BenchmarkRestoreRequests -benchtime 1x ./tests/
func BenchmarkRestoreRequests(b *testing.B) {
	const items = 2000
	tenant := fmt.Sprintf(`seed: 17
limits: {concurrency: 4, requests: 100000, window: 10m}
mailboxes:
  - address: src@contoso.test
    folders:
      - path: Inbox
        items: %d
        size: {min: 1KB, max: 2KB}
  - address: dst@contoso.test
    folders:
      - path: Inbox
        items: 1
`, items)
	for i := 0; i < b.N; i++ {
		sim := startGraphSim(b, tenant)
		data := filepath.Join(b.TempDir(), "data")
		_, res := graphBackup(b, sim, data, "--mailbox", "src@contoso.test", "--graph-content", "export")
		if res.code != 0 {
			b.Fatalf("backup: %s", res.stderr)
		}
		run := func(args ...string) result { return mailvault(b, append(args, "--data", data)...) }
		if c := run(sim.connectionArgs()...); c.code != 0 {
			b.Fatalf("connection add: %s", c.stderr)
		}
		restore := func(into ...string) (restoreReport, float64, time.Duration) {
			before := sim.stats(b)
			start := time.Now()
			rep := restoreJSON(b, run(append([]string{"restore", "--storage", filepath.Join(data, "storage"), "--to", "online", "--mailbox", "src@contoso.test",
				"--target-mailbox", "dst@contoso.test", "--format", "json"}, into...)...))
			took := time.Since(start)
			after := sim.stats(b)
			return rep, float64(after.Units - before.Units), took
		}
		rep, units, took := restore()
		if rep.Created != items || rep.Failed != 0 {
			b.Fatalf("restore: %+v", rep)
		}
		b.ReportMetric(units/items, "units/item")
		b.ReportMetric(items/took.Seconds(), "items/s")
		rep, units, _ = restore()
		if rep.Skipped != items || rep.Created != 0 {
			b.Fatalf("the same restore again: %+v", rep)
		}
		b.ReportMetric(units/items, "units/item-again")
		// Into a folder the restore makes: nothing there to look for.
		rep, units, took = restore("--into-folder", "Restored")
		if rep.Created != items || rep.Failed != 0 {
			b.Fatalf("restore into a new folder: %+v", rep)
		}
		b.ReportMetric(units/items, "units/item-new-folder")
		b.ReportMetric(items/took.Seconds(), "items/s-new-folder")
	}
}
