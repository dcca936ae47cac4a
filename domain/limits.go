package domain

import (
	"math"
	"time"
)

// Limits are the self-imposed per-mailbox request limits. Defaults follow
// Exchange Online's documented budget: 4 concurrent requests and 10,000
// requests per 10 minutes per app and mailbox.
type Limits struct {
	MaxInFlight    int
	WindowRequests int
	Window         time.Duration
	// App limits span every mailbox of the run (zero: none). Graph also
	// limits an app across a tenant, and newer documentation counts the 4
	// concurrent requests per app rather than per mailbox.
	AppMaxInFlight    int
	AppWindowRequests int
	AppWindow         time.Duration
}

// SafeWindow is the window the client counts its own requests in: a little
// longer than the server's, because the server counts a request when it
// arrives, and requests sent in order can arrive out of order. Without the
// margin a request sent exactly when the client's window frees a slot can
// reach the server before the one it replaces has left the server's window.
func SafeWindow(w time.Duration) time.Duration {
	return w + w/100 + 25*time.Millisecond
}

// RequestCost is what one request takes from the server's budget: Budget
// requests from the window (a Graph $batch counts each sub-request) and
// Concurrency slots while it runs (Graph runs up to 4 sub-requests of a
// batch at once).
type RequestCost struct {
	Budget      int
	Concurrency int
}

// UnitCost is the cost of a plain request.
var UnitCost = RequestCost{Budget: 1, Concurrency: 1}

// DefaultLimits are the documented Exchange Online limits.
var DefaultLimits = Limits{MaxInFlight: 4, WindowRequests: 10000, Window: 10 * time.Minute}

// SlidingWindow counts requests in the last Window. It keeps one timestamp per
// request in the window, which is bounded by WindowRequests, in a ring that
// grows as requests come (a mailbox that sends ten requests costs ten
// slots, not WindowRequests: a thousand mailboxes are a thousand windows).
// Timestamps are nanoseconds, so the garbage collector has nothing to scan.
type SlidingWindow struct {
	limit  int
	window time.Duration
	times  []int64 // ring of Unix nanoseconds, oldest at head
	head   int
	n      int
}

// NewSlidingWindow allows limit requests per window.
func NewSlidingWindow(limit int, window time.Duration) *SlidingWindow {
	if limit < 1 {
		limit = 1
	}
	return &SlidingWindow{limit: limit, window: window}
}

// SetLimit changes the requests allowed per window (a simulated server
// whose capacity changes with its load).
func (w *SlidingWindow) SetLimit(limit int) { w.limit = max(limit, 1) }

// Wait returns how long to wait before another request fits in the window.
func (w *SlidingWindow) Wait(now time.Time) time.Duration { return w.WaitN(now, 1) }

// WaitN returns how long to wait before n more requests fit in the window. n
// beyond the limit is treated as the limit (such a request can never fit
// otherwise, and the server counts it against an empty window the same way).
func (w *SlidingWindow) WaitN(now time.Time, n int) time.Duration {
	w.expire(now)
	n = min(max(n, 1), w.limit)
	free := w.limit - w.n
	if free >= n {
		return 0
	}
	// The (n-free)-th oldest request must leave the window first.
	oldest := w.times[(w.head+n-free-1)%len(w.times)]
	return time.Duration(oldest + int64(w.window) - now.UnixNano())
}

// AddN records n requests sent at now.
func (w *SlidingWindow) AddN(now time.Time, n int) {
	for range max(n, 1) {
		w.Add(now)
	}
}

// Add records a request sent at now.
func (w *SlidingWindow) Add(now time.Time) {
	w.expire(now)
	for w.n > 0 && w.n >= w.limit { // caller ignored Wait; forget the oldest
		w.head = (w.head + 1) % len(w.times)
		w.n--
	}
	if w.n == len(w.times) {
		w.grow()
	}
	w.times[(w.head+w.n)%len(w.times)] = now.UnixNano()
	w.n++
}

// grow doubles the ring (up to the limit), oldest first.
func (w *SlidingWindow) grow() {
	next := make([]int64, max(min(max(2*len(w.times), 8), w.limit), w.n+1))
	for i := range w.n {
		next[i] = w.times[(w.head+i)%len(w.times)]
	}
	w.times, w.head = next, 0
}

func (w *SlidingWindow) expire(now time.Time) {
	cutoff := now.UnixNano() - int64(w.window)
	for w.n > 0 && w.times[w.head] <= cutoff {
		w.head = (w.head + 1) % len(w.times)
		w.n--
	}
}

// Backoff is exponential backoff with jitter for transient failures.
type Backoff struct {
	Base        time.Duration
	Max         time.Duration
	MaxAttempts int
}

// DefaultBackoff tries a request eight times, waiting about 0.5s, 1s, 2s,
// 4s, 8s, 16s and 30s in between: a minute of patience, enough to ride out a
// storm of server errors without giving up on the folder.
var DefaultBackoff = Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, MaxAttempts: 8}

// Delay is the wait before attempt (2 for the first retry). jitter in [0,1)
// spreads retries ("equal jitter": half fixed, half random) so that many
// folders failing together do not retry together.
func (b Backoff) Delay(attempt int, jitter float64) time.Duration {
	if attempt < 2 {
		attempt = 2
	}
	d := float64(b.Base) * math.Pow(2, float64(attempt-2))
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	return time.Duration(d/2 + d/2*jitter)
}

// QuarantineDue says whether a quarantined item whose last attempt was at
// last should be tried alone again at now.
func QuarantineDue(last, now time.Time, every time.Duration) bool {
	return !now.Before(last.Add(every))
}
