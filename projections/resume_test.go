package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
)

// The resume state is kept per scope: what one storage and source stored,
// quarantined and listed is invisible to another storage, to another
// source, and (cursors and change tracking only) to the same storage's next
// index generation.
func TestResumeStateIsKeptPerScope(t *testing.T) {
	lg := resumeLog(t)
	scope := Scope("store-a", "gen1", "graph:t")
	events := []domain.Event{
		{Type: domain.RunStarted, ID: "1", Run: "r1", Config: &domain.RunConfig{Scope: scope}},
		{Type: domain.ItemStored, ID: "2", Run: "r1", Mailbox: "m", FolderID: "f", ItemID: "i", ChangeKey: "ck", Pass: "r1"},
		{Type: domain.ItemQuarantined, ID: "3", Run: "r1", Mailbox: "m", FolderID: "f", ItemID: "q", Code: "ErrorCorruptData"},
		{Type: domain.FolderCompleted, ID: "4", Run: "r1", Mailbox: "m", FolderID: "f", SyncToken: "delta"},
		// schema 2: a batch's items in one event
		{Type: domain.ItemsStored, ID: "5", Run: "r1", Mailbox: "m", FolderID: "f", Pass: "r1", Stored: []domain.StoredItem{{ItemID: "b1", ChangeKey: "c1"}, {ItemID: "b2", ChangeKey: "c2", Unchanged: true}}},
	}
	for i := range events {
		events[i].Time = time.Now()
	}
	appendEvents(t, lg, events...)
	type view struct{ stored, quarantined, synced bool }
	look := func(scope string) view {
		r := Resume{Log: lg, Scope: scope}
		_, st, _ := r.Stored("m", "f", "i")
		b2, st2, _ := r.Stored("m", "f", "b2")
		st = st && st2 && b2.ChangeKey == "c2"
		_, q, _ := r.Quarantined("m", "f", "q")
		_, sy, _ := r.SyncToken("m", "f")
		return view{st, q, sy}
	}
	for _, c := range []struct {
		name  string
		scope string
		want  view
	}{
		{"same scope", scope, view{true, true, true}},
		{"another storage", Scope("store-b", "gen1", "graph:t"), view{}},
		{"another source", Scope("store-a", "gen1", "ews:https://x"), view{}},
		{"a repaired index", Scope("store-a", "gen2", "graph:t"), view{stored: true, quarantined: true}},
	} {
		if got := look(c.scope); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// The jobs' histories are the same whether rebuilt from the log or taken
// from the metrics fold: one fold serves both.
func TestJobHistoriesFromTheLogAndFromTheMetrics(t *testing.T) {
	lg := resumeLog(t)
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var events []domain.Event
	run := func(id, job string, start, stored int, finished bool) {
		at := t0.Add(time.Duration(start) * time.Minute)
		events = append(events, domain.Event{Type: domain.RunStarted, Run: id, Time: at, Config: &domain.RunConfig{Job: job}})
		for i := range stored {
			events = append(events, domain.Event{Type: domain.ItemStored, Run: id, Time: at.Add(time.Second), Outcome: domain.OutcomeStored,
				Mailbox: "a@contoso.test", FolderID: "f", ItemID: fmt.Sprintf("%s-%d", id, i)})
		}
		if finished {
			events = append(events, domain.Event{Type: domain.RunFinished, Run: id, Time: at.Add(time.Minute), State: string(domain.StateFinished)})
		}
	}
	run("r1", "nightly", 0, 3, true)
	run("r2", "", 5, 2, true) // by hand: no job
	run("r3", "nightly", 10, 4, true)
	run("r4", "hourly", 20, 1, false) // killed
	m := NewMetrics()
	for i := range events {
		events[i].ID, events[i].Schema = fmt.Sprintf("e%03d", i), domain.SchemaVersion
		m.Apply(&events[i])
	}
	appendEvents(t, lg, events...)
	fromLog, err := JobHistories(lg)
	if err != nil {
		t.Fatal(err)
	}
	fromMetrics := m.JobHistories()
	if !reflect.DeepEqual(fromLog, fromMetrics) {
		t.Fatalf("from the log %+v\nfrom the metrics %+v", fromLog, fromMetrics)
	}
	n := fromLog["nightly"]
	if len(fromLog) != 2 || n.Cycles != 2 || n.ItemsStored != 7 || n.LastRun != "r3" || n.LastState != domain.StateFinished ||
		fromLog["hourly"].LastState != domain.StateNotFinished {
		t.Fatalf("histories: %+v", fromLog)
	}
}

// A mailbox's folder tree follows its discoveries' changes; changes that do
// not continue the tree held (a log rebuilt after the full listing was
// compacted away) drop it, so that the next discovery lists it in full.
func TestFolderTreeFollowsDiscoveries(t *testing.T) {
	lg := resumeLog(t)
	scope := Scope("store-a", "gen1", "graph:t")
	seq := 0
	appendNew := func(events ...domain.Event) {
		t.Helper()
		for i := range events {
			seq++
			events[i].ID, events[i].Time = fmt.Sprint("e", seq), time.Now()
		}
		appendEvents(t, lg, events...)
	}
	discovered := func(run string, ch domain.FolderChanges) domain.Event {
		return domain.Event{Type: domain.MailboxDiscovered, Run: run, Mailbox: "m", Outcome: domain.OutcomeSuccess, Tree: &ch}
	}
	r := Resume{Log: lg, Scope: scope}
	paths := func() []string {
		tree, ok, err := r.FolderTree("m")
		if err != nil || !ok {
			return nil
		}
		var out []string
		for _, f := range tree.Folders() {
			out = append(out, f.Path)
		}
		return append(out, tree.Token)
	}
	appendNew(domain.Event{Type: domain.RunStarted, Run: "r1", Config: &domain.RunConfig{Scope: scope}},
		discovered("r1", domain.FolderChanges{Full: true, Token: "t1", Changed: []domain.FolderNode{{ID: "i", Parent: "root", Name: "Inbox", Kind: "mail"}}}))
	if got := paths(); !reflect.DeepEqual(got, []string{"Inbox", "t1"}) {
		t.Fatalf("after a full listing: %v", got)
	}
	appendNew(domain.Event{Type: domain.RunStarted, Run: "r2", Config: &domain.RunConfig{Scope: scope}},
		discovered("r2", domain.FolderChanges{From: domain.TokenDigest("t1"), Token: "t2", Changed: []domain.FolderNode{{ID: "n", Parent: "i", Name: "New", Kind: "mail"}}}),
		// a failed discovery records no changes and leaves the tree alone
		domain.Event{Type: domain.MailboxDiscovered, Run: "r2", Mailbox: "m", Outcome: domain.OutcomeFailed})
	if got := paths(); !reflect.DeepEqual(got, []string{"Inbox", "Inbox/New", "t2"}) {
		t.Fatalf("after a change: %v", got)
	}
	// Nothing changed: the token moves on, the folders are not written again.
	before, _ := lg.ReadProjection(treeKey(scope, "m"))
	appendNew(domain.Event{Type: domain.RunStarted, Run: "r2b", Config: &domain.RunConfig{Scope: scope}},
		discovered("r2b", domain.FolderChanges{From: domain.TokenDigest("t2"), Token: "t3"}))
	if got := paths(); !reflect.DeepEqual(got, []string{"Inbox", "Inbox/New", "t3"}) {
		t.Fatalf("after no change: %v", got)
	}
	if after, _ := lg.ReadProjection(treeKey(scope, "m")); string(after) != string(before) {
		t.Fatalf("a discovery without changes wrote the tree again: %s -> %s", before, after)
	}
	// The token is kept with when it was issued (domain.KeepToken reads it).
	if tree, _, _ := r.FolderTree("m"); tree.Issued.IsZero() || time.Since(tree.Issued) > time.Minute {
		t.Fatalf("the tree's token was issued %v", tree.Issued)
	}
	appendNew(domain.Event{Type: domain.RunStarted, Run: "r2c", Config: &domain.RunConfig{Scope: scope}},
		discovered("r2c", domain.FolderChanges{From: domain.TokenDigest("t3"), Token: "t3b", Removed: []string{"n"}}),
		discovered("r2c", domain.FolderChanges{From: domain.TokenDigest("t3b"), Token: "t2", Changed: []domain.FolderNode{{ID: "n", Parent: "i", Name: "New", Kind: "mail"}}}))
	if got := paths(); !reflect.DeepEqual(got, []string{"Inbox", "Inbox/New", "t2"}) {
		t.Fatalf("after a removal and an addition: %v", got)
	}
	if other, ok, _ := (Resume{Log: lg, Scope: Scope("store-b", "gen1", "graph:t")}).FolderTree("m"); ok {
		t.Fatalf("another storage sees the tree: %+v", other)
	}
	appendNew(domain.Event{Type: domain.RunStarted, Run: "r3", Config: &domain.RunConfig{Scope: scope}},
		discovered("r3", domain.FolderChanges{From: domain.TokenDigest("t-compacted"), Token: "t4"}))
	if got := paths(); got != nil {
		t.Fatalf("changes from another state were applied: %v", got)
	}
}

// FolderHolds answers for one folder at once what a first pass would ask
// item by item.
func TestFolderHolds(t *testing.T) {
	lg := resumeLog(t)
	scope := Scope("store-a", "gen1", "graph:t")
	appendEvents(t, lg,
		domain.Event{Type: domain.RunStarted, ID: "e1", Run: "r1", Config: &domain.RunConfig{Scope: scope}},
		domain.Event{Type: domain.ItemsStored, ID: "e2", Run: "r1", Mailbox: "m", FolderID: "f1", Stored: []domain.StoredItem{{ItemID: "i1", ChangeKey: "c"}}},
		domain.Event{Type: domain.ItemQuarantined, ID: "e3", Run: "r1", Mailbox: "m", FolderID: "f2", ItemID: "i2"})
	r := Resume{Log: lg, Scope: scope}
	for _, c := range []struct {
		mailbox, folder     string
		stored, quarantined bool
	}{{"m", "f1", true, false}, {"m", "f2", false, true}, {"m", "f", false, false}, {"m", "f10", false, false}, {"other", "f1", false, false}} {
		s, q, err := r.FolderHolds(c.mailbox, c.folder)
		if err != nil || s != c.stored || q != c.quarantined {
			t.Errorf("%s/%s: stored %v quarantined %v (%v), want %v %v", c.mailbox, c.folder, s, q, err, c.stored, c.quarantined)
		}
	}
	// The storage's generation does not matter: items belong to the storage.
	if s, _, _ := (Resume{Log: lg, Scope: Scope("store-a", "gen2", "graph:t")}).FolderHolds("m", "f1"); !s {
		t.Error("another generation of the same storage does not see the stored item")
	}
}

// A folder pass writes no cursor until a batch is requested: a cursor at
// its first item says no more than none. Completion removes the cursor.
func TestCursorFromTheFirstBatch(t *testing.T) {
	lg := resumeLog(t)
	scope := Scope("store-a", "gen1", "graph:t")
	r := Resume{Log: lg, Scope: scope}
	seq := 0
	appendEvent := func(ev domain.Event) {
		t.Helper()
		seq++
		ev.ID, ev.Run, ev.Mailbox, ev.FolderID = fmt.Sprint("e", seq), "r1", "m", "f"
		if ev.Time.IsZero() {
			ev.Time = time.Now()
		}
		appendEvents(t, lg, ev)
	}
	cursor := func() (domain.Cursor, bool) {
		t.Helper()
		c, ok, err := r.Cursor("m", "f")
		if err != nil {
			t.Fatal(err)
		}
		return c, ok
	}
	appendEvent(domain.Event{Type: domain.RunStarted, Config: &domain.RunConfig{Scope: scope}})
	appendEvent(domain.Event{Type: domain.ListRequested, Cursor: &domain.Cursor{Pass: "r1", Position: 1, PageToken: "t0", PageFirst: 1}})
	if c, ok := cursor(); ok {
		t.Fatalf("a listing at the first item wrote a cursor: %+v", c)
	}
	appendEvent(domain.Event{Type: domain.BatchRequested, Cursor: &domain.Cursor{Pass: "r1", Position: 1, PageToken: "t0", PageFirst: 1}})
	if c, ok := cursor(); !ok || c.Pass != "r1" || c.PageToken != "t0" {
		t.Fatalf("after the first batch: %+v %v", c, ok)
	}
	// The next page is listed while the first page's batches are out.
	appendEvent(domain.Event{Type: domain.ListRequested, Cursor: &domain.Cursor{Pass: "r1", Position: 1, PageToken: "t0", PageFirst: 1}})
	appendEvent(domain.Event{Type: domain.BatchRequested, Cursor: &domain.Cursor{Pass: "r1", Position: 21, PageToken: "t0", PageFirst: 1}})
	appendEvent(domain.Event{Type: domain.ListRequested, Cursor: &domain.Cursor{Pass: "r1", Position: 41, PageToken: "t1", PageFirst: 41}})
	if c, ok := cursor(); !ok || c.Position != 41 || c.PageToken != "t1" {
		t.Fatalf("after a listing further on: %+v %v", c, ok)
	}
	issued := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	appendEvent(domain.Event{Type: domain.FolderCompleted, SyncToken: "t2", Time: issued})
	if c, ok := cursor(); ok {
		t.Fatalf("a completed folder kept its cursor: %+v", c)
	}
	if st, ok, _ := r.SyncToken("m", "f"); !ok || st.Token != "t2" || !st.Issued.Equal(issued) {
		t.Fatalf("sync token %+v %v", st, ok)
	}
	// A folder completed without a cursor (no changes) stays without one.
	appendEvent(domain.Event{Type: domain.ListRequested, Cursor: &domain.Cursor{Pass: "r1b", Position: 1, PageToken: "t2", PageFirst: 1}})
	appendEvent(domain.Event{Type: domain.FolderCompleted, SyncToken: "t3", Time: issued.Add(time.Hour)})
	if c, ok := cursor(); ok {
		t.Fatalf("cursor after a pass without changes: %+v", c)
	}
	if st, _, _ := r.SyncToken("m", "f"); st.Token != "t3" || !st.Issued.Equal(issued.Add(time.Hour)) {
		t.Fatalf("sync token after a new one: %+v", st)
	}
	// A pass that found nothing from a kept token keeps it, issue time and all.
	appendEvent(domain.Event{Type: domain.FolderCompleted, Unchanged: true, Time: issued.Add(2 * time.Hour)})
	if st, _, _ := r.SyncToken("m", "f"); st.Token != "t3" || !st.Issued.Equal(issued.Add(time.Hour)) {
		t.Fatalf("sync token after an unchanged pass: %+v", st)
	}
	// A completion without a token (a source without change tracking) forgets it.
	appendEvent(domain.Event{Type: domain.FolderCompleted})
	if st, ok, _ := r.SyncToken("m", "f"); ok {
		t.Fatalf("sync token after a completion without one: %+v", st)
	}
}

// resumeLog is an in-memory log that keeps the resume index.
func resumeLog(t *testing.T) *eventlog.Log {
	t.Helper()
	lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: []eventlog.Hook{ResumeHook}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	return lg
}

// appendEvents appends events as the pipeline records them.
func appendEvents(t *testing.T, lg *eventlog.Log, events ...domain.Event) {
	t.Helper()
	var recs []eventlog.Record
	for _, ev := range events {
		b, _ := json.Marshal(ev)
		recs = append(recs, eventlog.Record{Topic: "t", UUID: ev.ID, Payload: b, Metadata: map[string]string{eventlog.MetaType: string(ev.Type), eventlog.MetaRun: ev.Run}})
	}
	if _, err := lg.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// A retry request makes the named quarantined items due at once and marks
// their folder for a listing in full, which the next listing from the
// start clears; another scope's items are not touched.
func TestRetryRequestMakesItemsDueAndRelists(t *testing.T) {
	lg := resumeLog(t)
	scope := Scope("store-a", "gen1", "graph:t")
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	appendEvents(t, lg,
		domain.Event{Type: domain.RunStarted, ID: "1", Run: "r1", Time: at, Config: &domain.RunConfig{Scope: scope}},
		domain.Event{Type: domain.ItemQuarantined, ID: "2", Run: "r1", Time: at, Mailbox: "m", FolderID: "f", ItemID: "q1", Code: "ErrorCorruptData"},
		domain.Event{Type: domain.ItemQuarantined, ID: "3", Run: "r1", Time: at, Mailbox: "m", FolderID: "f", ItemID: "q2", Code: "ErrorCorruptData"})
	r := Resume{Log: lg, Scope: scope}
	if relist, _ := r.Relist("m", "f"); relist {
		t.Fatal("a folder is marked for relisting before any request")
	}
	appendEvents(t, lg, domain.Event{Type: domain.QuarantineRetryRequested, ID: "4", Run: "retry-1", Time: at.Add(time.Hour), Scope: scope,
		Mailbox: "m", FolderID: "f", Items: []domain.ItemRef{{ID: "q1"}, {ID: "gone"}}})
	q1, _, _ := r.Quarantined("m", "f", "q1")
	q2, _, _ := r.Quarantined("m", "f", "q2")
	if !q1.LastAttempt.IsZero() || !q2.LastAttempt.Equal(at) {
		t.Fatalf("after the request: q1 last tried %v (want due), q2 %v (want %v)", q1.LastAttempt, q2.LastAttempt, at)
	}
	if relist, _ := r.Relist("m", "f"); !relist {
		t.Fatal("the folder is not marked for a listing in full")
	}
	if other, _ := (Resume{Log: lg, Scope: Scope("store-b", "gen1", "graph:t")}).Relist("m", "f"); other {
		t.Fatal("another storage's folder is marked")
	}
	appendEvents(t, lg, domain.Event{Type: domain.RunStarted, ID: "5", Run: "r2", Time: at, Config: &domain.RunConfig{Scope: scope}},
		domain.Event{Type: domain.ListRequested, ID: "6", Run: "r2", Time: at, Mailbox: "m", FolderID: "f", Position: 1, PageToken: "1|delta"})
	if relist, _ := r.Relist("m", "f"); !relist {
		t.Fatal("a listing from a delta token cleared the mark")
	}
	appendEvents(t, lg, domain.Event{Type: domain.ListRequested, ID: "7", Run: "r2", Time: at, Mailbox: "m", FolderID: "f", Position: 1})
	if relist, _ := r.Relist("m", "f"); relist {
		t.Fatal("a listing from the start left the mark")
	}
}

// A throttle's pace is kept for the next run with whether its limit was
// costly and the server's window; paces kept by older versions (the rate
// alone, or with "costly") still read, and damage is an error, not a pace.
func TestPaceKeptForTheNextRun(t *testing.T) {
	lg := resumeLog(t)
	scope := Scope("store-a", "gen1", "graph:t")
	appendEvents(t, lg,
		domain.Event{Type: domain.RunStarted, ID: "1", Run: "r1", Config: &domain.RunConfig{Scope: scope}, Time: time.Now()},
		domain.Event{Type: domain.Throttled, ID: "2", Run: "r1", Mailbox: "a@x", PaceRPS: 9.5, PaceWindowMS: 5000, Time: time.Now()},
		domain.Event{Type: domain.Throttled, ID: "3", Run: "r1", Mailbox: "b@x", PaceRPS: 1.25, PaceApp: true, PaceCostly: true, Time: time.Now()},
	)
	r := Resume{Log: lg, Scope: scope}
	for _, c := range []struct {
		mailbox string
		want    domain.LearnedPace
	}{
		{"a@x", domain.LearnedPace{Rate: 9.5, Window: 5 * time.Second}},
		{"", domain.LearnedPace{Rate: 1.25, Costly: true}},
	} {
		got, ok, err := r.Pace(c.mailbox)
		if err != nil || !ok || got != c.want {
			t.Errorf("pace of %q: %+v %v %v, want %+v", c.mailbox, got, ok, err, c.want)
		}
	}
	for _, c := range []struct {
		kept string
		want domain.LearnedPace
		bad  bool
	}{
		{"12.5", domain.LearnedPace{Rate: 12.5}, false},
		{"4 costly", domain.LearnedPace{Rate: 4, Costly: true}, false},
		{"4 costly window=600000", domain.LearnedPace{Rate: 4, Costly: true, Window: 10 * time.Minute}, false},
		{"", domain.LearnedPace{}, true},
		{"fast", domain.LearnedPace{}, true},
		{"4 window=-5", domain.LearnedPace{}, true},
		{"4 window=5s", domain.LearnedPace{}, true},
		{"4 cheap", domain.LearnedPace{}, true},
	} {
		got, err := parsePace(c.kept)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("%q read as %+v (%v), want %+v (error: %v)", c.kept, got, err, c.want, c.bad)
		}
	}
}
