package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// fakeClock is a manual clock: time moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves time and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			due = append(due, t)
		} else if !t.stopped {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

type harness struct {
	log   *eventlog.Log
	clock *fakeClock
	deps  pipeline.Deps
	cfg   pipeline.Config
}

func newHarness(t *testing.T, tenantYAML string) *harness {
	t.Helper()
	tn, err := simtenant.Parse([]byte(tenantYAML))
	if err != nil {
		t.Fatal(err)
	}
	lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: []eventlog.Hook{projections.ResumeHook}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	st, _, err := vault.Create(t.TempDir(), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	cfg := pipeline.DefaultConfig()
	cfg.Run = "run-1"
	// These tests move the clock themselves to check the planner's parks
	// and windows; the pacer, which waits on the same clock between
	// requests, is tested on its own (pace_test.go).
	cfg.Pace = false
	return &harness{log: lg, clock: clock, cfg: cfg, deps: pipeline.Deps{
		Publisher: lg.Publisher(),
		Subscriber: func(group string, n int) message.Subscriber {
			return lg.Subscriber(eventlog.SubscriberConfig{ConsumerGroup: group, MaxInFlight: n})
		},
		Source: simtenant.NewSource(tn, clock), Storage: st, Resume: projections.Resume{Log: lg},
		Dedup: lg, Clock: clock, Log: zerolog.Nop(),
	}}
}

func (h *harness) events(t *testing.T) []domain.Event {
	var out []domain.Event
	if err := projections.ScanRun(h.log, h.cfg.Run, func(ev *domain.Event) error {
		out = append(out, *ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// start runs the pipeline in the background; the channel gets its state.
func (h *harness) start(t *testing.T) <-chan domain.RunState {
	done := make(chan domain.RunState, 1)
	go func() {
		st, err := pipeline.Run(context.Background(), h.deps, h.cfg)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	return done
}

// waitFor blocks until an event of type typ is in the log.
func (h *harness) waitFor(t *testing.T, typ domain.EventType) domain.Event {
	t.Helper()
	return h.waitForN(t, typ, 1)
}

// waitForN blocks until n events of type typ are in the log and returns
// the nth.
func (h *harness) waitForN(t *testing.T, typ domain.EventType, n int) domain.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := h.log.Changed()
		seen := 0
		for _, ev := range h.events(t) {
			if ev.Type == typ {
				if seen++; seen == n {
					return ev
				}
			}
		}
		select {
		case <-changed:
		case <-deadline:
			for _, ev := range h.events(t) {
				t.Logf("%s %s %v %s %s", ev.Type, ev.Folder, ev.Batch, ev.Outcome, ev.Code)
			}
			t.Fatalf("no %s event", typ)
		}
	}
}

const parkTenant = `mailboxes:
  - address: ivy@contoso.test
    folders:
      - path: Calendar
        kind: calendar
        items: 800
        throttle: {items: 400, window: 90s}
        size: {min: 1KB, max: 1KB}
      - path: Inbox
        items: 900
        dirty: [450]
        size: {min: 1KB, max: 1KB}
`

// The server's Retry-After is honoured exactly: the folder is parked until
// throttle time + hint, the other folder completes meanwhile, and the wait is
// accounted as a stall on the source.
func TestThrottledFolderIsParkedUntilRetryAfterExactly(t *testing.T) {
	h := newHarness(t, parkTenant)
	done := h.start(t)
	thr := h.waitFor(t, domain.Throttled)
	parked := h.waitFor(t, domain.FolderParked)
	if want := thr.Time.Add(time.Duration(thr.RetryAfterMS) * time.Millisecond); !parked.Until.Equal(want) || thr.RetryAfterMS != 90_000 {
		t.Fatalf("parked until %v, want throttle time + Retry-After = %v (hint %dms)", parked.Until, want, thr.RetryAfterMS)
	}
	h.waitFor(t, domain.FolderCompleted) // the Inbox does not wait for the calendar
	for _, ev := range h.events(t) {
		if ev.Type == domain.FolderCompleted && ev.Folder != "Inbox" {
			t.Fatalf("%s completed before the calendar resumed", ev.Folder)
		}
	}
	h.clock.Advance(89 * time.Second)
	for _, ev := range h.events(t) {
		mustNot(t, ev.Type == domain.FolderResumed, "resumed before its Retry-After")
	}
	h.clock.Advance(time.Second)
	if st := <-done; st != domain.StateWarnings {
		t.Fatalf("state %s, want finished with warnings (one quarantined item)", st)
	}
	rep, err := projections.BuildReport(h.log, h.cfg.Run)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ItemsStored != 1699 || rep.FoldersSkipped != 0 || rep.StallSourceS < 90 {
		t.Fatalf("report %+v", rep)
	}
}

func mustNot(t *testing.T, bad bool, msg string) {
	t.Helper()
	if bad {
		t.Fatal(msg)
	}
}

// A recorded history, replayed into a fresh planner, yields exactly the same
// decisions, as Temporal replays workflow histories: the planner is a pure
// function of the outcomes it is fed.
func TestPlannerReplaysItsHistory(t *testing.T) {
	h := newHarness(t, parkTenant)
	h.cfg.ThrottlePatience = time.Minute // the 90 s hint exceeds it: skipped
	st, err := pipeline.Run(context.Background(), h.deps, h.cfg)
	if err != nil || st != domain.StateWarnings {
		t.Fatalf("run: %s %v", st, err)
	}
	history := h.events(t)

	plannerTypes := map[domain.EventType]bool{domain.ListRequested: true, domain.BatchRequested: true, domain.BatchSplit: true,
		domain.ItemInferredDirty: true, domain.ItemQuarantined: true, domain.ItemReleased: true, domain.FolderParked: true,
		domain.FolderResumed: true, domain.FolderSkipped: true, domain.FolderCompleted: true, domain.StorageSealRequested: true, domain.RunFinished: true}
	inputTypes := map[domain.EventType]bool{domain.MailboxDiscovered: true, domain.FolderDiscovered: true, domain.DiscoveryCompleted: true,
		domain.ItemsListed: true, domain.BatchFetched: true, domain.BatchFailed: true, domain.Throttled: true, domain.ParkExpired: true, domain.StorageSealed: true}
	var want []string
	for _, ev := range history {
		if plannerTypes[ev.Type] {
			want = append(want, string(ev.Type)+" "+ev.ID)
		}
	}

	empty, err := eventlog.Open(eventlog.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	clock := &fakeClock{}
	p := pipeline.NewPlanner(pipeline.PlannerConfig{Run: h.cfg.Run, BatchSize: h.cfg.BatchSize, ThrottlePatience: h.cfg.ThrottlePatience,
		QuarantineRetry: h.cfg.QuarantineRetry, Limits: h.cfg.Limits, Backoff: domain.DefaultBackoff},
		clock, projections.Resume{Log: empty}, zerolog.Nop(), func(domain.Event) {})
	defer p.Close()
	var got []string
	for _, ev := range history {
		if !inputTypes[ev.Type] {
			continue
		}
		clock.mu.Lock()
		clock.now = ev.Time
		clock.mu.Unlock()
		b, _ := json.Marshal(ev)
		out, err := p.Handle(message.NewMessage(ev.ID, b))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			got = append(got, m.Metadata.Get("type")+" "+m.UUID)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("replay made %d decisions, history has %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("decision %d: replay %s, history %s", i, got[i], want[i])
		}
	}
}

// slowDiscovery holds back the second mailbox's discovery until the first
// mailbox's folder has been listed, and spends three budget units per
// mailbox's folder tree.
type slowDiscovery struct {
	pipeline.Source
	first, late string
	listed      chan struct{}
	once        sync.Once
}

func (s *slowDiscovery) Folders(ctx context.Context, mailbox string) ([]domain.Folder, error) {
	pipeline.SpendBudget(ctx, 3)
	if mailbox == s.late {
		select {
		case <-s.listed:
		case <-time.After(20 * time.Second):
			return nil, fmt.Errorf("%s: the first mailbox was not listed while discovery went on", mailbox)
		}
	}
	return s.Source.Folders(ctx, mailbox)
}

func (s *slowDiscovery) List(ctx context.Context, mailbox, folderID, pageToken string) (domain.Page, error) {
	if mailbox == s.first {
		s.once.Do(func() { close(s.listed) })
	}
	return s.Source.List(ctx, mailbox, folderID, pageToken)
}

// A mailbox's folders are listed as soon as it is discovered, not when the
// whole tenant is; the log keeps the mailboxes in their order all the same;
// and what discovery spent is charged to each mailbox's budget window (with
// 4 requests per window, a mailbox whose discovery spent 3 lists once, then
// waits for the window).
func TestListingStartsWhileDiscoveryGoesOn(t *testing.T) {
	h := newHarness(t, `mailboxes:
  - address: a@contoso.test
    folders:
      - path: Inbox
        items: 10
  - address: b@contoso.test
    folders:
      - path: Inbox
        items: 10
`)
	h.deps.Source = &slowDiscovery{Source: h.deps.Source, first: "a@contoso.test", late: "b@contoso.test", listed: make(chan struct{})}
	h.cfg.Limits.WindowRequests, h.cfg.Limits.Window = 4, time.Minute
	h.cfg.BatchSize = 10
	done := h.start(t)
	h.waitFor(t, domain.DiscoveryCompleted)
	var order []string
	spent := 0
	for _, ev := range h.events(t) {
		if ev.Type == domain.MailboxDiscovered {
			order = append(order, ev.Mailbox)
			spent += ev.Requests
			if ev.Outcome != domain.OutcomeSuccess {
				t.Fatalf("discovery of %s: %s %s", ev.Mailbox, ev.Code, ev.Message)
			}
		}
	}
	if fmt.Sprint(order) != "[a@contoso.test b@contoso.test]" || spent != 6 {
		t.Fatalf("mailboxes discovered %v spending %d units; want a then b, 6 units", order, spent)
	}
	start := h.clock.Now()
	// Both mailboxes listed before the clock moves: their windows were
	// charged at the start, and the fetches wait for the minute to pass.
	h.waitForN(t, domain.ItemsListed, 2)
	h.clock.Advance(time.Minute + time.Second)
	if st := <-done; st != domain.StateFinished {
		t.Fatalf("state %s", st)
	}
	rep, err := projections.BuildReport(h.log, h.cfg.Run)
	if err != nil {
		t.Fatal(err)
	}
	// The window: 3 discovery units + 1 listing fill it; each fetch waited
	// for the window to move (the clock moved once, by a minute).
	for _, ev := range h.events(t) {
		mustNot(t, ev.Type == domain.BatchRequested && ev.Time.Before(start.Add(time.Minute)), "a fetch was sent with the mailbox's window full")
	}
	if rep.ItemsStored != 20 || rep.DiscoveryRequests != 6 {
		t.Fatalf("report: stored %d, discovery requests %d; want 20 and 6", rep.ItemsStored, rep.DiscoveryRequests)
	}
}
