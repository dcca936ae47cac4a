package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkGraphBudget backs up a 20,000-message mailbox through the real
// binary against `mailvault sim graph` with scaled-down limits (600 requests
// per 5 s per app and mailbox, 4 concurrent: Exchange Online's 10,000 per
// 10 minutes, compressed in time; MAILVAULT_BENCH_WINDOW changes the window) and reports what the server saw: requests
// (budget units, each $batch sub-request counted) per stored item, the share
// answered 429, and the share of the budget used while work remained. The
// get mode is Corso's strategy, one GET per item.
//
//	go test -run '^$' -bench BenchmarkGraphBudget -benchtime 1x -timeout 30m ./tests/
func BenchmarkGraphBudget(b *testing.B) {
	const items = 20000
	window := "5s"
	if w := os.Getenv("MAILVAULT_BENCH_WINDOW"); w != "" {
		window = w
	}
	tenant := fmt.Sprintf(`seed: 9
limits: {concurrency: 4, requests: 600, window: %s}
mailboxes:
  - address: kim@contoso.test
    folders:
      - path: Inbox
        items: %d
        size: {min: 2KB, max: 6KB}
`, window, items)
	for _, mode := range []string{"export", "batch", "get"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sim := startGraphSim(b, tenant)
				data := filepath.Join(b.TempDir(), "data")
				args := []string{"--graph-content", mode, "--window-requests", "600", "--window", window, "--max-in-flight", "4"}
				if p := os.Getenv("MAILVAULT_BENCH_FOLDER_PARALLELISM"); p != "" {
					args = append(args, "--folder-parallelism", p) // 1: one request per folder at a time
				}
				r, res := graphBackup(b, sim, data, args...)
				if res.code != 0 || r.ItemsStored != items {
					b.Fatalf("exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
				}
				st := sim.stats(b)
				mb := st.Mailboxes["kim@contoso.test"]
				b.ReportMetric(float64(items)/r.DurationS, "items/s")
				b.ReportMetric(float64(st.Units)/float64(items), "requests/item")
				b.ReportMetric(float64(st.Requests)/float64(items), "http-requests/item")
				b.ReportMetric(100*float64(st.Throttled)/float64(st.Units+st.Throttled), "429-%")
				b.ReportMetric(100*mb.Utilisation, "budget-used-%")
			}
		})
	}
}
