package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// Committed histories (Temporal's replay tests, for mailvault): each file in
// testdata/histories is the event log of a real scenario, recorded with
// `mailvault replay RUN --format jsonl` from the release that wrote it. A
// history is replayed into today's code three ways:
//
//   - decisions: today's dirty-item isolation is driven by the recorded
//     outcomes and must ask for exactly the requests the recorded run made;
//   - read side: every run's report and replay, and the resume state (what
//     is quarantined, where each folder continues), compared with goldens;
//   - upgrade: every event passes domain.Upgrade.
//
// A change that alters what an old log means fails here, not in the field.
// Record a new history by running a scenario and appending its runs'
// `replay --format jsonl`; `go test ./tests -run CommittedHistories -update`
// writes the goldens of the read side, which then need a careful review.
func TestCommittedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.jsonl"))
	if err != nil || len(files) < 6 {
		t.Fatalf("want at least 6 committed histories, found %d (%v)", len(files), err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".jsonl")
		t.Run(name, func(t *testing.T) {
			events := readHistory(t, file)
			replayDecisions(t, events)
			golden(t, filepath.Join("histories", name+".golden"), readSide(t, events))
		})
	}
}

// A log written by a newer mailvault is refused with a clear error, never
// half read; an event type this version does not know is left out of the
// report and the replay, which stay those of the events it knows.
func TestHistoryFromTheFuture(t *testing.T) {
	events := readHistory(t, filepath.Join("testdata", "histories", "seed-isolation.jsonl"))
	want := readSide(t, events)

	unknown := slices.Clone(events)
	extra := events[len(events)/2]
	extra.Type, extra.ID, extra.Batch, extra.Items = "mailbox_teleported", "unknown-1", nil, nil
	unknown = slices.Insert(unknown, len(unknown)/2, extra)
	if got := readSide(t, unknown); got != want {
		t.Fatalf("an unknown event type changed the read side:\n%s\nwant\n%s", got, want)
	}

	// A newer event that only the read side reads (the resume index refuses
	// one it keeps state from when it is appended).
	future := slices.Clone(events)
	i := slices.IndexFunc(future, func(ev domain.Event) bool { return ev.Type == domain.FolderDiscovered })
	future[i].Schema = domain.SchemaVersion + 1
	lg := historyLog(t, future)
	_, err := projections.BuildReport(lg, future[i].Run)
	if !errors.Is(err, domain.ErrFutureSchema) || !strings.Contains(err.Error(), "upgrade mailvault") {
		t.Fatalf("report over a future schema: %v, want ErrFutureSchema saying to upgrade", err)
	}
}

func readHistory(t *testing.T, file string) []domain.Event {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []domain.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var ev domain.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s:%d: %v", file, line, err)
		}
		if err := domain.Upgrade(&ev); err != nil {
			t.Fatalf("%s:%d: %v", file, line, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil || len(out) == 0 {
		t.Fatalf("%s: %d events, %v", file, len(out), err)
	}
	return out
}

// historyLog appends events to an in-memory log the way the pipeline's
// publisher does (one record per event, indexed by run, type, mailbox and
// folder), with the resume index kept by its hook.
func historyLog(t *testing.T, events []domain.Event) *eventlog.Log {
	t.Helper()
	lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: []eventlog.Hook{projections.ResumeHook}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	recs := make([]eventlog.Record, 0, len(events))
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		meta := map[string]string{eventlog.MetaRun: ev.Run, eventlog.MetaType: string(ev.Type)}
		if ev.Mailbox != "" {
			meta[eventlog.MetaMailbox] = ev.Mailbox
		}
		if ev.FolderID != "" {
			meta[eventlog.MetaFolderID] = ev.FolderID
		}
		recs = append(recs, eventlog.Record{Topic: "mailvault.run." + ev.Run + ".history", UUID: ev.ID, Metadata: meta, Payload: b})
	}
	if _, err := lg.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return lg
}

// readSide renders what today's projections make of a history: each run's
// report (JSON) and replay (text), then the resume state of each scope.
func readSide(t *testing.T, events []domain.Event) string {
	t.Helper()
	return readSideOf(t, historyLog(t, events), events, true)
}

// readSideOf renders the read side of a log holding events; without the
// replays when withReplay is false.
func readSideOf(t *testing.T, lg *eventlog.Log, events []domain.Event, withReplay bool) string {
	t.Helper()
	var b bytes.Buffer
	var runs, scopes []string
	for _, ev := range events {
		if ev.Type == domain.RunStarted && !slices.Contains(runs, ev.Run) {
			runs = append(runs, ev.Run)
			if ev.Config != nil && !slices.Contains(scopes, ev.Config.Scope) {
				scopes = append(scopes, ev.Config.Scope)
			}
		}
	}
	for _, run := range runs {
		r, err := projections.BuildReport(lg, run)
		if err != nil {
			t.Fatalf("report of run %s: %v", run, err)
		}
		fmt.Fprintf(&b, "== run %s: report\n", run)
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		if !withReplay {
			continue
		}
		fmt.Fprintf(&b, "== run %s: replay\n", run)
		rp := projections.NewReplay()
		if err := projections.ScanRun(lg, run, func(ev *domain.Event) error { rp.Apply(ev); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := rp.WriteText(&b); err != nil {
			t.Fatal(err)
		}
	}
	// Restores: each restore run's report, rebuilt from its events.
	var restores []string
	for _, ev := range events {
		if ev.Type == domain.RestoreStarted && !slices.Contains(restores, ev.Run) {
			restores = append(restores, ev.Run)
		}
	}
	for _, run := range restores {
		r, found, err := projections.LoadRestore(lg, run)
		if err != nil || !found {
			t.Fatalf("restore report of %s: found %v, %v", run, found, err)
		}
		fmt.Fprintf(&b, "== restore %s: report\n", run)
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
	}
	folders := map[[2]string]bool{}
	for _, ev := range events {
		if ev.Type == domain.FolderDiscovered {
			folders[[2]string{ev.Mailbox, ev.FolderID}] = true
		}
	}
	keys := make([][2]string, 0, len(folders))
	for k := range folders {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
	for _, scope := range scopes {
		res := projections.Resume{Log: lg, Scope: scope}
		fmt.Fprintf(&b, "== resume state of scope %s\n", scope)
		q, err := res.Quarantine()
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range q {
			fmt.Fprintf(&b, "quarantined %s #%d %s (%s, %d attempts)\n", it.Mailbox, it.Position, it.Code, it.Folder, it.Attempts)
		}
		for _, k := range keys {
			c, hasCursor, err := res.Cursor(k[0], k[1])
			if err != nil {
				t.Fatal(err)
			}
			tok, hasToken, err := res.SyncToken(k[0], k[1])
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "folder %s %s: cursor %v %+v, sync token %v %q\n", k[0], short(k[1]), hasCursor, c, hasToken, short(tok.Token))
		}
	}
	return b.String()
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// isolation is one top-level batch being isolated by today's code.
type isolation struct {
	batch   *domain.Batch
	items   map[string]bool
	pending []domain.ItemRef // the fetch today's code asks for next
}

// replayDecisions drives today's isolation with the recorded outcomes and
// checks that every recorded fetch request is the one it asks for.
func replayDecisions(t *testing.T, events []domain.Event) {
	t.Helper()
	type folderKey struct{ run, mailbox, folder string }
	active := map[folderKey][]*isolation{}
	requests := map[string]*isolation{} // request event id -> its isolation
	checked := 0
	advance := func(iso *isolation) {
		for {
			st := iso.batch.Next()
			switch st.Kind {
			case domain.StepFetch:
				iso.pending = st.Items
				return
			case domain.StepDone:
				iso.pending = nil
				return
			}
		}
	}
	ids := func(items []domain.ItemRef) string {
		var s []string
		for _, it := range items {
			s = append(s, fmt.Sprint(it.Position))
		}
		return strings.Join(s, ",")
	}
	for _, ev := range events {
		k := folderKey{ev.Run, ev.Mailbox, ev.FolderID}
		switch {
		case ev.Type == domain.ListingRestarted:
			delete(active, k) // the pass starts over: open isolations are dropped
		case ev.Type == domain.BatchRequested && len(ev.Items) > 0:
			var owner *isolation
			for _, iso := range active[k] {
				for _, it := range ev.Items {
					if iso.items[it.ID] {
						owner = iso
					}
				}
			}
			if owner == nil || owner.pending == nil {
				owner = &isolation{batch: domain.NewBatch(ev.Items), items: map[string]bool{}}
				for _, it := range ev.Items {
					owner.items[it.ID] = true
				}
				advance(owner)
				active[k] = append(active[k], owner)
			}
			if got, want := ids(ev.Items), ids(owner.pending); got != want {
				t.Fatalf("run %s, %s: the recorded run fetched items #%s where today's isolation asks for #%s", ev.Run, ev.Folder, got, want)
			}
			requests[ev.ID] = owner
			checked++
		case ev.Type == domain.BatchFetched && requests[ev.Cause] != nil:
			iso := requests[ev.Cause]
			iso.batch.Record(true)
			advance(iso)
		case ev.Type == domain.BatchFailed && ev.Class == domain.ClassDirty && requests[ev.Cause] != nil:
			iso := requests[ev.Cause]
			iso.batch.Record(false)
			advance(iso)
		}
	}
	if checked == 0 {
		t.Fatal("the history has no fetch requests to check")
	}
}
