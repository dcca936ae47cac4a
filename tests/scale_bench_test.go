package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sourcegraph/conc/pool"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/connect"
)

// BenchmarkGraphScale backs up N mailboxes of M messages (2-6 KB) through
// the real binary against `mailvault sim graph` in export mode, and, in
// the same run against the same simulator, a ceiling: a minimal client
// that does the same wire work (mailvault's own Graph client: folder tree,
// delta listing, exportItems with base64 decoding, as many requests in
// flight) and keeps nothing. items/s of both and their ratio are reported,
// and CPU seconds per 1,000 items of the backup process.
//
//	go test -run '^$' -bench BenchmarkGraphScale -benchtime 1x -timeout 60m ./tests/
//
// MAILVAULT_BENCH_MAILBOXES (default 10,200) and MAILVAULT_BENCH_ITEMS
// (messages per mailbox, default 500) change the sizes.
func BenchmarkGraphScale(b *testing.B) {
	sizes := envInts(b, "MAILVAULT_BENCH_MAILBOXES", "10,200")
	items := envInts(b, "MAILVAULT_BENCH_ITEMS", "500")[0]
	for _, mailboxes := range sizes {
		b.Run(fmt.Sprintf("mailboxes=%d", mailboxes), func(b *testing.B) {
			var t strings.Builder
			t.WriteString("seed: 6\nmailboxes:\n")
			for i := 0; i < mailboxes; i++ {
				fmt.Fprintf(&t, "  - address: user%04d@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n        size: {min: 2KB, max: 6KB}\n", i, items)
			}
			total := mailboxes * items
			for i := 0; i < b.N; i++ {
				sim := startGraphSim(b, t.String())
				ceiling := ceilingItemsPerSecond(b, sim, total)
				data := filepath.Join(b.TempDir(), "data")
				started := time.Now()
				r, res := graphBackup(b, sim, data, "--graph-content", "export")
				if res.code != 0 || r.ItemsStored != total {
					b.Fatalf("exit %d, stored %d of %d: %s", res.code, r.ItemsStored, total, res.stderr)
				}
				rate := float64(total) / time.Since(started).Seconds()
				b.ReportMetric(rate, "items/s")
				b.ReportMetric(ceiling, "ceiling-items/s")
				b.ReportMetric(rate/ceiling, "of-ceiling")
				b.ReportMetric(1000*res.cpu.Seconds()/float64(total), "cpu-s/1000-items")
				b.ReportMetric(float64(res.maxRSS)/(1<<20), "peak-rss-MB")
			}
		})
	}
}

// ceilingItemsPerSecond reads every item of the simulator's tenant as a
// backup would, with nothing stored or recorded.
func ceilingItemsPerSecond(b *testing.B, sim *graphSim, want int) float64 {
	ctx := context.Background()
	src, err := connect.GraphSource(ctx, zerolog.Nop(), connect.GraphSettings{TenantID: sim.TenantID, ClientID: sim.ClientID,
		Secret: credential.New(sim.ClientSecret), GraphURL: sim.GraphURL, BetaURL: sim.BetaURL, TokenURL: sim.TokenURL, CACert: sim.CACert,
		Content: map[string]string{domain.KindMail: "export", domain.KindCalendar: "export", domain.KindContacts: "export"}})
	if err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	mbxs, err := src.Mailboxes(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	// As many requests in flight as mailvault's default (16 workers).
	p := pool.New().WithErrors().WithMaxGoroutines(16)
	for _, m := range mbxs {
		p.Go(func() error {
			folders, err := src.Folders(ctx, m)
			if err != nil {
				return err
			}
			for _, f := range folders {
				tok := ""
				for {
					page, err := src.List(ctx, m, f.ID, tok)
					if err != nil {
						return err
					}
					for i := 0; i < len(page.Items); i += graph.MaxItemsPerRequest {
						batch := page.Items[i:min(i+graph.MaxItemsPerRequest, len(page.Items))]
						if err := src.Fetch(ctx, m, f.ID, batch, func(it domain.Item) error {
							if it.Failure == nil && len(it.Content) > 0 {
								got.Add(1)
							}
							return nil
						}); err != nil {
							return err
						}
					}
					if tok = page.Next; tok == "" {
						break
					}
				}
			}
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		b.Fatal(err)
	}
	if int(got.Load()) != want {
		b.Fatalf("the ceiling client read %d items, want %d", got.Load(), want)
	}
	return float64(want) / time.Since(started).Seconds()
}

func envInts(b *testing.B, name, def string) []int {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: give numbers, comma-separated", name, v)
		}
		out = append(out, n)
	}
	return out
}
