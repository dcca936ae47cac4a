package domain

import (
	"math"
	"time"
)

// Pace finds and holds the request rate a server grants one mailbox (or one
// app), without being told the server's limits. Exchange's throttling is
// resource-based and unpublished: the only reliable signal is the 429 (or
// 503 with Retry-After, or EWS's ErrorServerBusy) that comes once the limit
// is crossed, and each one costs a Retry-After of waiting. The design is
// TCP CUBIC's (RFC 9438) with the congestion window read as a rate and its
// clock counted in budget units sent rather than in seconds, so that the
// time between two probes of the limit scales with the server's own rate:
//
//   - Until the first throttle nothing is paced (slow start): the rate
//     requests leave at is measured, and the first throttle takes it as
//     Wmax. A server that never throttles is never slowed down.
//   - A throttle cuts the rate to Beta (0.75) of the rate it was met at
//     (Wmax), once per congestion event: throttles of requests sent before
//     the cut, before any request succeeded at the new rate, or within 2 s
//     of the cut are that same event's echo (a server whose window filled
//     refuses much until it drains) and only extend the hold, unless more
//     than a fifth of the requests since the cut were refused: then the
//     new rate is still over the limit and is cut again at once. Until the
//     Retry-After has passed nothing is sent.
//   - Then the rate follows the cubic Wmax * (1 + c (n - K)^3) in the units
//     n sent since the cut: fast back towards Wmax, flat near it (where most
//     of the time is spent, so the average stays above 90 % of the limit),
//     and faster and faster beyond it, which finds a limit that rose (a
//     server whose load fell) within a few cycles.
//   - Latency that grows to twice its minimum (and 50 ms more) while the
//     rate rises is the server queueing: the rate stops growing until it
//     falls again (Vegas's early signal).
//
// Requests are spaced 1/rate apart (a GCRA with a tenth of a second of
// burst), so work released at once, after a park, leaves at the rate found,
// not in a burst. Pace is not safe for concurrent use; it reads no clock.
type Pace struct {
	rate      float64 // budget units per second
	wmax      float64 // the rate of the last congestion event
	sinceCut  float64 // units sent successfully since the last cut
	slowStart bool
	cutAt     time.Time // the last cut; throttles of earlier requests are its echo
	// triedSinceCut: a request succeeded at the rate of the last cut. Until
	// one does, throttles are the same event (a server whose window is
	// full answers 429 until it drains, whatever the new rate).
	triedSinceCut bool
	// refusedSinceCut and admittedSinceCut: a rate still refused for more
	// than a fifth of its requests after a cut is still over the limit,
	// however soon: it is cut again.
	refusedSinceCut, admittedSinceCut int
	holdUntil                         time.Time // a Retry-After in force
	tat                               time.Time // theoretical arrival time of the next unit (GCRA)
	// sending is the rate units were taken at, decaying over paceMeasure:
	// what the limit was met at when nothing paced the requests yet.
	sending  float64
	lastTake time.Time

	minLatency time.Duration
	avgLatency time.Duration
}

// CodePaceHold is the code of a throttle the server never saw: mailvault's
// own pace held the request longer than a worker waits, and the planner
// parks the folder meanwhile.
const CodePaceHold = "PaceHold"

// Pace's constants: see the type's comment.
const (
	PaceBeta = 0.75
	// PaceRecoveryUnits is CUBIC's K: the units sent after a cut until the
	// rate is back at Wmax. A congestion event costs a few throttled
	// requests (those in flight when the limit was crossed), so a cycle of
	// 600 units keeps throttled requests under 1 %.
	PaceRecoveryUnits = 600
	paceFloor         = 0.05 // one request in 20 s at the least
	paceMax           = 1e6
	paceBurst         = 100 * time.Millisecond
	paceMeasure       = time.Second
	// paceFirstCut is the least rate a first throttle is taken to have
	// been met at.
	paceFirstCut = 4.0
	latencyHold  = 50 * time.Millisecond
	// paceEventSpan: throttles this soon after a cut are the same event: a
	// server whose window filled with a ramp admits little until the ramp
	// has left it, whatever the new rate.
	paceEventSpan = 2 * time.Second
)

// NewPace starts a pace unpaced (slow start), or at a rate learned before
// (a remembered pace is where the last throttle left it, so the cycle
// resumes as after that cut).
func NewPace(learned float64) *Pace {
	if learned > 0 {
		r := clampRate(learned)
		return &Pace{rate: r, wmax: r / PaceBeta}
	}
	return &Pace{rate: paceMax, slowStart: true}
}

func clampRate(r float64) float64 { return math.Min(math.Max(r, paceFloor), paceMax) }

// Rate is the pace now, in budget units per second.
func (p *Pace) Rate() float64 { return p.rate }

// Wait is how long to wait at now before units may be sent: the
// Retry-After in force, or the spacing the rate asks for. Nothing is taken:
// a cut or a hold that comes while one waits applies to the waiter too.
func (p *Pace) Wait(now time.Time, units int) time.Duration {
	if p.holdUntil.After(now) {
		return p.holdUntil.Sub(now)
	}
	if p.slowStart {
		return 0
	}
	if p.tat.After(now.Add(paceBurst)) {
		return p.tat.Sub(now.Add(paceBurst))
	}
	return 0
}

// Take counts units sent at now.
func (p *Pace) Take(now time.Time, units int) {
	if !p.lastTake.IsZero() && now.After(p.lastTake) {
		p.sending *= math.Exp(-now.Sub(p.lastTake).Seconds() / paceMeasure.Seconds())
	}
	p.sending += float64(units) / paceMeasure.Seconds()
	p.lastTake = now
	if p.tat.Before(now) {
		p.tat = now
	}
	p.tat = p.tat.Add(time.Duration(float64(units) / p.rate * float64(time.Second)))
}

// Admit takes units and returns 0 when they may be sent at now, else how
// long to wait before asking again.
func (p *Pace) Admit(now time.Time, units int) time.Duration {
	if w := p.Wait(now, units); w > 0 {
		return w
	}
	p.Take(now, units)
	return 0
}

// Succeeded records units answered without throttling, after latency.
func (p *Pace) Succeeded(units int, latency time.Duration) {
	p.triedSinceCut = true
	p.admittedSinceCut += units
	queueing := p.observe(latency)
	if p.slowStart {
		return
	}
	p.sinceCut += float64(units)
	next := p.cubic()
	if queueing && next > p.rate {
		return
	}
	p.rate = clampRate(next)
}

// cubic is the rate CUBIC gives after sinceCut units.
func (p *Pace) cubic() float64 {
	c := (1 - PaceBeta) / math.Pow(PaceRecoveryUnits, 3)
	x := p.sinceCut - PaceRecoveryUnits
	return p.wmax * (1 + c*x*x*x)
}

// observe keeps the latency baseline and its average, and says whether the
// server is queueing (the average well above the baseline).
func (p *Pace) observe(latency time.Duration) bool {
	if latency <= 0 {
		return false
	}
	if p.minLatency == 0 || latency < p.minLatency {
		p.minLatency = latency
	}
	if p.avgLatency == 0 {
		p.avgLatency = latency
	} else {
		p.avgLatency += (latency - p.avgLatency) / 8
	}
	return p.avgLatency > 2*p.minLatency+latencyHold
}

// Throttled records a throttle of a request sent at sentAt, with the
// server's Retry-After (0 when it gave none), at now. It reports whether it
// cut the rate: a throttle of a request sent before the last cut is the
// same congestion event, and only extends the hold.
func (p *Pace) Throttled(now, sentAt time.Time, retryAfter time.Duration) bool {
	if until := now.Add(retryAfter); until.After(p.holdUntil) {
		p.holdUntil = until
	}
	p.refusedSinceCut++
	stillOver := p.refusedSinceCut > 4 && p.refusedSinceCut*4 > p.admittedSinceCut
	if !p.cutAt.IsZero() && (sentAt.Before(p.cutAt) || !p.triedSinceCut || now.Sub(p.cutAt) < paceEventSpan) && !stillOver {
		return false
	}
	p.wmax = p.rate
	if p.slowStart && p.sending > 0 {
		// Unpaced until now: the limit was met at the rate measured, but
		// not below paceFirstCut: a server busy at the first request (an
		// EWS ErrorServerBusy) would otherwise leave the run crawling at
		// the rate of one request.
		p.wmax = max(p.sending, paceFirstCut)
	}
	p.rate = clampRate(p.wmax * PaceBeta)
	p.sinceCut = 0
	p.slowStart = false
	p.cutAt, p.triedSinceCut = now, false
	p.refusedSinceCut, p.admittedSinceCut = 0, 0
	// What was admitted at the old rate is spread anew at the new one,
	// without a burst.
	p.tat = now.Add(paceBurst)
	return true
}
