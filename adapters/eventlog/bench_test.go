package eventlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

// payload is the size and shape of a typical item_stored event.
var payload = []byte(`{"type":"item_stored","schema":1,"id":"5f0c6a1e9b2d4c7e8a1f3b5d7c9e0a2b","cause":"9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d","run":"20261201T101500-3fa2c1","time":"2026-12-01T10:15:02.123456789Z","mailbox":"alice@contoso.test","folder":"Inbox","folder_id":"AAMkAF0123456789abcdef01234567","pass":"20261201T101500-3fa2c1","pos":1234,"item_id":"AAMkAI0123456789abcdef000004d2","ck":"CQAAAB01234567","size":1024,"sha256":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","outcome":"stored"}`)

func records(prefix string, n int) []eventlog.Record {
	out := make([]eventlog.Record, n)
	for i := range out {
		out[i] = eventlog.Record{Topic: "bench", UUID: fmt.Sprintf("%s-%d", prefix, i), Payload: payload,
			Metadata: map[string]string{"run": "r1", "mailbox": "alice@contoso.test", "folder_id": "f1", "type": "item_stored"}}
	}
	return out
}

func benchAppend(b *testing.B, perCall, writers int) {
	lg, err := eventlog.Open(eventlog.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	ctx := context.Background()
	calls := b.N / perCall / writers
	if calls == 0 {
		calls = 1
	}
	// Build the records first: ids and payloads come from the caller and
	// are not part of the append.
	batches := make([][][]eventlog.Record, writers)
	for w := range batches {
		for c := 0; c < calls; c++ {
			batches[w] = append(batches[w], records(fmt.Sprintf("w%d-c%d", w, c), perCall))
		}
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for c := 0; c < calls; c++ {
				if _, err := lg.Append(ctx, batches[w][c]); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	b.StopTimer()
	events := calls * perCall * writers
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend measures event append throughput: one event per call from
// one writer (the worst case), from 16 concurrent writers (grouped into shared
// transactions), and 400 per call (a batch's item_stored events).
func BenchmarkAppend(b *testing.B) {
	b.Run("1-per-call/1-writer", func(b *testing.B) { benchAppend(b, 1, 1) })
	b.Run("1-per-call/16-writers", func(b *testing.B) { benchAppend(b, 1, 16) })
	b.Run("400-per-call/1-writer", func(b *testing.B) { benchAppend(b, 400, 1) })
}
