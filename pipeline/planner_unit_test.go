package pipeline

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/domain"
)

// memResume is a resume index in memory.
type memResume struct {
	stored map[string]domain.StoredVersion
	sync   map[string]string
	issued map[string]time.Time // when each sync token was handed out
}

func (r *memResume) Stored(m, f, id string) (domain.StoredVersion, bool, error) {
	v, ok := r.stored[m+"/"+f+"/"+id]
	return v, ok, nil
}
func (r *memResume) Quarantined(string, string, string) (domain.QuarantineRecord, bool, error) {
	return domain.QuarantineRecord{}, false, nil
}
func (r *memResume) Cursor(string, string) (domain.Cursor, bool, error) {
	return domain.Cursor{}, false, nil
}
func (r *memResume) SyncToken(m, f string) (domain.SyncState, bool, error) {
	t, ok := r.sync[m+"/"+f]
	return domain.SyncState{Token: t, Issued: r.issued[m+"/"+f]}, ok, nil
}

type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time { return c.now }
func (c *manualClock) AfterFunc(time.Duration, func()) func() bool {
	return func() bool { return true }
}

// plannerRig feeds outcomes to a planner and collects what it decides.
type plannerRig struct {
	t     *testing.T
	p     *Planner
	clock *manualClock
	n     int
}

func newRig(t *testing.T, cfg PlannerConfig, resume ResumeIndex) *plannerRig {
	cfg.Run = "r1"
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 5
	}
	if cfg.Limits.MaxInFlight == 0 {
		cfg.Limits = domain.DefaultLimits
	}
	cfg.Backoff = domain.DefaultBackoff
	cfg.ThrottlePatience = time.Hour
	clock := &manualClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	if resume == nil {
		resume = &memResume{}
	}
	r := &plannerRig{t: t, clock: clock, p: NewPlanner(cfg, clock, resume, zerolog.Nop(), func(domain.Event) {})}
	r.feed(domain.Event{Type: domain.MailboxDiscovered, Mailbox: "a@x", Outcome: domain.OutcomeSuccess})
	return r
}

func (r *plannerRig) feed(ev domain.Event) []domain.Event {
	r.t.Helper()
	r.n++
	if ev.ID == "" {
		ev.ID = "in" + string(rune('A'+r.n))
	}
	ev.Run = "r1"
	msg, err := encode(ev)
	if err != nil {
		r.t.Fatal(err)
	}
	outs, err := r.p.Handle(msg)
	if err != nil {
		r.t.Fatal(err)
	}
	return decodeAll(r.t, outs)
}

func decodeAll(t *testing.T, msgs []*message.Message) []domain.Event {
	var out []domain.Event
	for _, m := range msgs {
		ev, err := decode(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func ofType(evs []domain.Event, typ domain.EventType) []domain.Event {
	var out []domain.Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func refs(n int) []domain.ItemRef {
	out := make([]domain.ItemRef, n)
	for i := range out {
		out[i] = domain.ItemRef{Position: i + 1, ID: "m" + string(rune('a'+i)), ChangeKey: "ck"}
	}
	return out
}

// start discovers one folder and answers its first listing with items.
func (r *plannerRig) start(items []domain.ItemRef, page domain.Event) []domain.Event {
	out := r.feed(domain.Event{Type: domain.FolderDiscovered, Mailbox: "a@x", FolderID: "F", Folder: "Inbox", Kind: "mail"})
	out = append(out, r.feed(domain.Event{Type: domain.DiscoveryCompleted, Outcome: domain.OutcomeSuccess})...)
	lists := ofType(out, domain.ListRequested)
	if len(lists) != 1 {
		r.t.Fatalf("no listing after discovery: %+v", out)
	}
	page.Type, page.Cause, page.Mailbox, page.FolderID, page.Outcome, page.Items = domain.ItemsListed, lists[0].ID, "a@x", "F", domain.OutcomeSuccess, items
	page.Request = domain.RequestList
	return r.feed(page)
}

// A batch answered with per-item failures quarantines the dirty item at
// once (no split), records the gone one, and puts the throttled one back in
// line behind a park of exactly its Retry-After.
func TestItemFailuresInsideABatch(t *testing.T) {
	r := newRig(t, PlannerConfig{}, nil)
	out := r.start(refs(5), domain.Event{})
	reqs := ofType(out, domain.BatchRequested)
	if len(reqs) != 1 || len(reqs[0].Items) != 5 {
		t.Fatalf("want one batch of 5: %+v", out)
	}
	it := reqs[0].Items
	out = r.feed(domain.Event{Type: domain.BatchFetched, Cause: reqs[0].ID, Mailbox: "a@x", FolderID: "F", Outcome: domain.OutcomeSuccess, Request: domain.RequestFetch,
		ItemFailures: []domain.ItemFailure{
			{Item: it[1], Class: domain.ClassDirty, Code: "ErrorCorruptData"},
			{Item: it[2], Class: domain.ClassThrottled, Code: "ApplicationThrottled", RetryAfterMS: 2500},
			{Item: it[3], Class: domain.ClassGone, Code: "ErrorItemNotFound"},
		}})
	if len(ofType(out, domain.BatchSplit)) != 0 {
		t.Fatalf("a per-item failure split the batch: %+v", out)
	}
	q := ofType(out, domain.ItemQuarantined)
	g := ofType(out, domain.ItemGone)
	parks := ofType(out, domain.FolderParked)
	if len(q) != 1 || q[0].ItemID != it[1].ID || len(g) != 1 || g[0].ItemID != it[3].ID || len(parks) != 1 || parks[0].RetryAfterMS != 2500 {
		t.Fatalf("quarantine %+v gone %+v parks %+v", q, g, parks)
	}
	if c := parks[0].Cursor; c == nil || c.Position != 3 {
		t.Fatalf("the cursor must stay at the requeued item #3: %+v", parks[0].Cursor)
	}
	r.clock.now = r.clock.now.Add(2500 * time.Millisecond)
	out = r.feed(domain.Event{Type: domain.ParkExpired, Mailbox: "a@x", FolderID: "F", Until: parks[0].Until})
	reqs = ofType(out, domain.BatchRequested)
	if len(reqs) != 1 || len(reqs[0].Items) != 1 || reqs[0].Items[0].ID != it[2].ID {
		t.Fatalf("after the park the throttled item alone is fetched again: %+v", out)
	}
}

// An expired delta restarts the folder's listing from the first page.
func TestListingRestartsAfterResync(t *testing.T) {
	r := newRig(t, PlannerConfig{}, &memResume{sync: map[string]string{"a@x/F": "1|delta-link"}})
	out := r.feed(domain.Event{Type: domain.FolderDiscovered, Mailbox: "a@x", FolderID: "F", Folder: "Inbox", Kind: "mail"})
	out = append(out, r.feed(domain.Event{Type: domain.DiscoveryCompleted, Outcome: domain.OutcomeSuccess})...)
	lists := ofType(out, domain.ListRequested)
	if len(lists) != 1 || lists[0].PageToken != "1|delta-link" {
		t.Fatalf("a completed folder must list from its delta link: %+v", out)
	}
	out = r.feed(domain.Event{Type: domain.BatchFailed, Cause: lists[0].ID, Mailbox: "a@x", FolderID: "F", Request: domain.RequestList,
		Outcome: domain.OutcomeFailed, Class: domain.ClassResync, Code: "SyncStateNotFound"})
	restarted := ofType(out, domain.ListingRestarted)
	lists = ofType(out, domain.ListRequested)
	if len(restarted) != 1 || len(lists) != 1 || lists[0].PageToken != "" {
		t.Fatalf("want a restart and a fresh listing: %+v", out)
	}
	out = r.feed(domain.Event{Type: domain.ItemsListed, Cause: lists[0].ID, Mailbox: "a@x", FolderID: "F", Outcome: domain.OutcomeSuccess, Request: domain.RequestList,
		SyncToken: "1|new-delta", Tracked: true})
	done := ofType(out, domain.FolderCompleted)
	if len(done) != 1 || done[0].SyncToken != "1|new-delta" {
		t.Fatalf("the completed folder keeps the new delta link: %+v", out)
	}
}

// A sync token younger than domain.TokenRefresh is kept by a pass that
// finds nothing new (nothing written for the folder); an older one, or a
// listing that finds changes, takes the server's new token.
func TestYoungSyncTokenKeptWhenNothingChanged(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC) // the rig's clock
	cases := []struct {
		name      string
		issued    time.Time
		answer    domain.Event
		wantKeep  bool
		wantToken string
	}{
		{"young, nothing new", now.Add(-time.Hour), domain.Event{Unchanged: true}, true, ""},
		{"young, changes", now.Add(-time.Hour), domain.Event{Items: refs(1), SyncToken: "1|new"}, true, "1|new"},
		{"young, a removal", now.Add(-time.Hour), domain.Event{Removed: []string{"x"}, SyncToken: "1|new"}, true, "1|new"},
		{"a day old", now.Add(-domain.TokenRefresh), domain.Event{SyncToken: "1|new"}, false, "1|new"},
		{"issue time unknown", time.Time{}, domain.Event{SyncToken: "1|new"}, false, "1|new"},
		{"issued in the future", now.Add(time.Hour), domain.Event{SyncToken: "1|new"}, false, "1|new"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, PlannerConfig{}, &memResume{sync: map[string]string{"a@x/F": "1|old"}, issued: map[string]time.Time{"a@x/F": c.issued}})
			out := r.feed(domain.Event{Type: domain.FolderDiscovered, Mailbox: "a@x", FolderID: "F", Folder: "Inbox", Kind: "mail"})
			out = append(out, r.feed(domain.Event{Type: domain.DiscoveryCompleted, Outcome: domain.OutcomeSuccess})...)
			lists := ofType(out, domain.ListRequested)
			if len(lists) != 1 || lists[0].PageToken != "1|old" || lists[0].KeepToken != c.wantKeep || lists[0].Cursor != nil {
				t.Fatalf("listing: %+v", lists)
			}
			ans := c.answer
			ans.Type, ans.Cause, ans.Mailbox, ans.FolderID, ans.Outcome, ans.Request = domain.ItemsListed, lists[0].ID, "a@x", "F", domain.OutcomeSuccess, domain.RequestList
			out = r.feed(ans)
			for _, b := range ofType(out, domain.BatchRequested) {
				out = append(out, r.feed(domain.Event{Type: domain.BatchFetched, Cause: b.ID, Mailbox: "a@x", FolderID: "F", Outcome: domain.OutcomeSuccess, Request: domain.RequestFetch})...)
			}
			done := ofType(out, domain.FolderCompleted)
			if len(done) != 1 || done[0].SyncToken != c.wantToken || done[0].Unchanged != (c.wantToken == "") {
				t.Fatalf("completion: %+v", out)
			}
		})
	}
}

// A tracked listing does not fetch an item stored with the same change
// key; removals are recorded.
func TestTrackedListingSkipsKnownVersions(t *testing.T) {
	items := refs(3)
	resume := &memResume{stored: map[string]domain.StoredVersion{"a@x/F/" + items[0].ID: {ChangeKey: "ck", Pass: "old"}}}
	r := newRig(t, PlannerConfig{}, resume)
	out := r.start(items, domain.Event{Tracked: true, Removed: []string{"gone1"}, SyncToken: "1|d"})
	reqs := ofType(out, domain.BatchRequested)
	if len(reqs) != 1 || len(reqs[0].Items) != 2 || reqs[0].Items[0].ID != items[1].ID {
		t.Fatalf("want the two unknown items only: %+v", reqs)
	}
	if rm := ofType(out, domain.ItemRemoved); len(rm) != 1 || rm[0].ItemID != "gone1" {
		t.Fatalf("removal not recorded: %+v", out)
	}
}

// With folder parallelism several batches of one folder go out at once, and
// a request's cost in concurrency is respected.
func TestFolderParallelismAndCosts(t *testing.T) {
	r := newRig(t, PlannerConfig{BatchSize: 2, FolderParallelism: 3}, nil)
	out := r.start(refs(8), domain.Event{NextPage: "p2"})
	if n := len(ofType(out, domain.BatchRequested)); n != 3 {
		t.Fatalf("%d batches out, want 3: %+v", n, out)
	}
	if n := len(ofType(out, domain.ListRequested)); n != 1 {
		t.Fatalf("the next page is listed while batches run: %d listings", n)
	}

	r = newRig(t, PlannerConfig{BatchSize: 2, FolderParallelism: 3,
		Cost: func(req, kind string, items int) domain.RequestCost {
			if req == domain.RequestFetch {
				return domain.RequestCost{Budget: items, Concurrency: 4}
			}
			return domain.UnitCost
		}}, nil)
	out = r.start(refs(8), domain.Event{})
	if n := len(ofType(out, domain.BatchRequested)); n != 1 {
		t.Fatalf("a request that takes all 4 slots must go alone: %d batches", n)
	}
}

// A folder deleted between discovery and listing ends without an error.
func TestFolderDeletedDuringTheRun(t *testing.T) {
	r := newRig(t, PlannerConfig{}, nil)
	out := r.feed(domain.Event{Type: domain.FolderDiscovered, Mailbox: "a@x", FolderID: "F", Folder: "Old", Kind: "mail"})
	lists := ofType(out, domain.ListRequested)
	out = r.feed(domain.Event{Type: domain.BatchFailed, Cause: lists[0].ID, Mailbox: "a@x", FolderID: "F", Request: domain.RequestList,
		Outcome: domain.OutcomeFailed, Class: domain.ClassGone, Code: "ErrorItemNotFound"})
	out = append(out, r.feed(domain.Event{Type: domain.DiscoveryCompleted, Outcome: domain.OutcomeSuccess})...)
	if seal := ofType(out, domain.StorageSealRequested); len(seal) != 1 || len(ofType(out, domain.RunFinished)) != 0 {
		t.Fatalf("the work done, the storage is asked to seal first: %+v", out)
	}
	out = append(out, r.feed(domain.Event{Type: domain.StorageSealed, Cause: ofType(out, domain.StorageSealRequested)[0].ID, Outcome: domain.OutcomeSuccess})...)
	skips := ofType(out, domain.FolderSkipped)
	fin := ofType(out, domain.RunFinished)
	if len(skips) != 1 || skips[0].Reason != "deleted at the source" || len(fin) != 1 || fin[0].State != string(domain.StateFinished) {
		t.Fatalf("skips %+v finish %+v", skips, fin)
	}
}

// A run whose storage cannot seal what it holds (an upload to object
// storage failed) does not finish, whatever else went well.
func TestRunNotFinishedWhenTheStorageCannotSeal(t *testing.T) {
	for _, tc := range []struct {
		outcome string
		want    domain.RunState
	}{
		{domain.OutcomeSuccess, domain.StateFinished},
		{domain.OutcomeFailed, domain.StateNotFinished},
	} {
		r := newRig(t, PlannerConfig{}, nil)
		out := r.feed(domain.Event{Type: domain.DiscoveryCompleted, Outcome: domain.OutcomeSuccess})
		seal := ofType(out, domain.StorageSealRequested)
		if len(seal) != 1 {
			t.Fatalf("no seal request: %+v", out)
		}
		if again := r.feed(domain.Event{Type: domain.ParkExpired, ID: "tick"}); len(again) != 0 {
			t.Fatalf("decisions while the seal is outstanding: %+v", again)
		}
		out = r.feed(domain.Event{Type: domain.StorageSealed, Cause: seal[0].ID, Outcome: tc.outcome, Message: "upload pack: connection refused"})
		fin := ofType(out, domain.RunFinished)
		if len(fin) != 1 || fin[0].State != string(tc.want) {
			t.Fatalf("seal %s: finish %+v, want %s", tc.outcome, fin, tc.want)
		}
	}
}
