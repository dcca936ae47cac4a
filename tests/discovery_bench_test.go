package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/adapters/badgerdb"
)

// BenchmarkGraphDiscovery backs up 200 small mailboxes through the real
// binary against `mailvault sim graph` answering every request after 20 ms,
// then runs again with nothing changed, and reports that second run: its
// time, and the budget units it spent per mailbox on discovery (what the
// server counted, less the one delta request per folder that finds nothing
// new) and in all, and what it added to the event log.
//
//	go test -run '^$' -bench BenchmarkGraphDiscovery -benchtime 1x -timeout 30m ./tests/
func BenchmarkGraphDiscovery(b *testing.B) {
	const mailboxes = 200
	var t strings.Builder
	t.WriteString("seed: 4\nlatency: 20ms\nmailboxes:\n")
	for i := 0; i < mailboxes; i++ {
		fmt.Fprintf(&t, "  - address: user%03d@contoso.test\n    folders:\n      - path: Inbox\n        items: 3\n", i)
	}
	for i := 0; i < b.N; i++ {
		sim := startGraphSim(b, t.String())
		data := filepath.Join(b.TempDir(), "data")
		first, res := graphBackup(b, sim, data, "--graph-content", "export")
		if res.code != 0 || first.ItemsStored != 3*mailboxes {
			b.Fatalf("first run: exit %d, stored %d: %s", res.code, first.ItemsStored, res.stderr)
		}
		before := sim.stats(b)
		logBefore, logApparentBefore := badgerdb.DiskUsage(filepath.Join(data, "log")), dirSize(b, filepath.Join(data, "log"))
		again, res := graphBackup(b, sim, data, "--graph-content", "export")
		if res.code != 0 || again.ItemsStored != 0 {
			b.Fatalf("no-change run: exit %d, stored %d: %s", res.code, again.ItemsStored, res.stderr)
		}
		after := sim.stats(b)
		units := after.Units - before.Units
		b.ReportMetric(again.DurationS, "no-change-run-s")
		b.ReportMetric(float64(units-again.ListRequests)/mailboxes, "discovery-units/mailbox")
		b.ReportMetric(float64(units)/mailboxes, "units/mailbox")
		b.ReportMetric(float64(again.DiscoveryRequests)/mailboxes, "discovery-units-counted/mailbox")
		b.ReportMetric(first.DurationS, "first-run-s")
		b.ReportMetric(float64(badgerdb.DiskUsage(filepath.Join(data, "log"))-logBefore)/1e3, "log-KB-added")
		b.ReportMetric(float64(dirSize(b, filepath.Join(data, "log"))-logApparentBefore)/1e3, "log-apparent-KB-added")
	}
}
