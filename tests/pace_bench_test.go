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
// mailboxes with twice the work, so that the capacity comes back while a
// third of it remains; 10 mailboxes under a tenant-wide limit of half
// their sum.
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
		// The capacity comes back while work remains (the case above ends
		// within the halving): what it measures is the climb back.
		{"mailboxes=10/halved-and-back", 10, 8000, "{concurrency: 4, requests: 50, window: 5s}", "load: [{at: 10s, for: 30s, capacity: 0.5}]\n"},
		{"mailboxes=10/tenant-wide", 10, 4000, "{concurrency: 4, requests: 50, window: 5s}", "global: {concurrency: 40, requests: 250, window: 5s}\n"},
		{"mailboxes=100", 100, 600, "{concurrency: 4, requests: 10, window: 5s}", ""},
		{"mailboxes=100/halved", 100, 600, "{concurrency: 4, requests: 10, window: 5s}", "load: [{at: 10s, for: 30s, capacity: 0.5}]\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var t strings.Builder
			// The simulator makes its export streams before the run
			// (graph.streams_ahead), so that the cores it shares with
			// mailvault carry only what a server's network would: its own
			// CPU would otherwise slow its replies, which the pacing reads
			// as the server's load.
			fmt.Fprintf(&t, "seed: 13\ngraph: {streams_ahead: true}\nlimits: %s\n%smailboxes:\n", c.limits, c.extra)
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

// BenchmarkEWSPace backs up one mailbox through the real binary against
// `mailvault sim ews` under Exchange Server's throttling budget (10
// requests a second of recharge, micro-delays in debt, a minute of
// ErrorServerBusy at the cutoff), which mailvault is not told, and reports
// the penalties after the first and the share of the recharge used after
// the first penalty; then a second run (another storage) from the pace the
// first learned. Cases: fixed capacity, and the capacity halved for 30 s
// after the first penalty.
//
//	go test -run '^$' -bench BenchmarkEWSPace -benchtime 1x -timeout 30m ./tests/
func BenchmarkEWSPace(b *testing.B) {
	const budget = "{recharge: 10, burst: 50, cutoff: 100, max_delay: 200ms, penalty: 60s}"
	for _, c := range []struct{ name, extra string }{
		{"fixed", ""},
		{"halved", "load: [{at: 75s, for: 30s, capacity: 0.5}]\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sim := startEWSSim(b, ewsBudgetTenant(budget, c.extra, 6000))
				data := filepath.Join(b.TempDir(), "data")
				r, res := sim.backup(b, data, "--mailbox", "sam@contoso.test", "--ews-batch", "10")
				if res.code != 0 || r.ItemsStored != 6000 {
					b.Fatalf("exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
				}
				st := sim.stats(b)
				m := st.Mailboxes["sam@contoso.test"]
				b.ReportMetric(float64(st.Penalties-1), "penalties-after-first")
				b.ReportMetric(100*m.Utilisation, "capacity-used-%")
				b.ReportMetric(r.DurationS, "run-s")

				again, res := sim.backup(b, data, "--mailbox", "sam@contoso.test", "--ews-batch", "10", "--storage", filepath.Join(b.TempDir(), "second"))
				if res.code != 0 || again.ItemsStored != 6000 {
					b.Fatalf("next run: exit %d, stored %d: %s", res.code, again.ItemsStored, res.stderr)
				}
				st2 := sim.stats(b)
				requests := st2.Mailboxes["sam@contoso.test"].Requests - m.Requests
				b.ReportMetric(float64(st2.Penalties-st.Penalties), "penalties-next-run")
				b.ReportMetric(100*float64(requests)/(10*again.DurationS), "capacity-used-%-next-run")
				b.ReportMetric(again.DurationS, "next-run-s")
			}
		})
	}
}
