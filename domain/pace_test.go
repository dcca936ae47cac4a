package domain

import (
	"container/heap"
	"testing"
	"time"
)

// paceServer is a sliding-window limiter as Exchange Online applies per
// mailbox: at most limit(t) requests in any window, at most concurrency in
// flight; over either it answers 429 with the Retry-After until a slot frees.
type paceServer struct {
	window      time.Duration
	limit       func(t time.Duration) int
	concurrency int
	latency     time.Duration
	admitted    []time.Duration
	inFlight    int
}

func (s *paceServer) admit(t time.Duration) (ok bool, retryAfter time.Duration) {
	for len(s.admitted) > 0 && s.admitted[0] <= t-s.window {
		s.admitted = s.admitted[1:]
	}
	if s.inFlight >= s.concurrency {
		return false, time.Second
	}
	if len(s.admitted) >= s.limit(t) {
		return false, s.admitted[len(s.admitted)-s.limit(t)] + s.window - t
	}
	s.admitted = append(s.admitted, t)
	s.inFlight++
	return true, 0
}

type simEvent struct {
	at     time.Duration
	send   bool // a worker asks the pace (else: a reply arrives)
	sentAt time.Duration
	ok     bool
	ra     time.Duration
}
type simQueue []simEvent

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any          { old := *q; e := old[len(old)-1]; *q = old[:len(old)-1]; return e }

type paceResult struct {
	throttledShare float64 // of all requests sent
	capacityUsed   float64 // admitted over what the server allowed while work remained
	duration       time.Duration
}

// runPace sends work requests through a Pace from workers concurrent
// clients against s, in virtual time: a worker asks the pace, waits as it
// says, sends, and on the reply starts over (a throttled request is sent
// again).
func runPace(s *paceServer, pace *Pace, work, workers int) paceResult {
	epoch := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	q := &simQueue{}
	for w := 0; w < workers; w++ {
		heap.Push(q, simEvent{send: true})
	}
	done, sent, throttled, out := 0, 0, 0, 0
	var now time.Duration
	for q.Len() > 0 && done < work {
		ev := heap.Pop(q).(simEvent)
		now = ev.at
		if !ev.send {
			out--
			if ev.ok {
				s.inFlight--
				done++
				pace.Succeeded(1, s.latency)
			} else {
				throttled++
				pace.Throttled(epoch.Add(now), epoch.Add(ev.sentAt), ev.ra)
			}
		}
		if done+out >= work {
			continue
		}
		if wait := pace.Admit(epoch.Add(now), 1); wait > 0 {
			heap.Push(q, simEvent{at: now + wait, send: true})
			continue
		}
		sent++
		out++
		ok, ra := s.admit(now)
		heap.Push(q, simEvent{at: now + s.latency, sentAt: now, ok: ok, ra: ra})
	}
	// What the server would have taken while work remained: its limit per
	// window, integrated over the run.
	var allowed float64
	step := s.window / 50
	for t := time.Duration(0); t < now; t += step {
		allowed += float64(s.limit(t)) * float64(step) / float64(s.window)
	}
	return paceResult{throttledShare: float64(throttled) / float64(sent), capacityUsed: float64(done) / allowed, duration: now}
}

func TestPaceFindsAndHoldsTheLimit(t *testing.T) {
	fixed := func(n int) func(time.Duration) int { return func(time.Duration) int { return n } }
	halved := func(n int, from, to time.Duration) func(time.Duration) int {
		return func(t time.Duration) int {
			if t >= from && t < to {
				return n / 2
			}
			return n
		}
	}
	for _, c := range []struct {
		name    string
		server  paceServer
		work    int
		learned float64
		minUsed float64
	}{
		{"50 per 5 s", paceServer{window: 5 * time.Second, limit: fixed(50), concurrency: 4, latency: 20 * time.Millisecond}, 3000, 0, 0.9},
		{"600 per 5 s", paceServer{window: 5 * time.Second, limit: fixed(600), concurrency: 4, latency: 20 * time.Millisecond}, 20000, 0, 0.9},
		{"600 per 5 s, halved for 30 s", paceServer{window: 5 * time.Second, limit: halved(600, 40*time.Second, 70*time.Second), concurrency: 4, latency: 20 * time.Millisecond}, 20000, 0, 0.9},
		{"50 per 5 s, learned before", paceServer{window: 5 * time.Second, limit: fixed(50), concurrency: 4, latency: 20 * time.Millisecond}, 1000, 7.5, 0.9},
		{"Exchange Online's 10,000 per 10 minutes", paceServer{window: 10 * time.Minute, limit: fixed(10000), concurrency: 4, latency: 50 * time.Millisecond}, 30000, 0, 0.9},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.server
			r := runPace(&s, NewPace(c.learned), c.work, 4)
			t.Logf("%.2f %% throttled, %.1f %% of capacity, %v", 100*r.throttledShare, 100*r.capacityUsed, r.duration)
			if r.throttledShare > 0.01 || r.capacityUsed < c.minUsed {
				t.Errorf("%.2f %% throttled (at most 1 %%), %.1f %% of capacity used (at least %.0f %%)", 100*r.throttledShare, 100*r.capacityUsed, 100*c.minUsed)
			}
		})
	}
}

// A server that never throttles is never waited for; the first throttle
// paces at Beta of the rate measured, and its echoes neither cut again nor
// lift the hold early.
func TestPaceSlowStartIsUnpaced(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	p := NewPace(0)
	for i := range 1000 {
		if w := p.Admit(now.Add(time.Duration(i)*time.Millisecond), 1); w != 0 {
			t.Fatalf("request %d waited %v before any throttle", i, w)
		}
		p.Succeeded(1, 20*time.Millisecond)
	}
	at := now.Add(time.Second)
	if !p.Throttled(at, at, 2*time.Second) {
		t.Fatal("the first throttle did not cut")
	}
	if r := p.Rate(); r < 0.6*1000*PaceBeta || r > 1000*PaceBeta {
		t.Fatalf("cut to %.0f after sending 1,000 a second", r)
	}
	if p.Throttled(at.Add(10*time.Millisecond), at.Add(-time.Millisecond), time.Second) {
		t.Fatal("a request sent before the cut cut again")
	}
	if w := p.Wait(at.Add(time.Second), 1); w != time.Second {
		t.Fatalf("the Retry-After holds for %v more, want 1s", w)
	}
}

// A server busy at the very first request does not leave the run crawling
// at the rate of that one request.
func TestPaceFirstThrottleAtTheFirstRequest(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	p := NewPace(0)
	p.Admit(now, 1)
	p.Throttled(now.Add(50*time.Millisecond), now, time.Minute)
	if r := p.Rate(); r != paceFirstCut*PaceBeta {
		t.Fatalf("paced at %.2f after a throttle of the first request, want %.2f", r, paceFirstCut*PaceBeta)
	}
}
