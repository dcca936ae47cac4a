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
	clock.Advance(250 * time.Millisecond) // the other scout's limit does not come
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

// Mailboxes that start together do not all cross the limit to find it: the
// first two scout, unpaced, while the others wait; a scout that met a limit
// is replaced by the next to start; once two have met one, the others start
// at the limit found. Without any limit met the others wait two seconds at
// most, then go unpaced. Paces remembered from an earlier run are limits
// met.
func TestPacerScoutsWhileOthersWait(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	type first struct {
		at   time.Time
		done chan struct{}
	}
	// send starts mailbox's first request and says whether it went at once.
	send := func(t *testing.T, clock *fakeClock, p *pipeline.Pacer, mailbox string) (*first, bool) {
		t.Helper()
		f := &first{done: make(chan struct{})}
		go func() {
			defer close(f.done)
			f.at, _, _ = p.Wait(ctx, mailbox, 1, time.Second)
		}()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			select {
			case <-f.done:
				return f, true
			default:
			}
			clock.mu.Lock()
			n := len(clock.timers)
			clock.mu.Unlock()
			if n > 0 {
				return f, false
			}
		}
		t.Fatalf("%s: neither sent nor waiting", mailbox)
		return nil, false
	}
	wentAfter := func(t *testing.T, f *first, what string) time.Time {
		t.Helper()
		select {
		case <-f.done:
			return f.at
		case <-time.After(10 * time.Second):
			t.Fatalf("still waiting after %s", what)
			return time.Time{}
		}
	}
	// stillWaiting fails if f's request went: a moment of real time lets a
	// wrongly woken waiter go.
	stillWaiting := func(t *testing.T, f *first, why string) {
		t.Helper()
		select {
		case <-f.done:
			t.Fatal(why)
		case <-time.After(20 * time.Millisecond):
		}
	}
	throttle := func(t *testing.T, clock *fakeClock, p *pipeline.Pacer, mailbox string) float64 {
		t.Helper()
		out := p.Done(mailbox, clock.Now(), 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxConcurrency limit.", RetryAfter: time.Second})
		if out.App || out.Rate <= 0 {
			t.Fatalf("throttle of %s: %+v", mailbox, out)
		}
		return out.Rate
	}

	t.Run("limits met", func(t *testing.T) {
		clock := &fakeClock{now: start}
		p := pipeline.NewPacer(clock, nil)
		for _, m := range []string{"a@x", "b@x"} {
			if _, went := send(t, clock, p, m); !went {
				t.Fatalf("%s waited: the first two scout", m)
			}
		}
		c, went := send(t, clock, p, "c@x")
		if went {
			t.Fatal("a third mailbox started while two scouted")
		}
		throttle(t, clock, p, "a@x")
		// The other scout's limit is likely on its way: c@x waits a
		// moment for it before it takes a@x's place.
		stillWaiting(t, c, "c@x replaced a scout before the other's limit could come")
		clock.Advance(250 * time.Millisecond)
		wentAfter(t, c, "a scout met a limit: the next mailbox takes its place")
		d, went := send(t, clock, p, "d@x")
		if went {
			t.Fatal("d@x started while b@x and c@x scouted")
		}
		rate := throttle(t, clock, p, "b@x")
		stillWaiting(t, d, "d@x started before the limit found had settled")
		clock.Advance(250 * time.Millisecond)
		wentAfter(t, d, "two scouts met a limit")
		// d@x is paced at the limit the scouts found: its next request
		// waits its turn (a tenth of a second's burst is one request at
		// this rate), where an unpaced mailbox would go at once.
		if _, went := send(t, clock, p, "d@x"); went {
			t.Fatalf("d@x's second request went at once: not paced at the %.2f found", rate)
		}
	})

	t.Run("no limit met", func(t *testing.T) {
		clock := &fakeClock{now: start}
		p := pipeline.NewPacer(clock, nil)
		send(t, clock, p, "a@x")
		send(t, clock, p, "b@x")
		c, went := send(t, clock, p, "c@x")
		if went {
			t.Fatal("a third mailbox started while two scouted")
		}
		clock.Advance(time.Second)
		stillWaiting(t, c, "c@x went before the scouting's two seconds")
		clock.Advance(time.Second)
		if at := wentAfter(t, c, "two seconds"); !at.Equal(start.Add(2 * time.Second)) {
			t.Fatalf("c@x went at %v", at)
		}
		// Unpaced: a burst goes at once.
		for i := range 20 {
			if _, went := send(t, clock, p, "c@x"); !went {
				t.Fatalf("request %d of c@x waited: paced with no limit met", i)
			}
		}
		if _, went := send(t, clock, p, "late@x"); !went {
			t.Fatal("a mailbox starting after the scouting waited")
		}
	})

	t.Run("paces remembered", func(t *testing.T) {
		// Two mailboxes with paces an earlier run learned go at them, and
		// are the limits a new mailbox starts at, without scouting.
		clock := &fakeClock{now: start}
		p := pipeline.NewPacer(clock, learned{"m1@x": 3, "m2@x": 4})
		for _, m := range []string{"m1@x", "m2@x", "new@x"} {
			if _, went := send(t, clock, p, m); !went {
				t.Fatalf("%s waited to start", m)
			}
		}
		if _, went := send(t, clock, p, "new@x"); went {
			t.Fatal("new@x's second request went at once: not paced at the remembered limit")
		}
	})
}

// A request of the first estimate's burst that comes back refused too
// lowers the estimate, and the pacer says so: the report, the next run's
// memory and the siblings' limit take the corrected pace, not the first.
func TestPacerReportsTheEstimateTakenBack(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	p := pipeline.NewPacer(clock, nil)
	send := func() time.Time {
		at, wait, err := p.Wait(ctx, "a@x", 1, time.Second)
		if wait != 0 || err != nil {
			t.Fatalf("slow start waits %v, %v", wait, err)
		}
		return at
	}
	for range 9 {
		send()
		clock.Advance(10 * time.Millisecond)
	}
	refused := send()
	clock.Advance(time.Millisecond)
	alsoRefused := send() // sent just after it: counted as admitted first
	clock.Advance(20 * time.Millisecond)
	throttle := func(sent time.Time) pipeline.PaceOutcome {
		return p.Done("a@x", sent, 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxRequestRate limit.", RetryAfter: 4900 * time.Millisecond})
	}
	first := throttle(refused)
	second := throttle(alsoRefused)
	if first.Rate <= 0 || second.Rate <= 0 || second.Rate >= first.Rate {
		t.Fatalf("first estimate's pace %.3f, after the take-back %.3f: want it lower and reported", first.Rate, second.Rate)
	}
	// 9 admitted over the 0.09 s before the refusal and its 4.9 s
	// Retry-After: 1.80 a second, paced at 95 % of it.
	if want := 0.95 * 9 / 4.99; second.Rate < want*0.99 || second.Rate > want*1.01 {
		t.Fatalf("after the take-back %.3f, want %.3f", second.Rate, want)
	}
}

type learnedPaces map[string]domain.LearnedPace

func (l learnedPaces) Pace(mailbox string) (domain.LearnedPace, bool, error) {
	p, ok := l[mailbox]
	return p, ok, nil
}

// A server whose capacity falls lowers every mailbox's limit at once: once
// two mailboxes' throttles have told it (a Retry-After of half the
// window), the others' paces follow, held until the server admits again,
// before their own requests meet the lower limit; one mailbox's fall alone
// (maybe its own folder's) moves no other.
func TestPacerFollowsAFallOfTheServersCapacity(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	paces := learnedPaces{}
	for _, m := range []string{"a@x", "b@x", "c@x", "d@x"} {
		paces[m] = domain.LearnedPace{Rate: 10, Window: 5 * time.Second}
	}
	p := pipeline.NewPacer(clock, paces)
	// A window and more at 10 a second each, answered at once.
	for clock.Now().Before(start.Add(6 * time.Second)) {
		for m := range paces {
			if at, wait, err := p.Wait(ctx, m, 1, 0); err == nil && wait == 0 && !at.IsZero() {
				p.Done(m, at, 1, 10*time.Millisecond, nil)
			}
		}
		clock.Advance(100 * time.Millisecond)
	}
	halved := func(m string) pipeline.PaceOutcome {
		return p.Done(m, clock.Now(), 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxRequestRate limit.", RetryAfter: 2500 * time.Millisecond})
	}
	held := func(m string) time.Duration {
		_, wait, _ := p.Wait(ctx, m, 1, 0)
		return wait
	}
	// Its pace had climbed a little past the 10 a second it sent at.
	if out := halved("a@x"); out.Rate < 4.5 || out.Rate > 5.5 {
		t.Fatalf("a fall to half cut a@x to %.2f, want 95 %% of half its pace", out.Rate)
	}
	if w := held("c@x"); w != 0 {
		t.Fatalf("one mailbox's fall held c@x for %v", w)
	}
	clock.Advance(300 * time.Millisecond)
	halved("b@x")
	for _, m := range []string{"c@x", "d@x"} {
		if w := held(m); w < 2*time.Second {
			t.Errorf("after two mailboxes' falls %s is held %v, want until the server admits again (2.5 s)", m, w)
		}
	}
	// Once the server admits again, the follower goes at the lower pace:
	// a throttle now is its own, cut from there.
	clock.Advance(3 * time.Second)
	if out := p.Done("c@x", clock.Now(), 1, 0, &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxRequestRate limit."}); out.Rate > 5*domain.PaceBeta {
		t.Errorf("c@x cut to %.2f from the pace it followed, want at most %.2f", out.Rate, 5*domain.PaceBeta)
	}
}

// Ten mailboxes whose server's capacity halves at 10 s for 30 s (the
// tenant of BenchmarkAdaptivePace's halved case, whose run ends within the
// halving): each mailbox probing for the old limit on its own would cost
// each its own refusals, all at the same moments, since they fell
// together. One probes for all: the others hold just under the limit they
// found, and rise when its probes hold.
func TestPacerOneMailboxProbesAFallenCapacity(t *testing.T) {
	const (
		mailboxes = 10
		step      = 10 * time.Millisecond
		latency   = 20 * time.Millisecond
		run       = 40 * time.Second
	)
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	paces := learnedPaces{}
	servers := map[string]*pipeline.WindowServer{}
	// Each mailbox's learned pace climbs past the limit near 5 s (its own
	// cut, not the fall's): refusals are counted from a second before
	// the fall.
	const fallFrom = 10 * time.Second
	halved := func(t time.Duration) int {
		if t >= fallFrom && t < 40*time.Second {
			return 25
		}
		return 50
	}
	var names []string
	for i := range mailboxes {
		m := string(rune('a'+i)) + "@x"
		names = append(names, m)
		paces[m] = domain.LearnedPace{Rate: 9.5, Window: 5 * time.Second}
		servers[m] = &pipeline.WindowServer{Window: 5 * time.Second, Limit: halved}
	}
	p := pipeline.NewPacer(clock, paces)
	for _, m := range names {
		if _, err := p.Ready(context.Background(), m, 1, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	type answer struct {
		mailbox string
		sentAt  time.Time
		at      time.Duration
		ok      bool
		ra      time.Duration
	}
	var pending []answer
	inFlight := map[string]int{}
	throttled, sent := 0, 0
	for now := time.Duration(0); now < run; now += step {
		keep := pending[:0]
		for _, a := range pending {
			if a.at > now {
				keep = append(keep, a)
				continue
			}
			inFlight[a.mailbox]--
			var fl *domain.Failure
			if !a.ok {
				fl = &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxRequestRate limit.", RetryAfter: a.ra}
			}
			p.Done(a.mailbox, a.sentAt, 1, latency, fl)
		}
		pending = keep
		for _, m := range names {
			for inFlight[m] < 4 {
				at, ok := p.Take(m, 1)
				if !ok {
					break
				}
				ok, ra := servers[m].Admit(now)
				sent++
				if !ok && now >= fallFrom-time.Second {
					throttled++
				}
				inFlight[m]++
				pending = append(pending, answer{mailbox: m, sentAt: at, at: now + latency, ok: ok, ra: ra})
			}
		}
		clock.Advance(step)
	}
	var granted float64
	for t := time.Duration(0); t < run; t += step {
		granted += float64(halved(t)) * step.Seconds() / 5
	}
	admitted := 0
	for _, s := range servers {
		admitted += s.All
	}
	used := float64(admitted) / (granted * mailboxes)
	t.Logf("%d of %d refused (%.2f %%), %.1f %% of the capacity used", throttled, sent, 100*float64(throttled)/float64(sent), 100*used)
	// Each mailbox probing on its own: 1.35 % refused, 87.6 % used.
	if share := float64(throttled) / float64(sent); share > 0.01 || used < 0.85 {
		t.Errorf("%.2f %% refused (at most 1 %%), %.1f %% of the capacity used (at least 85 %%)", 100*share, 100*used)
	}
}
