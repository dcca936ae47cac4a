package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkAdaptivePace backs up mailboxes through the real binary against
// `mailvault sim graph` whose limits mailvault is not told (it runs on its
// defaults, Exchange Online's documented 10,000 per 10 minutes), and
// reports what the server saw: the share of its answers that were 429,
// and the share of the capacity it granted that was used while work
// remained (per mailbox, averaged; the tenant's for a tenant-wide limit).
// A second run, a full backup into another storage, shows what the paces
// learned by the first are worth. Cases: 1, 10 and 100 mailboxes under fixed per-mailbox limits; the same
// with the capacity halved for 30 s in the middle of the run; 10
// mailboxes under a tenant-wide limit of half their sum.
//
//	go test -run '^$' -bench BenchmarkAdaptivePace -benchtime 1x -timeout 60m ./tests/
func BenchmarkAdaptivePace(b *testing.B) {
	for _, c := range []struct {
		name      string
		mailboxes int
		items     int    // per mailbox
		limits    string // per mailbox
		extra     string
	}{
		{"mailboxes=1", 1, 8000, "{concurrency: 4, requests: 50, window: 5s}", ""},
		{"mailboxes=1/halved", 1, 8000, "{concurrency: 4, requests: 50, window: 5s}", "load: [{at: 15s, for: 30s, capacity: 0.5}]\n"},
		{"mailboxes=10", 10, 4000, "{concurrency: 4, requests: 50, window: 5s}", ""},
		{"mailboxes=10/halved", 10, 4000, "{concurrency: 4, requests: 50, window: 5s}", "load: [{at: 10s, for: 30s, capacity: 0.5}]\n"},
		{"mailboxes=10/tenant-wide", 10, 4000, "{concurrency: 4, requests: 50, window: 5s}", "global: {concurrency: 40, requests: 250, window: 5s}\n"},
		{"mailboxes=100", 100, 600, "{concurrency: 4, requests: 10, window: 5s}", ""},
		{"mailboxes=100/halved", 100, 600, "{concurrency: 4, requests: 10, window: 5s}", "load: [{at: 10s, for: 30s, capacity: 0.5}]\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var t strings.Builder
			fmt.Fprintf(&t, "seed: 13\nlimits: %s\n%smailboxes:\n", c.limits, c.extra)
			for i := 0; i < c.mailboxes; i++ {
				fmt.Fprintf(&t, "  - address: user%03d@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n        size: {min: 1KB, max: 2KB}\n", i, c.items)
			}
			for i := 0; i < b.N; i++ {
				sim := startGraphSim(b, t.String())
				data := filepath.Join(b.TempDir(), "data")
				r, res := graphBackup(b, sim, data, "--graph-content", "export")
				if res.code != 0 || r.ItemsStored != c.mailboxes*c.items {
					b.Fatalf("exit %d, stored %d of %d: %s", res.code, r.ItemsStored, c.mailboxes*c.items, res.stderr)
				}
				st := sim.stats(b)
				used, n := 0.0, 0
				for _, m := range st.Mailboxes {
					if m.Utilisation >= 0 {
						used += m.Utilisation
						n++
					}
				}
				if strings.Contains(c.extra, "global") {
					used, n = st.AppUtilisation, 1
				}
				b.ReportMetric(100*float64(st.Throttled)/float64(st.Units+st.Throttled), "429-%")
				b.ReportMetric(100*used/float64(max(n, 1)), "capacity-used-%")
				b.ReportMetric(float64(r.ItemsStored)/r.DurationS, "items/s")
				b.ReportMetric(float64(st.Throttled), "429s")

				// The next run (a full backup into another storage, once the
				// server's window is clear) starts from the paces learned.
				time.Sleep(6 * time.Second)
				again, res := graphBackup(b, sim, data, "--graph-content", "export", "--storage", filepath.Join(b.TempDir(), "second"))
				if res.code != 0 || again.ItemsStored != c.mailboxes*c.items {
					b.Fatalf("second run: exit %d, stored %d: %s", res.code, again.ItemsStored, res.stderr)
				}
				st2 := sim.stats(b)
				b.ReportMetric(100*float64(st2.Throttled-st.Throttled)/float64(st2.Units-st.Units+st2.Throttled-st.Throttled), "429-%-next-run")
				b.ReportMetric(float64(again.ItemsStored)/again.DurationS, "items/s-next-run")
			}
		})
	}
}
