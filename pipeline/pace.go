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
	mailboxes map[string]*domain.Pace
	// limits are what each mailbox's last throttle found, and highest the
	// highest of them (see noteLimit and sibling).
	limits  map[string]domain.LearnedPace
	highest domain.LearnedPace
}

// NewPacer returns a pacer on clock, seeded from memory (nil: nothing
// learned).
func NewPacer(clock Clock, memory PaceMemory) *Pacer {
	p := &Pacer{clock: clock, memory: memory, mailboxes: map[string]*domain.Pace{}, limits: map[string]domain.LearnedPace{}}
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

func (p *Pacer) mailbox(m string) *domain.Pace {
	pc := p.mailboxes[m]
	if pc == nil {
		l := p.learned(m)
		if l.Rate <= 0 {
			l = p.sibling()
		}
		pc = domain.NewPace(l)
		p.mailboxes[m] = pc
	}
	return pc
}

// Wait blocks until units of mailbox's may be sent by both its pace and the
// app's, takes them, and returns when. A Retry-After in force for longer
// than longest is not waited: it is returned (with a zero time) for the
// caller to hand back to the planner, which works elsewhere meanwhile; the
// spacing of a pace is waited out, however long.
func (p *Pacer) Wait(ctx context.Context, mailbox string, units int, longest time.Duration) (time.Time, time.Duration, error) {
	for {
		p.mu.Lock()
		now := p.clock.Now()
		m := p.mailbox(mailbox)
		wait := max(m.Wait(now, units), p.app.Wait(now, units))
		held := max(m.Held(now), p.app.Held(now))
		if wait <= 0 {
			m.Take(now, units)
			p.app.Take(now, units)
			p.mu.Unlock()
			return now, 0, nil
		}
		p.mu.Unlock()
		// A Retry-After in force goes back to the planner, which works
		// elsewhere meanwhile; the spacing of a pace is waited out here,
		// however long a queue of requests makes it, since a request
		// waiting for its pace holds no worker (Fetcher.InFlight).
		if held > longest {
			return time.Time{}, held, nil
		}
		woken := make(chan struct{})
		stop := p.clock.AfterFunc(wait, func() { close(woken) })
		select {
		case <-woken:
		case <-ctx.Done():
			stop()
			return time.Time{}, 0, ctx.Err()
		}
	}
}

// Note counts units sent for mailbox now without waiting for the paces:
// requests the pacer does not hold (discovery's, a handful at a run's
// start) but the server counts.
func (p *Pacer) Note(mailbox string, units int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	p.mailbox(mailbox).Take(now, units)
	p.app.Take(now, units)
}

// PaceOutcome is what the pacer learned from one answer: the pace after it,
// and whether it is the app's (a tenant-wide limit) rather than the
// mailbox's. Zero when nothing was cut.
type PaceOutcome struct {
	Rate   float64
	App    bool
	Costly bool // the server's back-off was costly: see domain.LearnedPace
}

// Done records the answer to units sent at sentAt: throttled (fl of
// ClassThrottled, with its Retry-After), or answered after latency (0: not
// measured). A throttle that names a tenant-wide limit cuts the app's pace,
// any other the mailbox's.
func (p *Pacer) Done(mailbox string, sentAt time.Time, units int, latency time.Duration, fl *domain.Failure) PaceOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.mailbox(mailbox)
	if fl == nil || fl.Class != domain.ClassThrottled {
		if fl == nil || fl.Class != domain.ClassTransient {
			m.Succeeded(units, latency)
			p.app.Succeeded(units, latency)
		}
		return PaceOutcome{}
	}
	now := p.clock.Now()
	if tenantWide(fl) {
		if p.app.Throttled(now, sentAt, fl.RetryAfter) {
			l := p.app.Learned()
			return PaceOutcome{Rate: l.Rate, App: true, Costly: l.Costly}
		}
		return PaceOutcome{}
	}
	if m.Throttled(now, sentAt, fl.RetryAfter) {
		l := m.Learned()
		p.noteLimit(mailbox, l)
		return PaceOutcome{Rate: l.Rate, Costly: l.Costly}
	}
	return PaceOutcome{}
}

// noteLimit records the limit a mailbox's throttle found. The highest is
// kept as limits change, looked for again only when the mailbox that held
// it is cut, so that thousands of mailboxes cost no scan per throttle.
func (p *Pacer) noteLimit(mailbox string, l domain.LearnedPace) {
	prev, had := p.limits[mailbox]
	p.limits[mailbox] = l
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
