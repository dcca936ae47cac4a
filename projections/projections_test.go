package projections

import (
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

func TestReportAndReplayFold(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	f := func(ev domain.Event) *domain.Event {
		ev.Run, ev.Mailbox, ev.Folder, ev.FolderID = "r", "a@contoso.test", "Calendar", "f1"
		return &ev
	}
	b := func(first, last, n int) *domain.Range { return &domain.Range{First: first, Last: last, Count: n} }
	events := []*domain.Event{
		{Type: domain.RunStarted, Run: "r", Time: at(0)},
		f(domain.Event{Type: domain.FolderDiscovered, Time: at(0)}),
		f(domain.Event{Type: domain.ItemsListed, Request: domain.RequestList, Items: make([]domain.ItemRef, 5), Count: 5, Page: 1, Time: at(1)}),
		f(domain.Event{Type: domain.BatchFetched, Request: domain.RequestFetch, Batch: b(1, 5, 5), SourceMS: 1500, TargetMS: 500, Time: at(2)}),
		f(domain.Event{Type: domain.ItemStored, Outcome: domain.OutcomeStored, Size: 2_000_000, Time: at(2)}),
		f(domain.Event{Type: domain.ItemStored, Outcome: domain.OutcomeUnchanged, Time: at(2)}),
		// schema 2: a batch's items in one event
		f(domain.Event{Type: domain.ItemsStored, Time: at(2), Stored: []domain.StoredItem{{ItemID: "i3", Size: 1_000_000, NewBytes: 10}, {ItemID: "i4", Unchanged: true}, {ItemID: "i5", Unchanged: true}}}),
		f(domain.Event{Type: domain.BatchFailed, Request: domain.RequestFetch, Class: domain.ClassDirty, Code: "ErrorCorruptData", Batch: b(6, 6, 1), Time: at(3)}),
		f(domain.Event{Type: domain.ItemQuarantined, ItemID: "i6", Position: 6, Code: "ErrorCorruptData", Outcome: domain.OutcomeFailed, Time: at(3)}),
		f(domain.Event{Type: domain.Throttled, Request: domain.RequestFetch, Code: "TooManyRequests", RetryAfterMS: 2500, Batch: b(7, 9, 3), Time: at(4)}),
		f(domain.Event{Type: domain.BatchFailed, Request: domain.RequestFetch, Class: domain.ClassTransient, Code: "ServiceUnavailable", Batch: b(7, 9, 3), Time: at(5)}),
		f(domain.Event{Type: domain.FolderSkipped, Reason: domain.ReasonThrottled, Cursor: &domain.Cursor{Position: 7}, Time: at(6)}),
		{Type: domain.RunFinished, Run: "r", State: string(domain.StateWarnings), Time: at(10)},
		{Type: domain.ItemStored, Run: "other", Outcome: domain.OutcomeStored, Time: at(11)},
	}
	r := NewReport("r")
	rp := NewReplay()
	for _, ev := range events {
		r.Apply(ev)
		rp.Apply(ev)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"state", r.State, domain.StateWarnings},
		{"scanned", r.ItemsScanned, 5},
		{"stored", r.ItemsStored, 2},
		{"unchanged", r.ItemsUnchanged, 3},
		{"quarantined", r.ItemsQuarantined, 1},
		{"requests", r.Requests, 4},
		{"listing", r.ListRequests, 1},
		{"by outcome", r.RequestsByOutcome["success"]*1000 + r.RequestsByOutcome["failed"]*100 + r.RequestsByOutcome["throttled"]*10 + r.RequestsByOutcome["error"], 1111},
		{"throttled", r.ThrottledRequests, 1},
		{"skipped", r.FoldersSkipped, 1},
		{"duration", r.DurationS, 10.0},
		{"MB/s", r.MBPerS, 0.3},
		{"stall source", r.StallSourceS, 1.5},
		{"stall target", r.StallTargetS, 0.5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var out strings.Builder
	rp.WriteText(&out)
	want := `a@contoso.test / Calendar
   Listed 5 items (page 1)
1. Fetch 5 items (#1 - #5) – success
2. Fetch item #6 – failed
   Item #6 quarantined (ErrorCorruptData)
3. Fetch 3 items (#7 - #9) – throttled
   Throttled by the server (TooManyRequests), retry after 2.5s
4. Fetch 3 items (#7 - #9) – error (transient ServiceUnavailable)
   The mailbox is throttled on folder 'Calendar'. Skipping this folder – the backup will continue on the next run (from #7).
`
	if out.String() != want {
		t.Fatalf("replay:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestKilledRunIsNotFinished(t *testing.T) {
	r := NewReport("r")
	r.Apply(&domain.Event{Type: domain.RunStarted, Run: "r", Time: time.Unix(100, 0)})
	r.Apply(&domain.Event{Type: domain.ItemStored, Run: "r", Outcome: domain.OutcomeStored, Time: time.Unix(104, 0)})
	if r.State != domain.StateNotFinished || r.DurationS != 4 || r.ItemsStored != 1 {
		t.Fatalf("killed run: %+v", r)
	}
	if r.Live().State != domain.StateRunning {
		t.Fatal("a live view of an open run says running")
	}
}

// The report keeps the pace each throttle left a mailbox (or the app) at,
// and what held it back; the text says both.
func TestReportPaces(t *testing.T) {
	r := NewReport("r")
	r.Apply(&domain.Event{Type: domain.RunStarted, Run: "r", Time: time.Unix(100, 0)})
	r.Apply(&domain.Event{Type: domain.Throttled, Run: "r", Mailbox: "a@x", Code: "ApplicationThrottled", PaceRPS: 9.1234, Time: time.Unix(101, 0)})
	r.Apply(&domain.Event{Type: domain.Throttled, Run: "r", Mailbox: "b@x", Code: "ErrorServerBusy", PaceRPS: 1.5, PaceApp: true, PaceCostly: true, Time: time.Unix(102, 0)})
	r.Apply(&domain.Event{Type: domain.Throttled, Run: "r", Mailbox: "a@x", Code: domain.CodePaceHold, Time: time.Unix(103, 0)})
	if r.Paces["a@x"] != 9.123 || r.Paces["(app)"] != 1.5 || r.PaceHolds != 1 {
		t.Fatalf("paces %v, holds %d", r.Paces, r.PaceHolds)
	}
	if r.PaceLimits["a@x"] != "ApplicationThrottled" || r.PaceLimits["(app)"] != "ErrorServerBusy, costly" {
		t.Fatalf("pace limits %v", r.PaceLimits)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "pace               held by throttling: (app) 1.5/s (ErrorServerBusy, costly), a@x 9.1/s (ApplicationThrottled); 1 request waited for the pace without asking the server"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("text report lacks %q:\n%s", want, b.String())
	}
}
