package tests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/badgerdb"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// BenchmarkLogCompaction writes the event log of four backup runs of
// 200,000 items each (in the shape the pipeline writes: per batch of 20 a
// request, an outcome and one items_stored event; Graph-length ids), the
// first three of them older than the retention, then compacts the log
// through the application as 'mailvault log compact' does. It reports the
// log's size on disk before and after (blocks allocated), the share given
// back, and the time compaction took per removed event.
//
//	go test -run '^$' -bench BenchmarkLogCompaction -benchtime 1x ./tests/
func BenchmarkLogCompaction(b *testing.B) {
	const runs, items, batch = 4, 200000, 20
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "log")
		lg, err := eventlog.Open(eventlog.Options{Dir: dir, Hooks: []eventlog.Hook{projections.ResumeHook}})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for r := 0; r < runs; r++ {
			writeSyntheticRun(b, lg, fmt.Sprintf("2026010%dT000000-bench%d", r+1, r), start.AddDate(0, 0, 30*r), items, batch)
		}
		before := badgerdb.DiskUsage(dir)
		s := &app.Service{Log: lg}
		now := start.AddDate(0, 0, 30*(runs-1)+10) // the last run is 10 days old
		b.StartTimer()
		t0 := time.Now()
		res, err := s.CompactLog(context.Background(), domain.Period{N: 15, Unit: "days"}, now)
		took := time.Since(t0)
		b.StopTimer()
		if err != nil || len(res.Runs) != runs-1 || res.Kept != 1 {
			b.Fatalf("compaction: %+v, %v", res, err)
		}
		after := badgerdb.DiskUsage(dir)
		b.ReportMetric(float64(before)/1e6, "MB-before")
		b.ReportMetric(float64(after)/1e6, "MB-after")
		b.ReportMetric(1-float64(after)/float64(before), "share-reclaimed")
		b.ReportMetric(float64(before)/float64(runs*items), "log-bytes/item-before")
		b.ReportMetric(float64(took.Nanoseconds())/float64(res.Events), "ns/event-removed")
		if err := lg.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(badgerdb.DiskUsage(dir))/1e6, "MB-after-close")
	}
}

// writeSyntheticRun appends a finished backup run of items in one folder.
func writeSyntheticRun(b *testing.B, lg *eventlog.Log, run string, at time.Time, items, batch int) {
	b.Helper()
	const mbx, folderID = "ann@contoso.test", "AAMkAGI2TG93AAA="
	topic := domain.RunOutcomesTopic(run)
	var recs []eventlog.Record
	n := 0
	add := func(ev domain.Event) {
		n++
		ev.Schema, ev.Run, ev.Time = domain.SchemaVersion, run, at.Add(time.Duration(n)*time.Millisecond)
		ev.ID = domain.DeriveID(run, fmt.Sprint(n))
		if ev.Type != domain.RunStarted && ev.Type != domain.RunFinished {
			ev.Mailbox, ev.Folder, ev.FolderID = mbx, "Inbox", folderID
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		meta := map[string]string{eventlog.MetaRun: run, eventlog.MetaType: string(ev.Type)}
		if ev.Mailbox != "" {
			meta[eventlog.MetaMailbox], meta[eventlog.MetaFolderID] = ev.Mailbox, ev.FolderID
		}
		recs = append(recs, eventlog.Record{Topic: topic, UUID: ev.ID, Metadata: meta, Payload: payload})
		if len(recs) >= 300 {
			if _, err := lg.Append(context.Background(), recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	add(domain.Event{Type: domain.RunStarted, Config: &domain.RunConfig{Source: "graph:bench", Scope: "bench-scope", BatchSize: batch}})
	add(domain.Event{Type: domain.FolderDiscovered, Kind: "mail"})
	for first := 1; first <= items; first += batch {
		refs := make([]domain.ItemRef, 0, batch)
		stored := make([]domain.StoredItem, 0, batch)
		for p := first; p < first+batch && p <= items; p++ {
			id := fmt.Sprintf("AAMkAGI2TG93AAABGAAAAAAAa3BlbmNoLWl0ZW0tJTA5ZA%09dAAA=", p)
			sum := sha256.Sum256([]byte(run + id))
			refs = append(refs, domain.ItemRef{Position: p, ID: id, ChangeKey: "CQAAABYAAAC" + fmt.Sprint(p)})
			stored = append(stored, domain.StoredItem{Position: p, ItemID: id, ChangeKey: "CQAAABYAAAC" + fmt.Sprint(p), Size: 2048, SHA256: hex.EncodeToString(sum[:]), NewBytes: 1100})
		}
		rng := domain.Range{First: first, Last: first + len(refs) - 1, Count: len(refs)}
		add(domain.Event{Type: domain.BatchRequested, Request: domain.RequestFetch, Batch: &rng, Items: refs})
		add(domain.Event{Type: domain.BatchFetched, Request: domain.RequestFetch, Batch: &rng, Count: len(refs), Bytes: int64(2048 * len(refs))})
		add(domain.Event{Type: domain.ItemsStored, Stored: stored})
	}
	add(domain.Event{Type: domain.FolderCompleted})
	add(domain.Event{Type: domain.RunFinished, State: string(domain.StateFinished)})
	if _, err := lg.Append(context.Background(), recs); err != nil {
		b.Fatal(err)
	}
}
