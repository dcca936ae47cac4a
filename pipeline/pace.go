package pipeline

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// PaceMemory is where the paces learned by earlier runs are kept (the
// resume state): per mailbox, and for the whole app under "".
type PaceMemory interface {
	Pace(mailbox string) (domain.LearnedPace, bool, error)
}

// Pacer holds every request to the pace domain.Pace finds for its mailbox
// and for the whole app: the server's limits need not be known, and
// configured limits (the planner's windows) stay ceilings. A request waits
// at the pacer after the planner has sent it, so a folder released from a
// park leaves at the pace found, not in a burst, and the planner's
// decisions (and the replays of recorded histories) do not change.
type Pacer struct {
	clock  Clock
	memory PaceMemory

	mu        sync.Mutex
	app       *domain.Pace
	mailboxes map[string]*mailboxPace
	// limits are what each mailbox's last throttle found, and highest the
	// highest of them (see noteLimit and sibling).
	limits  map[string]domain.LearnedPace
	highest domain.LearnedPace
	// Scouting (see start): when the first mailbox started, how many
	// scouts have met no limit yet, and a channel closed (and replaced)
	// whenever a mailbox meets its first, for the mailboxes held meanwhile.
	scoutFrom  time.Time
	scouting   int
	limitFound chan struct{}
	// limitAt is when a scout's limit was last noted: see limitSettle.
	limitAt time.Time
	// fallFrom and fallAt: the mailbox whose limit last fell, and when
	// (see fall).
	fallFrom string
	fallAt   time.Time
	// prober is the mailbox that probes a fallen capacity for the others
	// (see fall).
	prober string
}

// mailboxPace is one mailbox's pace and how its first request went.
type mailboxPace struct {
	pace *domain.Pace
	// remembered: the pace was learned by an earlier run; started: its
	// first request the pacer held has gone; scout: it went to find the
	// limit for the others (see start).
	remembered, started, scout bool
}

// Scouting's constants: see start.
const (
	// scouts is how many mailboxes look for the limit while the others
	// wait: the siblings' quorum.
	scouts = 2
	// scoutHold is the longest the others wait, from the first mailbox's
	// start: a server whose limit is far above the first seconds' rate
	// costs a backup this once.
	scoutHold = 2 * time.Second
	// limitSettle is how long a scout's limit just noted waits before a
	// mailbox starts at it: a first estimate is corrected by the refusals
	// of the requests sent with the refused one, which come back within a
	// round trip (see domain.Pace's takeBack).
	limitSettle = 250 * time.Millisecond
	// fallQuorum: two mailboxes' limits that fall this close together
	// are the server's capacity falling (see fall).
	fallQuorum = time.Second
)

// NewPacer returns a pacer on clock, seeded from memory (nil: nothing
// learned).
func NewPacer(clock Clock, memory PaceMemory) *Pacer {
	p := &Pacer{clock: clock, memory: memory, mailboxes: map[string]*mailboxPace{}, limits: map[string]domain.LearnedPace{},
		limitFound: make(chan struct{})}
	p.app = domain.NewPace(p.learned(""))
	return p
}

func (p *Pacer) learned(mailbox string) domain.LearnedPace {
	if p.memory == nil {
		return domain.LearnedPace{}
	}
	l, ok, err := p.memory.Pace(mailbox)
	if err != nil || !ok {
		return domain.LearnedPace{} // unreadable memory costs a slow start, nothing more
	}
	return l
}

func (p *Pacer) mailbox(m string) *mailboxPace {
	mp := p.mailboxes[m]
	if mp == nil {
		l := p.learned(m)
		mp = &mailboxPace{pace: domain.NewPace(l), remembered: l.Rate > 0}
		p.mailboxes[m] = mp
		if mp.remembered {
			// What an earlier run's throttles found is a limit met, for
			// the mailboxes this run has seen nothing of.
			p.noteLimit(m, l)
		}
	}
	return mp
}

// start lets mailbox m's first held request go, at now, or says how long
// it may have to wait and what to wait for. Exchange applies one
// throttling policy to every mailbox of a tenant, so the limit two
// mailboxes met is likely every other's (see sibling): a mailbox that
// starts after that starts at it, instead of crossing the limit itself to
// find it. Mailboxes mostly start together (a hundred discovered in the
// run's first second): then the first two scout, unpaced, and the others
// wait until the scouts have met a limit each (a scout that met one is
// replaced by the next mailbox to start, unless the other's follows within
// limitSettle), for scoutHold at the most: a
// hundred mailboxes crossing the same limit at once cost a hundred rounds
// of 429s and their Retry-Afters, where scouting costs two. A mailbox
// with a pace of its own (an earlier run's) goes at it.
func (p *Pacer) start(now time.Time, mp *mailboxPace) (time.Duration, <-chan struct{}) {
	if mp.started {
		return 0, nil
	}
	if mp.remembered || !mp.pace.Unpaced() {
		mp.started = true
		return 0, nil
	}
	if sib := p.sibling(); sib.Rate > 0 {
		if settle := p.limitAt.Add(limitSettle).Sub(now); settle > 0 {
			return settle, nil
		}
		mp.pace.Adopt(sib)
		mp.started = true
		return 0, nil
	}
	if p.scoutFrom.IsZero() {
		p.scoutFrom = now
	}
	left := p.scoutFrom.Add(scoutHold).Sub(now)
	if left > 0 && p.scouting >= scouts {
		return left, p.limitFound
	}
	if settle := p.limitAt.Add(limitSettle).Sub(now); left > 0 && settle > 0 {
		// A scout just met a limit: the other's is likely on its way
		// (they started together), and a third scout would cross the
		// limit for nothing.
		return min(left, settle), p.limitFound
	}
	if left > 0 {
		mp.scout = true
		p.scouting++
	}
	mp.started = true
	return 0, nil
}

// Wait blocks until units of mailbox's may be sent by both its pace and the
// app's, takes them, and returns when. A Retry-After in force for longer
// than longest is not waited: it is returned (with a zero time) for the
// caller to hand back to the planner, which works elsewhere meanwhile; the
// spacing of a pace is waited out, however long.
func (p *Pacer) Wait(ctx context.Context, mailbox string, units int, longest time.Duration) (time.Time, time.Duration, error) {
	for {
		if held, err := p.Ready(ctx, mailbox, units, longest); err != nil || held > 0 {
			return time.Time{}, held, err
		}
		if at, ok := p.Take(mailbox, units); ok {
			return at, 0, nil
		}
	}
}

// Ready is Wait without the taking: it returns once units of mailbox's may
// be sent now. A caller that has more to wait for before it sends (a free
// worker) takes them with Take when it does, so that the pace spaces the
// requests as the server sees them: taken before a wait for a worker, a
// paced queue would leave in a burst when workers free up.
func (p *Pacer) Ready(ctx context.Context, mailbox string, units int, longest time.Duration) (time.Duration, error) {
	for {
		p.mu.Lock()
		now := p.clock.Now()
		mp := p.mailbox(mailbox)
		if hold, found := p.start(now, mp); hold > 0 {
			p.mu.Unlock()
			if err := p.sleep(ctx, hold, found); err != nil {
				return 0, err
			}
			continue
		}
		m := mp.pace
		wait := max(m.Wait(now, units), p.app.Wait(now, units))
		held := max(m.Held(now), p.app.Held(now))
		p.mu.Unlock()
		if wait <= 0 {
			return 0, nil
		}
		// A Retry-After in force goes back to the planner, which works
		// elsewhere meanwhile; the spacing of a pace is waited out here,
		// however long a queue of requests makes it, since a request
		// waiting for its pace holds no worker (Fetcher.InFlight).
		if held > longest {
			return held, nil
		}
		if err := p.sleep(ctx, wait, nil); err != nil {
			return 0, err
		}
	}
}

// Take takes units of mailbox's pace and the app's if both let them go
// now, and returns when; false when another request took the turn since
// Ready (then Ready again).
func (p *Pacer) Take(mailbox string, units int) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	mp := p.mailbox(mailbox)
	if !mp.started || max(mp.pace.Wait(now, units), p.app.Wait(now, units)) > 0 {
		return time.Time{}, false
	}
	mp.pace.Take(now, units)
	p.app.Take(now, units)
	return now, true
}

// sleep waits d on the pacer's clock, or until early is closed.
func (p *Pacer) sleep(ctx context.Context, d time.Duration, early <-chan struct{}) error {
	woken := make(chan struct{})
	stop := p.clock.AfterFunc(d, func() { close(woken) })
	defer stop()
	select {
	case <-woken:
		return nil
	case <-early:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Note counts units sent for mailbox now without waiting for the paces:
// requests the pacer does not hold (discovery's, a handful at a run's
// start) but the server counts.
func (p *Pacer) Note(mailbox string, units int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	p.mailbox(mailbox).pace.Take(now, units)
	p.app.Take(now, units)
}

// PaceOutcome is what the pacer learned from one answer: the pace after it,
// and whether it is the app's (a tenant-wide limit) rather than the
// mailbox's. Zero when nothing was cut.
type PaceOutcome struct {
	Rate   float64
	App    bool
	Costly bool // the server's back-off was costly: see domain.LearnedPace
	Window time.Duration
}

// Done records the answer to units sent at sentAt: throttled (fl of
// ClassThrottled, with its Retry-After), or answered after latency (0: not
// measured). A throttle that names a tenant-wide limit cuts the app's pace,
// any other the mailbox's.
func (p *Pacer) Done(mailbox string, sentAt time.Time, units int, latency time.Duration, fl *domain.Failure) PaceOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	mp := p.mailbox(mailbox)
	m := mp.pace
	if fl == nil || fl.Class != domain.ClassThrottled {
		if fl == nil || fl.Class != domain.ClassTransient {
			m.Succeeded(units, latency)
			p.app.Succeeded(units, latency)
			if share, ok := m.Rose(); ok && mailbox == p.prober {
				p.rise(mailbox, share)
			} else if p.prober != "" && mailbox != p.prober && p.proberGone(p.clock.Now()) {
				p.endProbing()
			}
		}
		return PaceOutcome{}
	}
	now := p.clock.Now()
	if tenantWide(fl) {
		if lowered(p.app, now, sentAt, fl.RetryAfter) {
			l := p.app.Learned()
			return PaceOutcome{Rate: l.Rate, App: true, Costly: l.Costly, Window: l.Window}
		}
		return PaceOutcome{}
	}
	if lowered(m, now, sentAt, fl.RetryAfter) {
		l := m.Learned()
		p.noteLimit(mailbox, l)
		if limit, until, ok := m.Fell(); ok {
			p.fall(now, mailbox, limit, until)
		} else if mailbox == p.prober {
			if m.Leading() {
				p.renewAll(now) // its probe failed: the capacity is still low
			} else {
				p.endProbing() // an ordinary cut near the limit it recalled: the capacity is back
			}
		}
		if mp.scout {
			p.limitAt = now
		}
		return PaceOutcome{Rate: l.Rate, Costly: l.Costly, Window: l.Window}
	}
	return PaceOutcome{}
}

// lowered records a throttle on pc and says whether its pace fell: a cut,
// or the first estimate corrected by the refusal of a request it counted
// as admitted (which the report, the next run's memory and the siblings'
// limit must see as much as the cut it corrects).
func lowered(pc *domain.Pace, now, sentAt time.Time, retryAfter time.Duration) bool {
	before := pc.Rate()
	return pc.Throttled(now, sentAt, retryAfter) || pc.Rate() < before
}

// fall records that mailbox's limit fell to limit, the server
// admitting again at until (domain.Pace.Fell). A fall of two mailboxes'
// limits within fallQuorum is the server's capacity, not one mailbox's
// folder: every other mailbox's pace follows it (domain.Pace.Follow)
// before its own requests meet it, each of which would be refused. The
// first of the two then probes for the capacity for all (the prober): the
// others defer to it (domain.Pace.Defer), and rise as its probes hold.
func (p *Pacer) fall(now time.Time, mailbox string, limit float64, until time.Time) {
	if p.fallFrom == "" || p.fallFrom == mailbox || now.Sub(p.fallAt) > fallQuorum {
		p.fallFrom, p.fallAt = mailbox, now
		return
	}
	for m, mp := range p.mailboxes {
		if m != mailbox && m != p.fallFrom {
			mp.pace.Follow(now, limit, until)
		}
	}
	p.prober, p.fallFrom = p.fallFrom, ""
	followers := p.deferAll(now)
	if mp := p.mailboxes[p.prober]; mp != nil {
		mp.pace.Lead(followers)
	}
}

// deferAll has every mailbox but the prober defer to it, at now, and
// says how many do.
func (p *Pacer) deferAll(now time.Time) int {
	n := 0
	for m, mp := range p.mailboxes {
		if m != p.prober && mp.pace.Defer(now) {
			n++
		}
	}
	return n
}

// renewAll keeps every mailbox deferring to the prober deferring, at now:
// its probe failed, the capacity is still low.
func (p *Pacer) renewAll(now time.Time) {
	for m, mp := range p.mailboxes {
		if m != p.prober {
			mp.pace.Renew(now)
		}
	}
}

// endProbing ends the prober's probing for the others: its lead ended at
// an ordinary cut near the limit it recalled (the capacity is back), or it
// has gone quiet (its work ended). Each mailbox climbs and probes on its
// own again, without waiting out its deferral.
func (p *Pacer) endProbing() {
	for _, mp := range p.mailboxes {
		mp.pace.Release()
	}
	p.prober = ""
}

// proberQuiet is how many of the server's windows (and of the prober's
// own request spacings) the prober may send nothing in before the others
// stop deferring to it: a Retry-After (a window at the most) parks it for
// less.
const proberQuiet = 2

// proberGone says whether the prober has sent nothing for proberQuiet of
// its server's windows, at now.
func (p *Pacer) proberGone(now time.Time) bool {
	mp := p.mailboxes[p.prober]
	if mp == nil {
		return true
	}
	l := mp.pace.Learned()
	quiet := l.Window
	if l.Rate > 0 {
		quiet = max(quiet, time.Duration(float64(time.Second)/l.Rate))
	}
	quiet *= proberQuiet
	return now.Sub(mp.pace.LastTake()) > quiet
}

// rise raises every mailbox deferring to the prober by share: its probe
// held that much above the limit it had found.
func (p *Pacer) rise(prober string, share float64) {
	now := p.clock.Now()
	for m, mp := range p.mailboxes {
		if m != prober {
			mp.pace.Rise(now, share)
		}
	}
}

// noteLimit records the limit a mailbox's throttle found. The highest is
// kept as limits change, looked for again only when the mailbox that held
// it is cut, so that thousands of mailboxes cost no scan per throttle.
func (p *Pacer) noteLimit(mailbox string, l domain.LearnedPace) {
	prev, had := p.limits[mailbox]
	p.limits[mailbox] = l
	if !had {
		if mp := p.mailboxes[mailbox]; mp != nil && mp.scout {
			p.scouting-- // its place goes to the next mailbox to start
		}
		close(p.limitFound)
		p.limitFound = make(chan struct{})
	}
	switch {
	case l.Rate >= p.highest.Rate:
		p.highest = l
	case had && prev.Rate >= p.highest.Rate:
		p.highest = domain.LearnedPace{}
		for _, o := range p.limits {
			if o.Rate > p.highest.Rate {
				p.highest = o
			}
		}
	}
}

// sibling is the pace a mailbox that has met no limit starts at. Exchange
// applies one throttling policy to every mailbox of a tenant, so the limit
// one mailbox met is likely the next one's; but a single mailbox's throttle may be its own
// (one busy folder, a mailbox under load on its server), and passing a
// folder's few requests a second on to every later mailbox would slow the
// whole backup. So the siblings' limit counts once two mailboxes have met
// one, and it is the highest they found: every estimate is at most the
// policy's limit, and a lower one is more likely a folder's.
func (p *Pacer) sibling() domain.LearnedPace {
	if len(p.limits) < 2 {
		return domain.LearnedPace{}
	}
	return p.highest
}

// tenantWide says whether a throttle is the app's rather than a mailbox's:
// as the source says when it knows (EWS with impersonation charges the
// target mailbox), else Graph's tenant-wide limit ("Application is over its
// tenant-wide request limit"), or EWS's ErrorServerBusy and
// ErrorExceededConnectionCount, which Exchange charges to the account's
// budget whatever mailbox it opens.
func tenantWide(fl *domain.Failure) bool {
	switch fl.Budget {
	case domain.BudgetMailbox:
		return false
	case domain.BudgetApp:
		return true
	}
	switch fl.Code {
	case "ErrorServerBusy", "ErrorExceededConnectionCount":
		return true
	}
	return strings.Contains(strings.ToLower(fl.Message), "tenant")
}
