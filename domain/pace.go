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
//   - Until the first throttle nothing is paced (slow start). A server that
//     never throttles is never slowed down. The first throttle estimates
//     the limit from the Retry-After (a window-based limit answers with the
//     time until its oldest request leaves the window, so the requests sent
//     since that one, over the time until the server admits again, are the
//     window's own rate; see windowEstimate) and the pace starts at 95 % of
//     it; without a Retry-After the rate requests left at is taken as Wmax.
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
//   - A server whose capacity fell (its load rose) is met once by a cut to
//     what its Retry-After tells of the new limit, and the limit held
//     before is recalled: the climb back is shorter, the farther below it
//     the rate is, and a capacity that stays low becomes the limit after a
//     few probes (recut).
//   - Latency that grows to twice its minimum (and 50 ms more) while the
//     rate rises is the server queueing: the rate stops growing until it
//     falls again (Vegas's early signal).
//   - A back-off of 30 s or more (EWS's ErrorServerBusy costs minutes) makes
//     the limit costly: it is never probed for again by crossing it. The
//     first estimate is then a floor (what was admitted, spread over the
//     penalty), and the rate ramps up from it by a tenth of itself per
//     second until the server's answers slow down (Exchange delays the
//     answers of a budget in debt before it refuses it: micro-delays, heeded
//     from 10 ms more than twice the minimum). Each such slowdown cuts the
//     rate by Beta, and again only when the delays grow past those of the
//     last cut; the rate grows again once they are gone, towards the limit
//     recalled when a cut came below it (a recharge that fell for a while).
//     Whether a limit was costly is remembered with the pace.
//
// Requests are spaced 1/rate apart (a GCRA with a tenth of a second of
// burst), so work released at once, after a park, leaves at the rate found,
// not in a burst. Pace is not safe for concurrent use; it reads no clock.
type Pace struct {
	rate float64 // budget units per second
	wmax float64 // the rate of the last congestion event
	// recall is the rate of the last congestion event at the limit held
	// before the server's capacity fell (its load rose): the climb back
	// probes for it sooner (see recut). recovery is CUBIC's K of the
	// climb since the last cut (0: PaceRecoveryUnits).
	recall   float64
	recovery float64
	// fell is the share of its rate the last cut kept when the server's
	// capacity fell (0: the last cut was another): see Fell.
	fell float64
	// probeFrom is the limit a probe of the limit recalled started from
	// (0: Wmax is no probe's); rose is the share the probes that held
	// raised the limit by, until Rose reports it.
	probeFrom, rose float64
	// deferred: a sibling probes the capacity that fell for this pace,
	// until deferUntil (see Defer).
	deferred   bool
	deferUntil time.Time
	// lead: this pace probes a fallen capacity for its siblings, and its
	// requests are this share of theirs and its own (0: it does not; see
	// Lead).
	lead float64
	// window is the server's window, learned from the first throttle's
	// estimate (0: not known).
	window    time.Duration
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
	// takes are the last paceHistory takes of slow start (a ring from
	// next), for the first throttle's estimate of the limit; dropped after.
	takes    []paceTake
	nextTake int
	// counted are the takes the first estimate counted as admitted (sent
	// before the refused request, or with it), newest first, with the
	// refusal they were counted against: one of them that comes back
	// refused too was not admitted, and is taken back out (see takeBack).
	counted    []paceTake
	countedEnd int64
	countedRA  time.Duration

	minLatency time.Duration
	avgLatency time.Duration
	samples    int // latencies observed since the average was reset

	// costly: a throttle's back-off was long (EWS's ErrorServerBusy of
	// minutes), so the limit is found from below, by latency, never again
	// by crossing it. ramping: the rate grows by paceRampGain of itself
	// per second sent, until the server queues.
	costly, ramping bool
	lastEase        time.Time
	easedLatency    time.Duration // the average latency at the last ease
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
	// latencyHoldCostly is latencyHold near a costly limit.
	latencyHoldCostly = 10 * time.Millisecond
	// paceEventSpan: throttles this soon after a cut are the same event: a
	// server whose window filled with a ramp admits little until the ramp
	// has left it, whatever the new rate.
	paceEventSpan = 2 * time.Second
	// paceStart is the share of the first throttle's estimate of the
	// limit the pace starts at.
	paceStart = 0.95
	// paceCostly is the back-off from which a throttle is a penalty to be
	// avoided rather than a signal to be probed for.
	paceCostly = 30 * time.Second
	// paceRampGain: while ramping up to a costly limit, the rate grows by
	// this share of itself per second.
	paceRampGain = 0.1
	// paceWarmup is the answers whose latency only sets the baseline.
	paceWarmup = 4
	// paceProbeClimb: a cut of a rate this much above where the last cut
	// left it ends a probe (see recut).
	paceProbeClimb = 1.1
	// paceRecallNear: a cut this near the limit recalled is an ordinary
	// one, and the limit recalled is where it came.
	paceRecallNear = 0.9
	// paceRecallKeep is the share of the gap to the limit recalled that a
	// failed probe keeps.
	paceRecallKeep = 0.75
	// paceRecallSpan: the climb towards a limit recalled takes at least
	// this long at the new limit's rate.
	paceRecallSpan = 10 * time.Second
	// paceDeferSpan is the longest a pace leaves the probing of a fallen
	// capacity to a sibling (see Defer).
	paceDeferSpan = time.Minute
	// paceHistory is how many takes of slow start are kept for the first
	// throttle's estimate: a window's worth at the rates Exchange grants.
	paceHistory = 1024
)

// LearnedPace is what a pace leaves for the next run: the rate its last
// throttle left it at, and whether the server's back-off was costly (then
// the limit is approached from below, by latency).
type LearnedPace struct {
	Rate   float64
	Costly bool
	// Window is the server's window the first throttle's estimate found
	// (0: not known), which later cuts read Retry-Afters against.
	Window time.Duration
}

// NewPace starts a pace unpaced (slow start), or at a rate learned before
// (a remembered pace is where the last throttle left it, so the cycle
// resumes as after that cut; a costly one ramps up from it until the
// server's answers slow down).
func NewPace(learned LearnedPace) *Pace {
	if learned.Rate > 0 {
		r := clampRate(learned.Rate)
		return &Pace{rate: r, wmax: r / PaceBeta, costly: learned.Costly, ramping: learned.Costly, window: learned.Window}
	}
	return &Pace{rate: paceMax, slowStart: true, window: learned.Window}
}

// Adopt paces a pace still unpaced at learned (a sibling mailbox's limit),
// as if it had held it from its first request: what it sent unpaced (its
// discovery) counts against the rate, since the server's window holds it.
// The rate is where the sibling's first estimate put it, 95 % of the
// limit, so it goes on from where that estimate left the sibling on
// CUBIC's curve, near its flat: a remembered pace is where a cut left it,
// a quarter below, and climbs steeply at first.
func (p *Pace) Adopt(learned LearnedPace) {
	if !p.slowStart || learned.Rate <= 0 {
		return
	}
	sent, n, oldest := p.takes, len(p.takes), p.nextTake
	*p = *NewPace(learned)
	p.wmax = clampRate(p.rate / paceStart)
	p.sinceCut = p.unitsTo(paceStart)
	for i := range n {
		t := sent[(oldest+i)%n]
		p.Take(time.Unix(0, t.at), int(t.units))
	}
}

// Learned is what the pace leaves for the next run.
func (p *Pace) Learned() LearnedPace {
	return LearnedPace{Rate: p.rate, Costly: p.costly, Window: p.window}
}

func clampRate(r float64) float64 { return math.Min(math.Max(r, paceFloor), paceMax) }

// Unpaced says whether the pace is still in slow start: it has met no
// throttle, and holds nothing.
func (p *Pace) Unpaced() bool { return p.slowStart }

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

// Held is what remains at now of a Retry-After in force (0: none).
func (p *Pace) Held(now time.Time) time.Duration {
	if p.holdUntil.After(now) {
		return p.holdUntil.Sub(now)
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
	if p.slowStart {
		t := paceTake{at: now.UnixNano(), units: int32(units)}
		if len(p.takes) < paceHistory {
			p.takes = append(p.takes, t)
		} else {
			p.takes[p.nextTake] = t
			p.nextTake = (p.nextTake + 1) % paceHistory
		}
	}
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
	if p.lastTake.Before(p.holdUntil) {
		// An answer to a request sent before the hold began: its latency
		// is the old rate's.
		latency = 0
	}
	queueing := p.observe(latency)
	if p.slowStart {
		return
	}
	if p.costly {
		p.sinceCut += float64(units)
		switch {
		case queueing:
			// The server slows its answers as the budget runs into debt:
			// the limit is near, and an overrun would cost minutes. The
			// debt is paid only below the limit: cut as for a throttle,
			// and again only once the delays grow past what they were at
			// the last cut (a debt being paid delays answers too). The
			// rate grows again once the delays are gone, towards the
			// limit recalled as after a throttle (recut): a budget whose
			// recharge fell for a while has it back.
			p.ramping = false
			if p.lastTake.Sub(p.lastEase) >= paceEventSpan && p.avgLatency > p.easedLatency {
				p.recallBelow(p.cut())
				p.lastEase, p.easedLatency = p.lastTake, p.avgLatency
			}
		case p.ramping:
			p.rate = clampRate(p.rate + paceRampGain*float64(units))
		default:
			p.probeRecalled()
			p.rate = clampRate(p.cubic())
		}
		return
	}
	p.sinceCut += float64(units)
	p.probeRecalled()
	next := p.cubic()
	if p.deferred {
		// Not past the limit found: the sibling probes for it.
		next = min(next, p.wmax*paceStart)
	}
	if queueing && next > p.rate {
		return
	}
	p.rate = clampRate(next)
}

// paceTake is one take of slow start: when, and how many units.
type paceTake struct {
	at    int64 // unix nanoseconds
	units int32
}

// windowEstimate is the first throttle's estimate of the limit, for a
// request sent at sentAt refused with retryAfter, answered at now: a
// window-based server admits until its window is full and answers with
// the time until the oldest request in it leaves, so for the take that was
// that oldest one, the units taken since, over the time from it to when
// the server admits again, are the window's own rate. Which take it was is
// not known, but every other gives less (fewer units, or as many over a
// longer time), so the highest of these rates is taken. A server whose
// Retry-After is a penalty longer than its window gives an underestimate,
// never more.
//
// Requests sent together (a folder's four at once) reach the server in no
// set order: those sent up to half the refused one's round trip after it
// may have been admitted before it, and count (the refused one does not).
// Leaving them out took a limit of 6 a second for 4 when the refusal was
// the fifth of a burst; one of them refused too (the window was simply
// full) is taken back out when its answer comes, as is one sent before
// the refused request whose refusal came later (takeBack): an estimate
// one request high is over the limit, and its first cut costs a round of
// throttles, while an underestimate costs the run its pace until CUBIC's
// slow climb has found the limit again.
func (p *Pace) windowEstimate(sentAt, now time.Time, retryAfter time.Duration) float64 {
	end := sentAt.UnixNano()
	cutoff := end + max(0, int64(now.Sub(sentAt)/2))
	refused := false
	p.counted = p.counted[:0]
	n := len(p.takes)
	for i := 1; i <= n; i++ {
		t := p.takes[(p.nextTake-i+n)%n]
		if t.at > cutoff {
			continue // sent after the server refused
		}
		if t.at == end && !refused {
			refused = true // the refused request itself
			continue
		}
		p.counted = append(p.counted, t)
	}
	p.countedEnd, p.countedRA = end, retryAfter
	est, window := windowRate(p.counted, end, retryAfter)
	p.window = window
	return est
}

// windowRate is windowEstimate's rate over takes (newest first) counted as
// admitted before a request sent at end was refused with retryAfter.
func windowRate(takes []paceTake, end int64, retryAfter time.Duration) (rate float64, window time.Duration) {
	units := 0.0
	for _, t := range takes {
		units += float64(t.units)
		span := time.Duration(max(0, end-t.at)) + retryAfter
		if r := units / span.Seconds(); r > rate {
			rate, window = r, span
		}
	}
	return rate, window
}

// takeBack lowers the first estimate when a request it counted as
// admitted comes back refused too: sent just after the refused one (it
// reached the server later), or before it (its answer came later), the
// window held fewer than counted. Reports whether it did. Answers come
// within the event's span; later, the takes are let go.
func (p *Pace) takeBack(now, sentAt time.Time) bool {
	if p.counted == nil {
		return false
	}
	if now.Sub(p.cutAt) > paceEventSpan {
		p.counted = nil
		return false
	}
	at := sentAt.UnixNano()
	for i, t := range p.counted {
		if t.at != at {
			continue
		}
		p.counted = append(p.counted[:i], p.counted[i+1:]...)
		est, window := windowRate(p.counted, p.countedEnd, p.countedRA)
		if est <= 0 {
			return false
		}
		p.window = window
		p.wmax = clampRate(est)
		if p.costly {
			p.wmax = max(p.wmax, paceFirstCut) // as the estimate's own floor
		}
		p.rate = clampRate(math.Min(p.rate, p.wmax*paceStart))
		return true
	}
	return false
}

// unitsTo is the units sent since a cut after which CUBIC's curve is at
// share of Wmax.
func (p *Pace) unitsTo(share float64) float64 {
	k := p.recoveryUnits()
	c := (1 - PaceBeta) / math.Pow(k, 3)
	return k - math.Cbrt((1-share)/c)
}

// recoveryUnits is CUBIC's K since the last cut.
func (p *Pace) recoveryUnits() float64 {
	if p.recovery > 0 {
		return p.recovery
	}
	return PaceRecoveryUnits
}

// cubic is the rate CUBIC gives after sinceCut units.
func (p *Pace) cubic() float64 {
	k := p.recoveryUnits()
	c := (1 - PaceBeta) / math.Pow(k, 3)
	x := p.sinceCut - k
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
	if p.samples++; p.samples <= paceWarmup {
		// The first answers of a run, or after a cut, carry new
		// connections' handshakes (NTLM's three legs) or the old rate's
		// queue: they set the baseline only.
		return false
	}
	if p.avgLatency == 0 {
		p.avgLatency = latency
	} else {
		p.avgLatency += (latency - p.avgLatency) / 8
	}
	hold := latencyHold
	if p.costly {
		// Near a costly limit the server's micro-delays are the only
		// warning: heed small ones.
		hold = latencyHoldCostly
	}
	return p.avgLatency > 2*p.minLatency+hold
}

// Throttled records a throttle of a request sent at sentAt, with the
// server's Retry-After (0 when it gave none), at now. It reports whether it
// cut the rate: a throttle of a request sent before the last cut is the
// same congestion event, and only extends the hold.
func (p *Pace) Throttled(now, sentAt time.Time, retryAfter time.Duration) bool {
	if until := now.Add(retryAfter); until.After(p.holdUntil) {
		p.holdUntil = until
	}
	if p.takeBack(now, sentAt) {
		return false // the first estimate's echo, which corrects it
	}
	p.refusedSinceCut++
	stillOver := p.refusedSinceCut > 4 && p.refusedSinceCut*4 > p.admittedSinceCut
	if !p.cutAt.IsZero() && (sentAt.Before(p.cutAt) || !p.triedSinceCut || now.Sub(p.cutAt) < paceEventSpan) && !stillOver {
		return false
	}
	p.ramping = false
	at, probed := p.cut()
	p.counted = nil
	if !p.slowStart && !p.costly {
		p.recut(now, at, retryAfter, probed)
	}
	est := 0.0
	if p.slowStart && retryAfter > 0 {
		est = p.windowEstimate(sentAt, now, retryAfter)
	}
	p.takes = nil // slow start is over
	switch {
	case est > 0:
		if retryAfter >= paceCostly {
			// Not below paceFirstCut: a Retry-After of minutes (a
			// folder's delivery limit, a penalty) spreads what was
			// admitted so thin that the mailbox's other folders would
			// crawl; a costly limit is ramped up to from here, and a
			// throttle below it cuts further.
			est = max(est, paceFirstCut)
		}
		p.wmax = clampRate(est)
		p.rate = clampRate(p.wmax * paceStart)
		p.sinceCut = p.unitsTo(paceStart)
		p.recall = p.wmax
	case p.slowStart && p.sending > 0:
		// Unpaced until now: the limit was met at the rate measured, but
		// not below paceFirstCut: a server busy at the first request (an
		// EWS ErrorServerBusy) would otherwise leave the run crawling at
		// the rate of one request.
		p.wmax = max(p.sending, paceFirstCut)
		p.rate = clampRate(p.wmax * PaceBeta)
		p.recall = p.wmax
	}
	if retryAfter >= paceCostly {
		// A back-off of minutes: the limit is not to be probed for again,
		// and an estimate taken over the back-off spread what was admitted
		// far too thin: it is a floor to ramp up from.
		p.costly = true
		p.ramping = p.slowStart
	}
	p.slowStart = false
	p.cutDone(now)
	return true
}

// cut puts the pace at Beta of its rate, which becomes Wmax, and returns
// that rate and whether the cut ends a probe: a cut after the rate
// climbed a tenth above where the last cut left it is a probe of that
// limit that failed.
func (p *Pace) cut() (at float64, probed bool) {
	probed = p.rate > p.wmax*PaceBeta*paceProbeClimb
	at = p.rate
	p.wmax, p.rate = at, clampRate(at*PaceBeta)
	p.sinceCut, p.recovery, p.fell, p.probeFrom, p.rose = 0, 0, 0, 0, 0
	return at, probed
}

// cutDone starts what follows a cut at now.
func (p *Pace) cutDone(now time.Time) {
	p.cutAt, p.triedSinceCut = now, false
	p.avgLatency, p.samples = 0, 0 // the queue the old rate built says nothing of the new
	p.easedLatency = 0
	p.refusedSinceCut, p.admittedSinceCut = 0, 0
	// What was admitted at the old rate is spread anew at the new one,
	// without a burst.
	p.tat = now.Add(paceBurst)
}

// recallRecovery is the K of a climb below a limit recalled: share of
// PaceRecoveryUnits, but paceRecallSpan's worth of units at Wmax at least.
func (p *Pace) recallRecovery(share float64) float64 {
	return min(PaceRecoveryUnits, max(PaceRecoveryUnits*share, p.wmax*paceRecallSpan.Seconds()))
}

// recut shapes a cut after slow start, of a rate at (the cut has put the
// rate at Beta of it). Two things are known of a window-based server
// that the cut alone does not use:
//
//   - Its window (learned from the first estimate: the span that gave the
//     estimate, Retry-After included). After a full window sent at one
//     pace, a refusal's Retry-After is the time until enough of the
//     window's requests leave it: the server's limit is what the window
//     held, less what must leave, so the limit's rate is the rate sent
//     times (1 - Retry-After / window). A server whose capacity halved
//     answers with half its window: one cut to the estimate instead of
//     three or four by Beta, each with its throttles.
//   - The limit it held before (recall): a capacity that fell comes back,
//     and CUBIC's climb, counted in units at the lower rate, would take
//     minutes to find it. Below the limit recalled the climb is shorter,
//     the more so the farther below: K scaled by the cube of the share of
//     the limit recalled, but not under paceRecallSpan's worth of units at
//     the new limit, so that probes of a limit that stays low come no
//     oftener than that. A climb that reaches its Wmax unthrottled goes on
//     halfway towards the limit recalled, and again (Succeeded); each
//     probe that fails brings the limit recalled a quarter nearer the one
//     found, so a capacity that stays low is taken as the limit within a
//     few probes.
func (p *Pace) recut(now time.Time, at float64, retryAfter time.Duration, probed bool) {
	if p.window > 0 && retryAfter > 0 && retryAfter < p.window && now.Sub(p.cutAt) > p.window {
		// The rate sent is taken as the pace's, not as the rate measured
		// (a second's average): a request sent after a pause (a mailbox
		// waiting for one of the workers many mailboxes share) reads far
		// below the pace the window holds, and an ordinary crossing of the
		// limit would read as a fall. A mailbox that sent less than its
		// pace over the whole window gets an estimate too high, which
		// only leaves it the cut by Beta.
		if est := at * (1 - retryAfter.Seconds()/p.window.Seconds()); est < at*PaceBeta/paceStart {
			p.fallTo(at, est)
			return
		}
	}
	p.recallBelow(at, probed)
}

// recallBelow shapes the climb after a cut of the rate at by Beta (probed:
// at was a probe above the last cut's limit): see recut.
func (p *Pace) recallBelow(at float64, probed bool) {
	switch {
	case at >= paceRecallNear*p.recall:
		p.recall = at // an ordinary cycle: the limit is where it was
		p.lead = 0
		return
	case p.lead > 0:
		// Probing for siblings: a refusal costs one request, not one per
		// mailbox, and the limit recalled stays (see Lead).
		p.recovery = p.leadGap()
		return
	case probed:
		p.recall = at + (p.recall-at)*paceRecallKeep
	}
	share := p.wmax / p.recall
	p.recovery = p.recallRecovery(share * share * share)
}

// belowRecalled says whether the limit found is below the one recalled
// (see recut).
func (p *Pace) belowRecalled() bool { return p.recall > p.wmax/paceRecallNear }

// placeOnCurve sets CUBIC's clock where its curve gives the rate now, up
// to Wmax: after Wmax or K moved, the climb goes on from the rate sent.
func (p *Pace) placeOnCurve() { p.sinceCut = p.unitsTo(min(p.rate/p.wmax, 1)) }

// probeRecalled moves Wmax halfway towards the limit recalled once a
// climb below it has held to its Wmax (a binary search, BIC's increase),
// probeClimb's units away: see recut.
func (p *Pace) probeRecalled() {
	if p.deferred && p.lastTake.After(p.deferUntil) {
		p.Release() // the sibling that probed for it has gone quiet
	}
	if p.sinceCut < p.recoveryUnits() {
		return
	}
	held := p.probeFrom > 0
	if held {
		// The rate held at the limit a probe set: the capacity rose at
		// least as much (the siblings deferring to this pace rise with
		// it: Rose).
		p.rose = max(p.rose, 1) * p.wmax / p.probeFrom
		p.probeFrom = 0
	}
	if !p.deferred && p.belowRecalled() {
		p.probeFrom = p.wmax
		p.wmax = min(p.recall, (p.wmax+p.recall)/2)
		if held {
			// A probe held halfway: the load that lowered the capacity
			// has gone, and the capacity comes back whole, not by halves
			// (a probe that fails brings the limit recalled nearer).
			p.wmax = p.recall
		}
		p.recovery = p.probeClimb()
		p.placeOnCurve()
	}
}

// fallTo puts the pace, met at the rate at, at a limit that fell to est:
// 95 % of it, on CUBIC's curve where a first estimate starts, with at
// recalled. Fell reports the share kept until the next cut.
func (p *Pace) fallTo(at, est float64) {
	p.probeFrom, p.rose, p.lead = 0, 0, 0
	p.wmax = clampRate(est)
	p.rate = clampRate(p.wmax * paceStart)
	p.recall = max(p.recall, at)
	share := p.wmax / p.recall
	p.recovery = p.recallRecovery(share * share * share)
	p.sinceCut = p.unitsTo(paceStart)
	p.fell = p.wmax
}

// Fell says what limit the last cut found when the cut was to a limit
// that fell (a Retry-After that tells the server's capacity dropped,
// recut), and when the server admits again; ok is false after any other
// cut.
func (p *Pace) Fell() (limit float64, until time.Time, ok bool) {
	return p.fell, p.holdUntil, p.fell > 0
}

// Follow cuts the pace to limit, the limit a sibling's pace fell to when
// the server's capacity fell (Fell), and holds it until until: the load
// that lowered one mailbox's limit lowers its neighbours' (one server, one
// policy), and each of a hundred mailboxes meeting the lower limit on its
// own would cost a hundred refusals. The limit is the sibling's, not its
// share of the sibling's rate: a mailbox climbing back after a cut of its
// own sent less, and would be cut far below the server's capacity. The
// hold is the sibling's and one request more: a window that held the old
// rate must drain before the new one fits, and this one may hold a
// request more than the sibling's. A pace in slow start (it finds the
// limit itself), a costly one (approached from below), one cut within the
// event span (it met the fall itself) or one already under limit is left
// alone. Reports whether it cut.
func (p *Pace) Follow(now time.Time, limit float64, until time.Time) bool {
	if p.slowStart || p.costly || limit <= 0 || (!p.cutAt.IsZero() && now.Sub(p.cutAt) < paceEventSpan) {
		return false
	}
	// What this pace held before: the limit its last cut found, not the
	// rate of a climb back below it or of a probe above it.
	held := p.wmax
	if p.probeFrom > 0 {
		held = p.probeFrom
	}
	at := max(p.rate, held)
	if limit >= at*PaceBeta/paceStart {
		return false // no fall for this pace: its own cuts find it
	}
	p.ramping = false
	p.counted = nil
	p.fallTo(at, limit)
	p.fell = 0 // a follower reports no fall of its own
	if until = until.Add(time.Duration(float64(time.Second) / p.rate)); until.After(p.holdUntil) {
		p.holdUntil = until
	}
	p.cutDone(now)
	return true
}

// Defer leaves the probing of a capacity that fell to a sibling, at now:
// the server's load lowered every mailbox's limit at once, and a hundred
// mailboxes each probing for it on its own, all at the same time since
// they fell together, would each be refused while it stays low. The pace
// climbs as after any cut but holds at 95 % of the limit it found, never
// past it, and rises when the sibling's probes hold (Rise); after
// paceDeferSpan without a rise or a failed probe of the sibling's (its
// work ended) it probes again itself. A pace in slow start, a costly one,
// or one not below a limit recalled is left alone.
func (p *Pace) Defer(now time.Time) bool {
	if p.slowStart || p.costly || !p.belowRecalled() {
		return false
	}
	if p.Renew(now) {
		return true
	}
	p.deferred, p.deferUntil, p.lead = true, now.Add(paceDeferSpan), 0
	p.probeFrom, p.rose = 0, 0
	p.rate = min(p.rate, p.wmax*paceStart)
	return true
}

// Renew keeps a deferring pace deferring for paceDeferSpan from now: the
// sibling's probe failed, so the capacity is still low. A pace that does
// not defer (its limit fell alone, or it probes again itself) is left
// alone. Reports whether it defers.
func (p *Pace) Renew(now time.Time) bool {
	if p.deferred {
		p.deferUntil = now.Add(paceDeferSpan)
	}
	return p.deferred
}

// Release ends the pace's part in probing a fallen capacity for siblings
// or deferring to one (the sibling went quiet, or its probing ended near
// the limit it recalled, the capacity back): the pace climbs and probes
// towards the limit it recalled on its own.
func (p *Pace) Release() {
	if !p.deferred && p.lead == 0 {
		return
	}
	p.deferred, p.lead = false, 0
	p.recallBelow(p.wmax, false)
	p.placeOnCurve()
}

// Deferring says whether the pace leaves the probing of a fallen capacity
// to a sibling (Defer).
func (p *Pace) Deferring() bool { return p.deferred }

// LastTake is when units were last taken (zero: never).
func (p *Pace) LastTake() time.Time { return p.lastTake }

// Leading says whether the pace still probes a fallen capacity for
// siblings (Lead): after a cut, whether it was a failed probe rather than
// an ordinary one near the limit recalled, which ends the lead.
func (p *Pace) Leading() bool { return p.lead > 0 }

// Lead makes the pace the one that probes a fallen capacity for
// followers siblings (they Defer). A probe that fails costs one refusal,
// not one per mailbox, so the leader probes as often as CUBIC's K of all
// of them together would (PaceRecoveryUnits of their requests, its share
// of them of its own, but no less often than alone: leadGap), but not
// oftener than once a window, and a failed
// probe leaves the limit recalled where it is; a probe that held is
// followed a window later by the next. Any cut to a limit that fell, a
// cut near the limit recalled, or Release ends it.
func (p *Pace) Lead(followers int) {
	if p.slowStart || p.costly || !p.belowRecalled() {
		return
	}
	p.lead, p.deferred = 1/float64(followers+1), false
	p.recovery = p.leadGap()
	p.placeOnCurve()
}

// probeClimb is the K of a probe of the limit recalled: paceRecallSpan's
// worth of units at Wmax, and a leader's (Lead) the server's window's
// worth, so that a capacity that came back is found within a window of
// the probe's start and the others rise as soon (how often probes start
// is the leader's climb back after one failed: leadGap). A lone mailbox
// keeps the slower climb: its failed probes are its own refusals, and with
// a window's climb its probes met a capacity about to return more often
// (in seven backups of the 1-mailbox halving, 3 to 6 refusals and 73-86 %
// used, against 4 and 83-84 % in three with the slower climb).
func (p *Pace) probeClimb() float64 {
	window := paceRecallSpan
	if p.lead > 0 && p.window > 0 {
		window = p.window
	}
	return min(PaceRecoveryUnits, p.wmax*window.Seconds())
}

// leadGap is a leader's climb back after a probe that failed (Lead): its
// share of PaceRecoveryUnits, no less than a probe's climb and no more
// than it would take alone (paceRecallSpan's worth): three mailboxes'
// leader took 200 units, 40 s, to probe a capacity back.
func (p *Pace) leadGap() float64 {
	return max(p.probeClimb(), min(PaceRecoveryUnits*p.lead, p.recallRecovery(0)))
}

// Rose reports the share by which probes of the limit recalled that held
// raised the limit since it last reported (see Defer).
func (p *Pace) Rose() (share float64, ok bool) {
	share, p.rose = p.rose, 0
	return share, share > 1
}

// Rise raises a deferring pace by share, at now: its sibling's probe held
// at that much above the limit it had found, so the server's capacity
// rose; not past the limit recalled, where the deferring ends.
func (p *Pace) Rise(now time.Time, share float64) bool {
	if !p.deferred || share <= 1 {
		return false
	}
	p.wmax = clampRate(min(p.recall, p.wmax*share))
	p.rate = clampRate(min(p.rate*share, p.wmax*paceStart))
	p.deferUntil = now.Add(paceDeferSpan)
	if p.wmax >= paceRecallNear*p.recall {
		p.deferred = false
		p.recovery = 0
	}
	p.placeOnCurve()
	return true
}
