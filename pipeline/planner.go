package pipeline

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/domain"
)

// PlannerConfig are the run's scheduling settings.
type PlannerConfig struct {
	Run              string
	BatchSize        int
	ThrottlePatience time.Duration
	QuarantineRetry  time.Duration
	Limits           domain.Limits
	Backoff          domain.Backoff
	// Cost prices a request in the server's budget; nil means every request
	// costs one.
	Cost func(request, kind string, items int) domain.RequestCost
	// FolderParallelism bounds the requests one folder has out at once.
	FolderParallelism int
	// TimeFilter leaves items out by age (the zero filter keeps all).
	TimeFilter domain.TimeFilter
	// MaxListingRestarts bounds how often one folder's listing may start
	// again in a run after the server discarded its state.
	MaxListingRestarts int
}

// Planner is the stage that decides what to request next. It consumes
// outcomes one at a time, in log order, and produces requests and the
// planner's own facts (splits, inferences, quarantine, parking, skips,
// completion). Its state lives in memory for the run and is a pure function
// of the outcomes it has seen plus the resume index at run start.
type Planner struct {
	cfg    PlannerConfig
	clock  Clock
	resume ResumeIndex
	log    zerolog.Logger
	// wake publishes a park_expired event when a parked folder's time is up.
	wake func(ev domain.Event)

	seen          map[string]bool
	mailboxes     map[string]*mailboxState
	mbxOrder      []string
	discoveryDone bool
	stopping      bool
	finished      bool
	// sealAsked: the work is done and the storage was asked to seal what
	// it holds; sealed: it answered. The run finishes after that.
	sealAsked, sealed bool
	errors            int
	skippedThr        int
	quarantined       map[string]bool
	idleSince         time.Time
	appInFlight       int
	appWindow         *domain.SlidingWindow

	timersMu sync.Mutex
	timers   []func() bool
}

type mailboxState struct {
	addr      string
	inFlight  int
	window    *domain.SlidingWindow
	notBefore time.Time
	folders   []*folderState
	rr        int
}

type folderPhase int

const (
	phaseActive folderPhase = iota
	phaseCompleted
	phaseSkipped
)

type folderState struct {
	mbx      *mailboxState
	id, path string
	kind     string
	pass     *domain.FolderPass
	passID   string
	phase    folderPhase
	// outstanding are the requests sent and not yet answered, by id.
	outstanding map[string]*sentRequest
	// failures counts the failed attempts of steps being retried.
	failures    map[string]int
	requests    int
	parkedUntil time.Time
	dirtyCode   string
	leftOut     []domain.Event
	resumeErr   error
	tracked     bool   // the listing's change keys are reliable
	syncToken   string // where the next pass lists changes from
	// keepFrom is the sync token the pass lists from when it is young
	// enough to be kept if nothing changed (domain.KeepToken); unchanged
	// says the listing from it found nothing: the folder keeps it.
	keepFrom    string
	unchanged   bool
	restarts    int
	itemRetries int // consecutive batches with items put back in line
	// mayHoldStored and mayHoldQuarantined are false when the resume index
	// said the folder holds nothing stored (or quarantined) when its pass
	// began: its listed items need no lookup each (a first pass). A pass
	// lists each item once, so what it stores itself need not be looked
	// up, until its listing starts again.
	mayHoldStored, mayHoldQuarantined bool
}

// sentRequest is a request the planner waits for.
type sentRequest struct {
	step    domain.FolderStep
	cost    domain.RequestCost
	attempt int
	stale   bool // sent before the listing restarted: answer is ignored
}

// stepKey identifies a step across its retries.
func stepKey(st domain.FolderStep) string {
	if st.Kind == domain.FolderList {
		return "list\x00" + st.PageToken
	}
	if len(st.Step.Items) == 0 {
		return fmt.Sprint("fetch\x00", st.Slot)
	}
	return fmt.Sprint("fetch\x00", st.Slot, "\x00", st.Step.Items[0].ID, "\x00", len(st.Step.Items))
}

// itemKey names an item of this folder in the planner's quarantine set.
func (f *folderState) itemKey(itemID string) string {
	return f.mbx.addr + "\x00" + f.id + "\x00" + itemID
}

// NewPlanner builds the planner of one run.
func NewPlanner(cfg PlannerConfig, clock Clock, resume ResumeIndex, log zerolog.Logger, wake func(domain.Event)) *Planner {
	if cfg.MaxListingRestarts == 0 {
		cfg.MaxListingRestarts = 3
	}
	p := &Planner{cfg: cfg, clock: clock, resume: resume, log: log, wake: wake,
		seen: map[string]bool{}, mailboxes: map[string]*mailboxState{}, quarantined: map[string]bool{}}
	if cfg.Limits.AppWindowRequests > 0 && cfg.Limits.AppWindow > 0 {
		p.appWindow = domain.NewSlidingWindow(cfg.Limits.AppWindowRequests, domain.SafeWindow(cfg.Limits.AppWindow))
	}
	return p
}

// Close stops pending wake-up timers.
func (p *Planner) Close() {
	p.timersMu.Lock()
	defer p.timersMu.Unlock()
	for _, stop := range p.timers {
		stop()
	}
	p.timers = nil
}

// Handle implements message.HandlerFunc.
func (p *Planner) Handle(msg *message.Message) ([]*message.Message, error) {
	ev, err := decode(msg)
	if err != nil {
		return nil, err
	}
	if p.seen[ev.ID] || p.finished {
		return nil, nil // redelivered: already applied
	}
	p.seen[ev.ID] = true
	out := p.apply(&ev)
	out = append(out, p.schedule()...)
	return encodeAll(out)
}

func (p *Planner) folder(ev *domain.Event) *folderState {
	m := p.mailboxes[ev.Mailbox]
	if m == nil {
		return nil
	}
	for _, f := range m.folders {
		if f.id == ev.FolderID {
			return f
		}
	}
	return nil
}

func (p *Planner) event(f *folderState, typ domain.EventType, id string) domain.Event {
	ev := domain.Event{Type: typ, ID: id, Run: p.cfg.Run, Time: p.clock.Now()}
	if f != nil {
		ev.Mailbox, ev.Folder, ev.FolderID, ev.Kind, ev.Pass = f.mbx.addr, f.path, f.id, f.kind, f.passID
	}
	return ev
}

func (p *Planner) apply(ev *domain.Event) []domain.Event {
	switch ev.Type {
	case domain.StopRequested:
		p.stopping = true
		return nil
	case domain.DiscoveryCompleted:
		p.discoveryDone = true
		if p.appWindow != nil && ev.Requests > 0 {
			p.appWindow.AddN(p.clock.Now(), ev.Requests) // the tenant's mailbox list
		}
		if ev.Outcome == domain.OutcomeFailed {
			p.errors++
		}
		return nil
	case domain.MailboxDiscovered:
		if ev.Outcome == domain.OutcomeFailed {
			p.errors++
			return nil
		}
		m, ok := p.mailboxes[ev.Mailbox]
		if !ok {
			m = &mailboxState{addr: ev.Mailbox,
				window: domain.NewSlidingWindow(p.cfg.Limits.WindowRequests, domain.SafeWindow(p.cfg.Limits.Window))}
			p.mailboxes[ev.Mailbox] = m
			p.mbxOrder = append(p.mbxOrder, ev.Mailbox)
		}
		if ev.Requests > 0 {
			// Discovery spent these before the planner knew the mailbox:
			// they count against its window and the app's like any other.
			now := p.clock.Now()
			m.window.AddN(now, ev.Requests)
			if p.appWindow != nil {
				p.appWindow.AddN(now, ev.Requests)
			}
		}
		return nil
	case domain.FolderDiscovered:
		return p.addFolder(ev)
	case domain.StorageSealed:
		p.sealed = true
		if ev.Outcome == domain.OutcomeFailed {
			p.errors++
		}
		return nil
	}
	f := p.folder(ev)
	if f == nil {
		return nil
	}
	if ev.Type == domain.ParkExpired {
		return p.unpark(f, ev)
	}
	req := f.outstanding[ev.Cause]
	if req == nil {
		return nil // an answer to a request this run no longer waits for
	}
	delete(f.outstanding, ev.Cause)
	f.mbx.inFlight -= req.cost.Concurrency
	p.appInFlight -= req.cost.Concurrency
	if req.stale || f.phase != phaseActive {
		return nil
	}
	switch ev.Type {
	case domain.ItemsListed:
		delete(f.failures, stepKey(req.step))
		f.leftOut = f.leftOut[:0]
		f.tracked = ev.Tracked
		switch {
		case ev.Unchanged && f.keepFrom != "":
			f.unchanged, f.syncToken = true, ""
		case ev.NextPage == "":
			f.unchanged, f.syncToken = false, ev.SyncToken
		}
		f.pass.AddPage(ev.Items, ev.NextPage)
		out := f.leftOut
		f.leftOut = nil
		for _, id := range ev.Removed {
			r := p.event(f, domain.ItemRemoved, domain.DeriveID(ev.ID, "removed", id))
			r.Cause, r.ItemID = ev.ID, id
			out = append(out, r)
		}
		if f.resumeErr != nil {
			return append(out, p.skip(f, "error", "ResumeIndexError", f.resumeErr.Error()))
		}
		return out
	case domain.BatchFetched:
		if len(ev.ItemFailures) > 0 {
			return p.itemFailures(f, ev, req)
		}
		delete(f.failures, stepKey(req.step))
		f.pass.Record(req.step.Slot, true)
		if req.step.Retry {
			return []domain.Event{p.release(f, req.step.Step.Items[0], ev)}
		}
		return nil
	case domain.BatchFailed:
		return p.failed(f, ev, req)
	case domain.Throttled:
		f.pass.Abandon(req.step)
		f.failures[stepKey(req.step)] = req.attempt
		wait := domain.ClampRetryAfter(time.Duration(ev.RetryAfterMS) * time.Millisecond)
		if wait == 0 {
			// Throttled without a hint: back off as for a transient error.
			wait = p.cfg.Backoff.Delay(req.attempt+1, p.jitter(ev.ID))
		}
		return []domain.Event{p.park(f, ev, wait, domain.ReasonThrottledByServer)}
	}
	return nil
}

func (p *Planner) release(f *folderState, it domain.ItemRef, cause *domain.Event) domain.Event {
	delete(p.quarantined, f.itemKey(it.ID))
	r := p.event(f, domain.ItemReleased, domain.DeriveID(cause.ID, "released"))
	r.Position, r.ItemID, r.Cause = it.Position, it.ID, cause.ID
	return r
}

// itemFailures handles a batch that succeeded as a request but failed for
// some of its items: a dirty item is quarantined directly (no split: the
// server named it), a gone item is recorded, and throttled or transient
// items go back in line while the folder waits.
func (p *Planner) itemFailures(f *folderState, ev *domain.Event, req *sentRequest) []domain.Event {
	var out []domain.Event
	var again []domain.ItemRef
	var wait time.Duration
	throttled, transient := false, false
	failed := map[string]bool{}
	for _, it := range ev.ItemFailures {
		failed[it.Item.ID] = true
		switch it.Class {
		case domain.ClassDirty, domain.ClassFatal:
			out = append(out, p.quarantine(f, it.Item, it.Code, ev.ID, ""))
		case domain.ClassGone:
			g := p.event(f, domain.ItemGone, domain.DeriveID(ev.ID, "gone", it.Item.ID))
			g.Cause, g.Position, g.ItemID, g.Code = ev.ID, it.Item.Position, it.Item.ID, it.Code
			out = append(out, g)
			if it.Item.Retry {
				out = append(out, p.release(f, it.Item, ev))
			}
		case domain.ClassThrottled:
			throttled = true
			wait = max(wait, domain.ClampRetryAfter(time.Duration(it.RetryAfterMS)*time.Millisecond))
			again = append(again, it.Item)
		default:
			transient = true
			again = append(again, it.Item)
		}
	}
	f.pass.Requeue(again)
	f.pass.Record(req.step.Slot, true)
	if req.step.Retry && !failed[req.step.Step.Items[0].ID] {
		out = append(out, p.release(f, req.step.Step.Items[0], ev))
	}
	// Items put back in line are fetched in a new batch; their failures
	// count against the folder so that an item failing forever ends it.
	if len(again) == 0 {
		f.itemRetries = 0
		return out
	}
	f.itemRetries++
	switch {
	case throttled:
		if wait == 0 {
			wait = p.cfg.Backoff.Delay(f.itemRetries+1, p.jitter(ev.ID))
		}
		return append(out, p.park(f, ev, wait, domain.ReasonThrottledByServer))
	case transient && f.itemRetries >= p.cfg.Backoff.MaxAttempts:
		p.errors++
		return append(out, p.skip(f, "error", ev.ItemFailures[0].Code, fmt.Sprintf("gave up after %d attempts: %s", f.itemRetries, ev.ItemFailures[0].Message)))
	default:
		return append(out, p.park(f, ev, p.cfg.Backoff.Delay(f.itemRetries+1, p.jitter(ev.ID)), domain.ReasonBackoff))
	}
}

func (p *Planner) addFolder(ev *domain.Event) []domain.Event {
	m := p.mailboxes[ev.Mailbox]
	if m == nil || p.folder(ev) != nil {
		return nil
	}
	f := &folderState{mbx: m, id: ev.FolderID, path: ev.Folder, kind: ev.Kind,
		outstanding: map[string]*sentRequest{}, failures: map[string]int{}}
	cur, ok, err := p.resume.Cursor(ev.Mailbox, ev.FolderID)
	if err != nil {
		f.resumeErr = err
	}
	if !ok || cur.Pass == "" {
		cur = domain.Cursor{Pass: p.cfg.Run, Position: 1, PageFirst: 1}
		// A folder completed before by a change-tracking source lists
		// only what changed since.
		st, _, err := p.resume.SyncToken(ev.Mailbox, ev.FolderID)
		if err != nil {
			f.resumeErr = err
		}
		if r, ok := p.resume.(Relister); ok {
			// A retry of quarantined items was asked for: they have not
			// changed, so only a listing in full finds them.
			if relist, err := r.Relist(ev.Mailbox, ev.FolderID); err != nil {
				f.resumeErr = err
			} else if relist {
				st = domain.SyncState{}
			}
		}
		cur.PageToken = st.Token
		if st.Token != "" && domain.KeepToken(st.Issued, p.clock.Now()) {
			f.keepFrom = st.Token
		}
	}
	f.passID = cur.Pass
	f.mayHoldStored, f.mayHoldQuarantined = true, true
	if h, ok := p.resume.(FolderHoldings); ok {
		if stored, quarantined, err := h.FolderHolds(ev.Mailbox, ev.FolderID); err == nil {
			f.mayHoldStored, f.mayHoldQuarantined = stored, quarantined
		}
	}
	f.pass = domain.NewFolderPass(p.cfg.BatchSize, p.cfg.FolderParallelism, cur, p.disposition(f))
	m.folders = append(m.folders, f)
	if f.resumeErr != nil {
		return []domain.Event{p.skip(f, "error", "ResumeIndexError", f.resumeErr.Error())}
	}
	return nil
}

// disposition classifies listed items against the resume index.
func (p *Planner) disposition(f *folderState) func(domain.ItemRef) domain.Disposition {
	return func(it domain.ItemRef) domain.Disposition {
		if !it.Time.IsZero() && !p.cfg.TimeFilter.Keep(f.kind, it.Time, p.clock.Now()) {
			return domain.SkipFiltered
		}
		var q domain.QuarantineRecord
		var dirty bool
		if f.mayHoldQuarantined {
			var err error
			if q, dirty, err = p.resume.Quarantined(f.mbx.addr, f.id, it.ID); err != nil {
				f.resumeErr = err
				return domain.SkipDone
			}
		}
		if dirty {
			p.quarantined[f.itemKey(it.ID)] = true
			if domain.QuarantineDue(q.LastAttempt, p.clock.Now(), p.cfg.QuarantineRetry) {
				return domain.RetryQuarantined
			}
			lo := p.event(f, domain.ItemQuarantined, domain.DeriveID(p.cfg.Run, "left-out", f.mbx.addr, f.id, it.ID))
			lo.Position, lo.ItemID, lo.Code, lo.Class, lo.Outcome = it.Position, it.ID, q.Code, domain.ClassDirty, domain.OutcomeLeftOut
			f.leftOut = append(f.leftOut, lo)
			return domain.SkipQuarantined
		}
		if !f.mayHoldStored {
			return domain.Fetch
		}
		st, stored, err := p.resume.Stored(f.mbx.addr, f.id, it.ID)
		if err != nil {
			f.resumeErr = err
			return domain.SkipDone
		}
		if stored && st.ChangeKey == it.ChangeKey && (st.Pass == f.passID || f.tracked && it.ChangeKey != "") {
			return domain.SkipDone
		}
		return domain.Fetch
	}
}

func (p *Planner) failed(f *folderState, ev *domain.Event, req *sentRequest) []domain.Event {
	class := ev.Class
	if req.step.Kind == domain.FolderList {
		switch class {
		case domain.ClassGone:
			// The folder was deleted since discovery: nothing left to
			// back up, and nothing wrong with the run.
			return []domain.Event{p.skip(f, domain.ReasonFolderGone, ev.Code, "the folder was deleted at the source during the run")}
		case domain.ClassDirty:
			class = domain.ClassFatal // a listing has no items to isolate
		}
	}
	switch class {
	case domain.ClassResync:
		if f.restarts >= p.cfg.MaxListingRestarts {
			p.errors++
			return []domain.Event{p.skip(f, "error", ev.Code, fmt.Sprintf("the server discarded the listing state %d times: %s", f.restarts+1, ev.Message))}
		}
		f.restarts++
		f.syncToken, f.keepFrom, f.unchanged = "", "", false
		// The listing starts again: what this pass stored is listed again.
		f.mayHoldStored = true
		f.failures = map[string]int{}
		for _, r := range f.outstanding {
			r.stale = true
		}
		f.pass.Restart()
		r := p.event(f, domain.ListingRestarted, domain.DeriveID(ev.ID, "restarted"))
		r.Cause, r.Code, r.Message = ev.ID, ev.Code, ev.Message
		c := f.pass.Cursor()
		r.Cursor = &c
		return []domain.Event{r}
	case domain.ClassDirty:
		delete(f.failures, stepKey(req.step))
		f.dirtyCode = ev.Code
		var out []domain.Event
		for _, it := range f.pass.Record(req.step.Slot, false) {
			out = append(out, p.quarantine(f, it, ev.Code, ev.ID, ""))
		}
		return out
	case domain.ClassTransient:
		if req.attempt >= p.cfg.Backoff.MaxAttempts {
			p.errors++
			return []domain.Event{p.skip(f, "error", ev.Code, fmt.Sprintf("gave up after %d attempts: %s", req.attempt, ev.Message))}
		}
		f.pass.Abandon(req.step)
		f.failures[stepKey(req.step)] = req.attempt
		return []domain.Event{p.park(f, ev, p.cfg.Backoff.Delay(req.attempt+1, p.jitter(ev.ID)), domain.ReasonBackoff)}
	default:
		p.errors++
		if ev.Code == CodeStorage {
			// The target is broken for every folder: stop the run cleanly.
			p.stopping = true
		}
		return []domain.Event{p.skip(f, "error", ev.Code, ev.Message)}
	}
}

func (p *Planner) quarantine(f *folderState, it domain.ItemRef, code, cause, reason string) domain.Event {
	p.quarantined[f.itemKey(it.ID)] = true
	f.mayHoldQuarantined = true
	q := p.event(f, domain.ItemQuarantined, domain.DeriveID(cause, "quarantine", it.ID))
	q.Cause, q.Position, q.ItemID, q.ChangeKey, q.Code, q.Class, q.Outcome, q.Reason =
		cause, it.Position, it.ID, it.ChangeKey, code, domain.ClassDirty, domain.OutcomeFailed, reason
	return q
}

// jitter derives a deterministic jitter from an event id, so that a replay of
// the same history makes the same decisions.
func (p *Planner) jitter(id string) float64 {
	var b [8]byte
	copy(b[:], id)
	return float64(binary.BigEndian.Uint64(b[:])%1000) / 1000
}

func (p *Planner) park(f *folderState, cause *domain.Event, wait time.Duration, reason string) domain.Event {
	until := p.clock.Now().Add(wait)
	f.parkedUntil = until
	ev := p.event(f, domain.FolderParked, domain.DeriveID(cause.ID, "parked"))
	ev.Cause, ev.Until, ev.Reason, ev.RetryAfterMS, ev.Code = cause.ID, &until, reason, wait.Milliseconds(), cause.Code
	c := f.pass.Cursor()
	ev.Cursor = &c
	p.after(wait, domain.Event{Type: domain.ParkExpired, ID: domain.DeriveID(ev.ID, "expired"), Cause: ev.ID, Run: p.cfg.Run,
		Mailbox: f.mbx.addr, Folder: f.path, FolderID: f.id, Until: &until})
	return ev
}

func (p *Planner) after(wait time.Duration, ev domain.Event) {
	stop := p.clock.AfterFunc(wait, func() {
		ev.Time = p.clock.Now()
		p.wake(ev)
	})
	p.timersMu.Lock()
	p.timers = append(p.timers, stop)
	p.timersMu.Unlock()
}

func (p *Planner) unpark(f *folderState, ev *domain.Event) []domain.Event {
	if f.parkedUntil.IsZero() || ev.Until == nil || !ev.Until.Equal(f.parkedUntil) || f.phase != phaseActive {
		return nil
	}
	now := p.clock.Now()
	if now.Before(f.parkedUntil) {
		p.after(f.parkedUntil.Sub(now), *ev) // woke early: sleep again
		return nil
	}
	f.parkedUntil = time.Time{}
	r := p.event(f, domain.FolderResumed, domain.DeriveID(ev.ID, "resumed"))
	r.Cause = ev.ID
	if !p.idleSince.IsZero() {
		// The whole run was waiting on the server: a stall caused by the source.
		r.SourceMS = now.Sub(p.idleSince).Milliseconds()
		p.idleSince = time.Time{}
	}
	return []domain.Event{r}
}

func (p *Planner) skip(f *folderState, reason, code, msg string) domain.Event {
	f.phase = phaseSkipped
	p.log.Warn().Str("mailbox", f.mbx.addr).Str("folder", f.path).Str("reason", reason).Str("code", code).
		Int("resume_at", f.pass.Cursor().Position).Msg("folder skipped")
	ev := p.event(f, domain.FolderSkipped, domain.DeriveID(p.cfg.Run, "skipped", f.mbx.addr, f.id))
	c := f.pass.Cursor()
	ev.Reason, ev.Code, ev.Message, ev.Cursor = reason, code, domain.ShortMessage(msg), &c
	return ev
}

// schedule issues requests for every folder that can take one, within each
// mailbox's in-flight and window limits, and ends the run when nothing is
// left or only throttled work remains beyond the patience.
func (p *Planner) schedule() []domain.Event {
	if p.finished {
		return nil
	}
	var out []domain.Event
	now := p.clock.Now()
	for _, addr := range p.mbxOrder {
		m := p.mailboxes[addr]
		if p.stopping {
			break
		}
		out = append(out, p.scheduleMailbox(m, now)...)
	}
	return append(out, p.checkEnd(now)...)
}

// scheduleMailbox sends what one mailbox's limits allow: round after round
// over its folders, one request per folder and round, so that folders share
// the mailbox fairly; a folder may have up to FolderParallelism requests out.
func (p *Planner) scheduleMailbox(m *mailboxState, now time.Time) []domain.Event {
	var out []domain.Event
	for {
		issued := false
		n := len(m.folders)
		for i := 0; i < n; i++ {
			if !p.slotsFree(m) || now.Before(m.notBefore) {
				return out
			}
			idx := (m.rr + i) % n
			f := m.folders[idx]
			// The folder pass itself bounds what one folder has out.
			if f.phase != phaseActive || now.Before(f.parkedUntil) {
				continue
			}
			ev, sent, blocked := p.step(f, now)
			out = append(out, ev...)
			if blocked {
				return out
			}
			if sent {
				issued = true
				m.rr = (idx + 1) % n
			}
		}
		if !issued {
			return out
		}
	}
}

func (p *Planner) slotsFree(m *mailboxState) bool {
	return m.inFlight < p.cfg.Limits.MaxInFlight && (p.cfg.Limits.AppMaxInFlight == 0 || p.appInFlight < p.cfg.Limits.AppMaxInFlight)
}

// step advances one folder to its next request and sends it if the limits
// allow. blocked means the mailbox (or the app) can take nothing more now.
func (p *Planner) step(f *folderState, now time.Time) (out []domain.Event, sent, blocked bool) {
	m := f.mbx
	for {
		st := f.pass.Next()
		switch st.Kind {
		case domain.FolderSplit:
			out = append(out, p.splitEvent(f, st))
			continue
		case domain.FolderInferDirty:
			it := st.Step.Items[0]
			inf := p.event(f, domain.ItemInferredDirty, domain.DeriveID(p.cfg.Run, "inferred", f.mbx.addr, f.id, it.ID))
			inf.Position, inf.ItemID = it.Position, it.ID
			out = append(out, inf, p.quarantine(f, it, f.dirtyCode, inf.ID, domain.ReasonInferred))
			continue
		case domain.FolderDone:
			f.phase = phaseCompleted
			done := p.event(f, domain.FolderCompleted, domain.DeriveID(p.cfg.Run, "completed", f.mbx.addr, f.id))
			done.SyncToken, done.Unchanged = f.syncToken, f.unchanged
			return append(out, done), false, false
		case domain.FolderWait:
			return out, false, false
		}
		cost := p.cost(f, st)
		if m.inFlight > 0 && m.inFlight+cost.Concurrency > p.cfg.Limits.MaxInFlight ||
			p.cfg.Limits.AppMaxInFlight > 0 && p.appInFlight > 0 && p.appInFlight+cost.Concurrency > p.cfg.Limits.AppMaxInFlight {
			return out, false, true // wait for slots to free up
		}
		if wait := p.windowWait(m, now, cost.Budget); wait > 0 {
			// Self-throttling: the request budget is spent; wait for the
			// window rather than be punished.
			m.notBefore = now.Add(wait)
			p.after(wait, domain.Event{Type: domain.ParkExpired, ID: domain.DeriveID(p.cfg.Run, "window", m.addr, m.notBefore.String()), Run: p.cfg.Run})
			return out, false, true
		}
		m.window.AddN(now, cost.Budget)
		if p.appWindow != nil {
			p.appWindow.AddN(now, cost.Budget)
		}
		m.inFlight += cost.Concurrency
		p.appInFlight += cost.Concurrency
		return append(out, p.request(f, st, cost)), true, false
	}
}

// cost prices the request a folder step would send.
func (p *Planner) cost(f *folderState, st domain.FolderStep) domain.RequestCost {
	if p.cfg.Cost == nil {
		return domain.UnitCost
	}
	req, n := domain.RequestList, 0
	if st.Kind == domain.FolderFetch {
		req, n = domain.RequestFetch, len(st.Step.Items)
	}
	c := p.cfg.Cost(req, f.kind, n)
	c.Budget, c.Concurrency = max(c.Budget, 1), max(c.Concurrency, 1)
	return c
}

// windowWait is how long until budget more requests fit in both the
// mailbox's window and the app's.
func (p *Planner) windowWait(m *mailboxState, now time.Time, budget int) time.Duration {
	wait := m.window.WaitN(now, budget)
	if p.appWindow != nil {
		wait = max(wait, p.appWindow.WaitN(now, budget))
	}
	return wait
}

func (p *Planner) splitEvent(f *folderState, st domain.FolderStep) domain.Event {
	r := domain.RangeOf(st.Step.Items)
	ev := p.event(f, domain.BatchSplit, domain.DeriveID(p.cfg.Run, "split", f.mbx.addr, f.id, fmt.Sprint(f.requests, r)))
	ev.Batch = &r
	ev.Halves = []domain.Range{domain.RangeOf(st.Step.Halves[0]), domain.RangeOf(st.Step.Halves[1])}
	if st.Step.KnownDirty {
		ev.Reason = "first half succeeded: the second holds a dirty item"
	}
	return ev
}

func (p *Planner) request(f *folderState, st domain.FolderStep, cost domain.RequestCost) domain.Event {
	attempt := f.failures[stepKey(st)] + 1
	f.requests++
	f.pass.Start(st)
	c := f.pass.Cursor()
	id := domain.DeriveID(p.cfg.Run, "request", f.mbx.addr, f.id, fmt.Sprint(f.requests))
	var ev domain.Event
	if st.Kind == domain.FolderList {
		ev = p.event(f, domain.ListRequested, id)
		ev.Request, ev.PageToken, ev.Page, ev.Position = domain.RequestList, st.PageToken, st.Page, c.Position
		ev.KeepToken = f.keepFrom != "" && st.PageToken == f.keepFrom
	} else {
		ev = p.event(f, domain.BatchRequested, id)
		r := domain.RangeOf(st.Step.Items)
		ev.Request, ev.Batch, ev.Items = domain.RequestFetch, &r, st.Step.Items
		if st.Retry {
			ev.Reason = "quarantine retry"
		}
	}
	ev.Attempt = attempt
	if st.Kind != domain.FolderList || c.Position > 1 {
		// A listing before the pass's first item is done resumes from
		// nowhere else: its cursor would only repeat its page token.
		ev.Cursor = &c
	}
	f.outstanding[id] = &sentRequest{step: st, cost: cost, attempt: attempt}
	return ev
}

func (p *Planner) checkEnd(now time.Time) []domain.Event {
	if !p.discoveryDone || p.sealAsked && !p.sealed {
		return nil
	}
	inFlight, active := 0, []*folderState{}
	for _, addr := range p.mbxOrder {
		m := p.mailboxes[addr]
		inFlight += m.inFlight
		for _, f := range m.folders {
			if f.phase == phaseActive {
				active = append(active, f)
			}
		}
	}
	if inFlight > 0 {
		return nil
	}
	var out []domain.Event
	switch {
	case len(active) == 0:
	case p.stopping:
		for _, f := range active {
			out = append(out, p.skip(f, "interrupted", "", "the run was stopped; continues next run"))
		}
	default:
		// Nothing in flight, work left: everything left is waiting on the server.
		earliest := time.Time{}
		for _, f := range active {
			t := f.parkedUntil
			if f.mbx.notBefore.After(t) {
				t = f.mbx.notBefore
			}
			if earliest.IsZero() || t.Before(earliest) {
				earliest = t
			}
		}
		if earliest.Sub(now) <= p.cfg.ThrottlePatience {
			if p.idleSince.IsZero() {
				p.idleSince = now
			}
			return nil
		}
		sort.SliceStable(active, func(i, j int) bool { return active[i].parkedUntil.Before(active[j].parkedUntil) })
		for _, f := range active {
			p.skippedThr++
			out = append(out, p.skip(f, domain.ReasonThrottled, "", fmt.Sprintf(
				"The mailbox is throttled on folder '%s'. Skipping this folder - the backup will continue on the next run.", f.path)))
		}
	}
	if !p.sealAsked {
		p.sealAsked = true
		return append(out, p.event(nil, domain.StorageSealRequested, domain.DeriveID(p.cfg.Run, "seal")))
	}
	p.finished = true
	p.Close()
	state := domain.JudgeRun(p.errors, len(p.quarantined), p.skippedThr)
	if p.stopping && state != domain.StateNotFinished {
		state = domain.StateNotFinished
	}
	fin := p.event(nil, domain.RunFinished, domain.DeriveID(p.cfg.Run, "finished"))
	fin.State = string(state)
	return append(out, fin)
}
