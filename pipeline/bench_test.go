package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

type discard struct{}

func (discard) Put(_ domain.ItemKey, b []byte) (domain.PutResult, error) {
	return domain.PutResult{Size: int64(len(b))}, nil
}

// benchTenant is two mailboxes of small items, dirtyEvery > 0 marks every
// n-th item of each folder dirty.
func benchTenant(items, dirtyEvery int) string {
	doc := "seed: 1\nmailboxes:\n"
	for _, m := range []string{"a@contoso.test", "b@contoso.test"} {
		doc += fmt.Sprintf("  - address: %s\n    folders:\n", m)
		for _, f := range []string{"Inbox", "Archive"} {
			doc += fmt.Sprintf("      - path: %s\n        items: %d\n        size: {min: 1KB, max: 1KB}\n", f, items/4)
			if dirtyEvery > 0 {
				doc += "        dirty: ["
				for p := dirtyEvery; p <= items/4; p += dirtyEvery {
					if p > dirtyEvery {
						doc += ", "
					}
					doc += fmt.Sprint(p)
				}
				doc += "]\n"
			}
		}
	}
	return doc
}

func runOnce(b *testing.B, tenant string, useDisk bool) *projections.Report {
	tn, err := simtenant.Parse([]byte(tenant))
	if err != nil {
		b.Fatal(err)
	}
	lg, err := eventlog.Open(eventlog.Options{Dir: b.TempDir(), Hooks: []eventlog.Hook{projections.ResumeHook}})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	var st pipeline.Storage = discard{}
	if useDisk {
		s, _, err := vault.Create(b.TempDir(), vault.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		st = s
	}
	cfg := pipeline.DefaultConfig()
	cfg.Run = "bench"
	deps := pipeline.Deps{Publisher: lg.Publisher(),
		Subscriber: func(group string, n int) message.Subscriber {
			return lg.Subscriber(eventlog.SubscriberConfig{ConsumerGroup: group, MaxInFlight: n})
		},
		Source: simtenant.NewSource(tn, nil), Storage: st, Resume: projections.Resume{Log: lg}, Dedup: lg,
		Clock: pipeline.WallClock{}, Log: zerolog.Nop()}
	if _, err := pipeline.Run(context.Background(), deps, cfg); err != nil {
		b.Fatal(err)
	}
	r, err := projections.BuildReport(lg, cfg.Run)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkPipeline measures items per second through the whole pipeline
// (planner, fetcher, Badger log, watermill) against a zero-latency simulated
// tenant of 1 KB items, with storage discarded (pipeline overhead) and on
// local disk, and the requests each stored item cost, clean and dirty.
func BenchmarkPipeline(b *testing.B) {
	const items = 20000
	for _, c := range []struct {
		name       string
		dirtyEvery int
		disk       bool
	}{
		{"clean/discard", 0, false},
		{"clean/vault", 0, true},
		{"dirty-1in500/discard", 500, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			tenant := benchTenant(items, c.dirtyEvery)
			var r *projections.Report
			for i := 0; i < b.N; i++ {
				r = runOnce(b, tenant, c.disk)
			}
			b.ReportMetric(float64(items*b.N)/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(r.Requests)/float64(r.ItemsStored), "requests/item")
			b.ReportMetric(float64(r.Requests+r.ListRequests), "requests/run")
		})
	}
}
