package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

type learned map[string]float64

func (l learned) Pace(mailbox string) (domain.LearnedPace, bool, error) {
	r, ok := l[mailbox]
	return domain.LearnedPace{Rate: r}, ok, nil
}

// The pacer: a learned pace spaces requests from the start; a throttle cuts
// the mailbox's pace (or the app's, for a tenant-wide limit) once per
// event and holds it for the Retry-After, which a request does not wait
// out on a worker; a waiter wakes when the clock says so.
func TestPacerHoldsMailboxesAndTheApp(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	p := pipeline.NewPacer(clock, learned{"a@x": 10})

	// 10 a second with a tenth of a second of burst: two go at once, the
	// third waits for the clock.
	for i := range 2 {
		if _, wait, err := p.Wait(ctx, "a@x", 1, time.Second); wait != 0 || err != nil {
			t.Fatalf("request %d: waits %v, %v", i, wait, err)
		}
	}
	got := make(chan time.Time, 1)
	go func() {
		at, _, _ := p.Wait(ctx, "a@x", 1, time.Second)
		got <- at
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		clock.mu.Lock()
		n := len(clock.timers)
		clock.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-got:
		t.Fatal("the third request did not wait for its turn")
	default:
	}
	clock.Advance(100 * time.Millisecond)
	if at := <-got; !at.Equal(clock.Now()) {
		t.Fatalf("sent at %v, want %v", at, clock.Now())
	}
	// Another mailbox has a pace of its own.
	if _, wait, _ := p.Wait(ctx, "b@x", 1, time.Second); wait != 0 {
		t.Fatalf("another mailbox waits %v", wait)
	}

	// A throttle cuts a@x's pace and holds it: the hold is handed back.
	sent := clock.Now()
	out := p.Done("a@x", sent, 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxRequestRate limit.", RetryAfter: 30 * time.Second})
	if out.App || out.Rate != 10*domain.PaceBeta {
		t.Fatalf("first throttle: %+v", out)
	}
	if echo := p.Done("a@x", sent, 1, 0, &domain.Failure{Class: domain.ClassThrottled, RetryAfter: 30 * time.Second}); echo.Rate != 0 {
		t.Fatalf("a throttle of a request sent before the cut cut again: %+v", echo)
	}
	if _, wait, _ := p.Wait(ctx, "a@x", 1, 2*time.Second); wait != 30*time.Second {
		t.Fatalf("during the Retry-After a request is handed back after %v, want 30s", wait)
	}
	if _, wait, _ := p.Wait(ctx, "b@x", 1, time.Second); wait != 0 {
		t.Fatalf("a mailbox's throttle held another mailbox for %v", wait)
	}

	// A tenant-wide throttle holds every mailbox.
	out = p.Done("b@x", clock.Now(), 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its tenant-wide request limit.", RetryAfter: 5 * time.Second})
	if !out.App || out.Rate <= 0 {
		t.Fatalf("tenant-wide throttle: %+v", out)
	}
	if _, wait, _ := p.Wait(ctx, "c@x", 1, time.Second); wait != 5*time.Second {
		t.Fatalf("after a tenant-wide throttle a new mailbox waits %v, want 5s", wait)
	}
}

// A throttle whose source says whose budget it was charged to cuts that
// pace: EWS's ErrorServerBusy under impersonation is the mailbox's, without
// it the app's; a back-off of minutes makes the limit costly.
func TestPacerFollowsTheBudgetCharged(t *testing.T) {
	for _, c := range []struct {
		budget string
		app    bool
	}{{domain.BudgetMailbox, false}, {domain.BudgetApp, true}, {"", true}} {
		clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
		p := pipeline.NewPacer(clock, learned{"a@x": 10, "": 100})
		out := p.Done("a@x", clock.Now(), 1, 0, &domain.Failure{Class: domain.ClassThrottled, Code: "ErrorServerBusy", RetryAfter: 5 * time.Minute, Budget: c.budget})
		if out.App != c.app || out.Rate <= 0 || !out.Costly {
			t.Errorf("budget %q: %+v, want the app's %v and costly", c.budget, out, c.app)
		}
		_, wait, _ := p.Wait(context.Background(), "b@x", 1, time.Second)
		if held := wait > 0; held != c.app {
			t.Errorf("budget %q: another mailbox waits %v", c.budget, wait)
		}
	}
}

// Exchange applies one throttling policy to every mailbox of a tenant: a
// mailbox that starts after another met the limit is paced at once at the
// rate that one found, instead of crossing the limit itself to find it.
func TestPacerStartsNewMailboxesAtASiblingsLimit(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	p := pipeline.NewPacer(clock, nil)
	burst := func(mailbox string) (paced bool) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 50 {
				p.Wait(ctx, mailbox, 1, time.Second)
			}
		}()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case <-done:
				return false // 50 requests went at once: unpaced
			default:
			}
			clock.mu.Lock()
			n := len(clock.timers)
			clock.mu.Unlock()
			if n > 0 {
				paced = true
				break
			}
			time.Sleep(time.Millisecond)
		}
		for { // let the waits finish
			select {
			case <-done:
				return paced
			default:
				clock.Advance(time.Second)
				time.Sleep(time.Millisecond)
			}
		}
	}
	if burst("a@x") {
		t.Fatal("the first mailbox was paced before any limit was met")
	}
	throttle := func(mailbox string) {
		t.Helper()
		out := p.Done(mailbox, clock.Now(), 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxConcurrency limit.", RetryAfter: time.Second})
		if out.App || out.Rate <= 0 {
			t.Fatalf("throttle: %+v", out)
		}
	}
	throttle("a@x")
	// One mailbox's limit may be its own (a busy folder): alone, it does
	// not slow the mailboxes that start after it.
	if burst("new@x") {
		t.Fatal("a mailbox was paced at the limit one other mailbox met")
	}
	if burst("b@x") {
		t.Fatal("the second mailbox was paced before two had met the limit")
	}
	throttle("b@x")
	if !burst("later@x") {
		t.Fatal("a mailbox that started after two siblings met the limit was not paced")
	}
}

// Discovery's requests, which the pacer does not hold, still count: the
// server's window holds them beside the fetches, so a limit met right after
// discovery is estimated from both (6 a second here, not the 3 fetches').
func TestPacerCountsWhatItDoesNotHold(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	p := pipeline.NewPacer(clock, nil)
	spent := pipeline.NotingSpends(ctx, func(units int) { p.Note("a@x", units) })
	pipeline.SpendBudget(spent, 2) // a $batch of two
	pipeline.SpendBudget(spent, 1)
	clock.Advance(30 * time.Millisecond)
	var sent time.Time
	for range 4 {
		at, wait, err := p.Wait(ctx, "a@x", 1, time.Second)
		if wait != 0 || err != nil {
			t.Fatalf("slow start waits %v, %v", wait, err)
		}
		sent = at
	}
	clock.Advance(10 * time.Millisecond)
	po := p.Done("a@x", sent, 1, 0, &domain.Failure{Class: domain.ClassThrottled, Code: "ApplicationThrottled", RetryAfter: 960 * time.Millisecond})
	if po.Rate < 5.5 || po.Rate > 6.2 {
		t.Fatalf("paced at %.2f after a window of 6 filled by discovery and fetches, want about 5.7", po.Rate)
	}
}
