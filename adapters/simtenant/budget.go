package simtenant

import (
	"math"
	"time"
)

// Budget is Exchange Server's throttling of EWS as its throttling policy
// sets it (EwsMaxBurst, EwsRechargeRate, EwsCutoffBalance), counted in
// requests rather than milliseconds of server time: a balance that
// recharges at Recharge a second up to Burst; each request takes one.
// Below zero the budget is in debt and the server delays its answers
// (micro-delays), more the deeper the debt, up to MaxDelay at the cutoff;
// a request that finds the debt at Cutoff is refused with ErrorServerBusy
// and the mailbox is blocked for Penalty, each request sent meanwhile
// lengthening the block by Push (a client that keeps pushing is punished
// for longer). Recharge is the capacity the server grants.
type Budget struct {
	Recharge float64  `yaml:"recharge"`
	Burst    float64  `yaml:"burst"`
	Cutoff   float64  `yaml:"cutoff"`
	MaxDelay Duration `yaml:"max_delay"`
	// Penalty defaults to the time the recharge takes to pay the debt.
	Penalty Duration `yaml:"penalty"`
	Push    Duration `yaml:"push"`
}

// maxBudgetPenalty bounds a configured penalty: a day is beyond any
// policy, and a typo must not hang a test for a year.
const maxBudgetPenalty = 24 * time.Hour

// validate returns what is wrong and the field it is in.
func (b *Budget) validate() (problem, field string) {
	switch {
	case !(b.Recharge > 0) || b.Recharge > 1e6:
		return "recharge must be above 0 and at most 1,000,000 requests a second", "recharge"
	case b.Burst < 0 || b.Burst > 1e9 || math.IsNaN(b.Burst):
		return "burst must be between 0 and 1,000,000,000 requests", "burst"
	case !(b.Cutoff > 0) || b.Cutoff > 1e9:
		return "cutoff must be above 0 and at most 1,000,000,000 requests", "cutoff"
	case b.MaxDelay < 0 || time.Duration(b.MaxDelay) > time.Minute:
		return "max_delay must be between 0 and 1m", "max_delay"
	case b.Penalty < 0 || time.Duration(b.Penalty) > maxBudgetPenalty:
		return "penalty must be between 0 and 24h", "penalty"
	case b.Push < 0 || time.Duration(b.Push) > maxBudgetPenalty:
		return "push must be between 0 and 24h", "push"
	}
	return "", ""
}

// BudgetState is one mailbox's budget.
type BudgetState struct {
	balance      float64
	at           time.Time
	blockedUntil time.Time
	started      bool
	// Penalties counts the blocks imposed; Blocked is when they were.
	Penalties int
	Blocked   [][2]time.Time
}

// Admit charges one request at now, with the server granting capacity
// (0 to 1) of its recharge. It returns the micro-delay to answer after, or,
// when the request is refused, how long the mailbox stays blocked (the
// BackOffMilliseconds) and whether this request started the block.
func (b *Budget) Admit(st *BudgetState, now time.Time, capacity float64) (delay, refused time.Duration, penalty bool) {
	if !st.started {
		st.balance, st.at, st.started = b.Burst, now, true
	}
	if now.After(st.at) {
		st.balance = min(b.Burst, st.balance+now.Sub(st.at).Seconds()*b.Recharge*capacity)
		st.at = now
	}
	if now.Before(st.blockedUntil) {
		st.blockedUntil = st.blockedUntil.Add(time.Duration(b.Push))
		st.Blocked[len(st.Blocked)-1][1] = st.blockedUntil
		return 0, st.blockedUntil.Sub(now), false
	}
	if st.balance <= -b.Cutoff {
		p := time.Duration(b.Penalty)
		if p <= 0 {
			p = time.Duration((-st.balance) / (b.Recharge * max(capacity, 0.01)) * float64(time.Second))
		}
		st.blockedUntil = now.Add(p)
		st.Penalties++
		st.Blocked = append(st.Blocked, [2]time.Time{now, st.blockedUntil})
		return 0, p, true
	}
	st.balance--
	if st.balance < 0 {
		delay = time.Duration(min(-st.balance/b.Cutoff, 1) * float64(b.MaxDelay))
	}
	return delay, 0, false
}

// Utilisation is the share of the recharge granted that admitted (the
// times requests were admitted at) used while work remained: from the end
// of the first penalty (before it the client could not know the limit), or
// the first request, to the last request; -1 when that is no time at all.
// capacity is the share of the recharge granted at a time (the load curve).
func (b *Budget) Utilisation(st *BudgetState, admitted []time.Time, capacity func(time.Time) float64) float64 {
	if len(admitted) == 0 {
		return -1
	}
	from, to := admitted[0], admitted[len(admitted)-1]
	if len(st.Blocked) > 0 {
		from = st.Blocked[0][1]
	}
	if !to.After(from) {
		return -1
	}
	n := 0
	for _, t := range admitted {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return float64(n) / Granted(from, to, b.Recharge, capacity)
}

// Granted is what a server granting rate a second, scaled by capacity
// (the load curve, as a function of time), grants from from to to.
func Granted(from, to time.Time, rate float64, capacity func(time.Time) float64) float64 {
	const steps = 1000
	span := to.Sub(from)
	if span <= 0 {
		return 0
	}
	step := span / steps
	if step <= 0 {
		step = 1
	}
	total := 0.0
	for t := from; t.Before(to); t = t.Add(step) {
		total += rate * capacity(t) * min(step, to.Sub(t)).Seconds()
	}
	return total
}
