package pipeline

import (
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

type rememberedPaces map[string]domain.LearnedPace

func (r rememberedPaces) Pace(m string) (domain.LearnedPace, bool, error) {
	l, ok := r[m]
	return l, ok, nil
}

// WindowServer is one mailbox's window limit at a server whose capacity
// follows Limit (per window, at t since the start): admitted while the
// window holds fewer, else refused with the time until it does. Exported
// for the tests of package pipeline_test too.
type WindowServer struct {
	Window   time.Duration
	Limit    func(t time.Duration) int
	admitted []time.Duration
	All      int // requests admitted
}

// Admit answers a request at t: admitted, or refused with a Retry-After.
func (s *WindowServer) Admit(t time.Duration) (bool, time.Duration) {
	for len(s.admitted) > 0 && s.admitted[0] <= t-s.Window {
		s.admitted = s.admitted[1:]
	}
	if n := s.Limit(t); len(s.admitted) >= n {
		return false, s.admitted[len(s.admitted)-n] + s.Window - t
	}
	s.admitted = append(s.admitted, t)
	s.All++
	return true, 0
}

// probingRun drives three mailboxes' paces against sliding windows whose
// capacity halves from 10 s to lowUntil, in steps of 10 ms, each answer
// coming at once; quiet says whether a mailbox sends nothing at a step,
// and at is called at every step.
func probingRun(t *testing.T, lowUntil, until time.Duration, quiet func(p *Pacer, m string, now time.Duration) bool, at func(p *Pacer, now time.Duration)) *Pacer {
	t.Helper()
	const step = 10 * time.Millisecond
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := &manualClock{now: start}
	names := []string{"a@x", "b@x", "c@x"}
	memory := rememberedPaces{}
	servers := map[string]*WindowServer{}
	halved := func(t time.Duration) int {
		if t >= 10*time.Second && t < lowUntil {
			return 25
		}
		return 50
	}
	for _, m := range names {
		memory[m] = domain.LearnedPace{Rate: 9.5, Window: 5 * time.Second}
		servers[m] = &WindowServer{Window: 5 * time.Second, Limit: halved}
	}
	p := NewPacer(clock, memory)
	for now := time.Duration(0); now < until; now += step {
		for _, m := range names {
			if quiet(p, m, now) {
				continue
			}
			p.mu.Lock()
			p.mailbox(m).started = true
			p.mu.Unlock()
			sentAt, ok := p.Take(m, 1)
			if !ok {
				continue
			}
			var fl *domain.Failure
			if ok, ra := servers[m].Admit(now); !ok {
				fl = &domain.Failure{Class: domain.ClassThrottled, Message: "Application is over its MailboxRequestRate limit.", RetryAfter: ra}
			}
			p.Done(m, sentAt, 1, 20*time.Millisecond, fl)
		}
		at(p, now)
		clock.now = clock.now.Add(step)
	}
	return p
}

// deferring lists the mailboxes that defer to a prober.
func deferring(p *Pacer) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for m, mp := range p.mailboxes {
		if mp.pace.Deferring() {
			out = append(out, m)
		}
	}
	return out
}

// The mailboxes that fell together defer to one prober while the
// capacity stays low; once the prober finds the capacity back (its probing
// ends at an ordinary cut near the limit it recalled) or goes quiet, none
// of them waits out its deferral.
func TestPacerEndsTheProbingOfAFallenCapacity(t *testing.T) {
	never := func(*Pacer, string, time.Duration) bool { return false }
	t.Run("the capacity back", func(t *testing.T) {
		var prober string
		var deferredAt15 []string
		p := probingRun(t, 30*time.Second, 55*time.Second, never, func(p *Pacer, now time.Duration) {
			if now == 15*time.Second {
				prober, deferredAt15 = p.prober, deferring(p)
			}
		})
		if prober == "" || len(deferredAt15) != 2 {
			t.Fatalf("at 15 s, under the halved capacity: prober %q, deferring %v; want one prober and two deferring", prober, deferredAt15)
		}
		if d := deferring(p); p.prober != "" || len(d) > 0 {
			t.Errorf("25 s after the capacity came back: prober %q, deferring %v", p.prober, d)
		}
	})
	t.Run("the prober gone quiet", func(t *testing.T) {
		var prober string
		var left []string
		stopped := 20 * time.Second
		quiet := func(p *Pacer, m string, now time.Duration) bool {
			return now >= stopped && m == prober
		}
		probingRun(t, time.Minute, 32*time.Second, quiet, func(p *Pacer, now time.Duration) {
			if now == 15*time.Second {
				prober = p.prober
			}
			if now == stopped+proberQuiet*5*time.Second+time.Second {
				left = deferring(p)
			}
		})
		if prober == "" {
			t.Fatal("no prober under the halved capacity")
		}
		if len(left) > 0 {
			t.Errorf("%v still deferring to %s, quiet for %d windows", left, prober, proberQuiet)
		}
	})
}
