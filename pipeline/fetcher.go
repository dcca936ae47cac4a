package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"
	"github.com/sourcegraph/conc/pool"

	"github.com/mailvault/mailvault/domain"
)

// Fetcher is the stage that talks to the source and the storage. It consumes
// request events (run_started, list_requested, batch_requested) and produces
// their outcomes; stored items go to domain.TopicItems before the outcome is
// returned, so an outcome in the log implies its items are there too.
type Fetcher struct {
	Run string
	// SourceName is the source's identity, kept with every stored item.
	SourceName string
	// FolderFilter and ExcludeMailboxes narrow discovery.
	FolderFilter     domain.FolderFilter
	ExcludeMailboxes []string
	// DiscoveryParallelism is how many mailboxes' folder trees are read at
	// once (one request at a time per mailbox, as its budget allows).
	DiscoveryParallelism int
	Source               Source
	Storage              Storage
	Resume               ResumeIndex
	// Trees holds the folder trees a FolderTracker source's changes apply
	// to; without it such a source's trees are walked in full.
	Trees FolderTrees
	Dedup Dedup
	// Items is where the fetcher publishes on its own, outside a
	// handler's return: stored items to domain.TopicItems, and each
	// mailbox's discovery to the run's outcomes as soon as it is read.
	Items message.Publisher
	// Pacer, when set, holds each request to the pace found for its
	// mailbox and the app.
	Pacer *Pacer
	// InFlight, when set, bounds the requests in flight once their pace
	// lets them go: a request waiting for its mailbox's pace is not in
	// flight, so the handlers that wait may outnumber the requests sent.
	InFlight chan struct{}
	// Storing, when set with InFlight, bounds the fetched batches being
	// stored once their request is done: a request's slot goes to the
	// next request as soon as its answer is read, not after the storage
	// has taken it, and a batch takes one of these before it gives the
	// slot up, so fetched content in memory stays bounded by the two.
	Storing chan struct{}
	Clock   Clock
	Log     zerolog.Logger
}

// longestPaceWait is the longest a request waits at the pacer while
// holding a worker; a longer hold (a Retry-After) goes back to the planner.
const longestPaceWait = 2 * time.Second

// permit is a request's leave to go: when its pace let it go, what it
// costs the budget, and the InFlight slot it holds until released.
type permit struct {
	sentAt  time.Time
	units   int
	release func()
}

// admit waits at the pacer, if any, and for one of the InFlight slots, and
// takes the pace's units once it has the slot, when the request goes.
// held is a throttle the server never saw: the pace holds the mailbox (or
// the app) longer than a worker should wait, and the planner parks the
// folder meanwhile. A request that is not sent holds no slot.
func (f *Fetcher) admit(ctx context.Context, req *domain.Event) (p permit, held *domain.Failure, err error) {
	p.release = func() {}
	if f.Pacer == nil {
		return p, nil, f.slot(ctx, &p)
	}
	p.units = 1
	if cm, ok := f.Source.(CostModel); ok {
		p.units = max(1, cm.RequestCost(req.Request, req.Kind, len(req.Items)).Budget)
	}
	for {
		wait, err := f.Pacer.Ready(ctx, req.Mailbox, p.units, longestPaceWait)
		if err != nil {
			return p, nil, err
		}
		if wait > 0 {
			return p, &domain.Failure{Class: domain.ClassThrottled, Code: domain.CodePaceHold, RetryAfter: wait,
				Message: "held by the pace of this mailbox or of the app (the server throttled it), not sent"}, nil
		}
		if err := f.slot(ctx, &p); err != nil {
			return p, nil, err
		}
		var ok bool
		if p.sentAt, ok = f.Pacer.Take(req.Mailbox, p.units); ok {
			return p, nil, nil
		}
		p.release() // another request of the mailbox took the turn
		p.release = func() {}
	}
}

// slot takes one of the InFlight slots, if they are bounded, for p.
func (f *Fetcher) slot(ctx context.Context, p *permit) error {
	if f.InFlight == nil {
		return nil
	}
	select {
	case f.InFlight <- struct{}{}:
		p.release = func() { <-f.InFlight }
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handOver ends a fetch's request once its answer is read: its InFlight
// slot goes to the next request, and when the batch still has items to
// store, for one of the Storing places first (waiting for one keeps the
// slot: the storage is behind, and more fetched batches would only wait in
// memory).
func (f *Fetcher) handOver(ctx context.Context, p *permit, storing bool) error {
	if f.Storing == nil || f.InFlight == nil {
		return nil // the slot is held until the batch is stored
	}
	if storing {
		select {
		case f.Storing <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.release()
	p.release = func() {}
	if storing {
		p.release = func() { <-f.Storing }
	}
	return nil
}

// paced tells the pacer how a request sent at sentAt was answered, and
// records on res what the pace became if a throttle cut it.
func (f *Fetcher) paced(res *domain.Event, sentAt time.Time, units int, latency time.Duration, fl *domain.Failure) {
	if f.Pacer == nil {
		return
	}
	po := f.Pacer.Done(res.Mailbox, sentAt, units, latency, fl)
	res.PaceRPS, res.PaceApp, res.PaceCostly, res.PaceWindowMS = po.Rate, po.App, po.Costly, po.Window.Milliseconds()
}

// itemThrottle is the throttle among a batch's item failures, if any: a
// $batch answers each sub-request on its own, and one 429 inside it is the
// server's limit as much as a 429 for the whole request.
func itemThrottle(failures []domain.ItemFailure) *domain.Failure {
	for _, it := range failures {
		if it.Class == domain.ClassThrottled {
			return &domain.Failure{Class: it.Class, Code: it.Code, Message: it.Message, RetryAfter: time.Duration(it.RetryAfterMS) * time.Millisecond}
		}
	}
	return nil
}

// storageError marks a failure of the target, not the source.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// internalError is a failure of mailvault's own state, neither the source's
// nor the storage's; it aborts the run instead of being retried.
type internalError struct{ err error }

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// CodeStorage is the code of a batch that failed because storage failed.
const CodeStorage = "StorageError"

// Handle implements message.HandlerFunc.
func (f *Fetcher) Handle(msg *message.Message) ([]*message.Message, error) {
	ev, err := decode(msg)
	if err != nil {
		return nil, err
	}
	var out []domain.Event
	switch ev.Type {
	case domain.RunStarted:
		if out, err = f.discover(msg.Context(), &ev); err != nil {
			return nil, err
		}
	case domain.ListRequested, domain.BatchRequested:
		outID := domain.DeriveID(ev.ID, "outcome")
		done, err := f.Dedup.Has(domain.RunOutcomesTopic(f.Run), outID)
		if err != nil {
			return nil, err
		}
		if done {
			return nil, nil // answered before a crash; do not ask the server again
		}
		if ev.Type == domain.ListRequested {
			out = []domain.Event{f.list(msg.Context(), &ev, outID)}
		} else {
			res, err := f.fetch(msg.Context(), &ev, outID)
			if err != nil {
				return nil, err
			}
			out = []domain.Event{res}
		}
	case domain.StorageSealRequested:
		done, err := f.Dedup.Has(domain.RunOutcomesTopic(f.Run), domain.DeriveID(ev.ID, "outcome"))
		if err != nil || done {
			return nil, err // answered already (a redelivery)
		}
		out = []domain.Event{f.seal(&ev)}
	default:
		return nil, nil
	}
	return encodeAll(out)
}

// seal makes what the storage holds durable where it was asked to be.
func (f *Fetcher) seal(cause *domain.Event) domain.Event {
	out := f.base(cause, domain.StorageSealed, domain.DeriveID(cause.ID, "outcome"))
	out.Outcome = domain.OutcomeSuccess
	if s, ok := f.Storage.(Sealer); ok {
		if err := s.Seal(); err != nil {
			out.Outcome, out.Code, out.Message = domain.OutcomeFailed, "StorageSealFailed", err.Error()
		}
	}
	return out
}

func (f *Fetcher) base(cause *domain.Event, typ domain.EventType, id string) domain.Event {
	return domain.Event{Type: typ, ID: id, Cause: cause.ID, Run: f.Run, Time: f.Clock.Now(),
		Mailbox: cause.Mailbox, Folder: cause.Folder, FolderID: cause.FolderID, Kind: cause.Kind,
		Request: cause.Request, Batch: cause.Batch, Attempt: cause.Attempt, Page: cause.Page, Pass: cause.Pass}
}

func failureEvent(ev domain.Event, fl *domain.Failure) domain.Event {
	if fl.Class == domain.ClassThrottled {
		ev.Type = domain.Throttled
		ev.Outcome = domain.OutcomeThrottled
		ev.RetryAfterMS = fl.RetryAfter.Milliseconds()
	} else {
		ev.Type = domain.BatchFailed
		ev.Outcome = domain.OutcomeFailed
	}
	ev.Class, ev.Code, ev.Message = fl.Class, fl.Code, domain.ShortMessage(fl.Message)
	return ev
}

// discover enumerates mailboxes and folders. Mailboxes are read in
// parallel, each one request at a time: the server's limits are per
// mailbox, so a tenant's discovery takes the time of its slowest mailboxes,
// not the sum of all. Each mailbox's events are published as soon as it and
// every mailbox before it are read, so folders are listed while discovery
// goes on, and the log holds the mailboxes in the same order every run (a
// replay sees the same discovery). What is returned is the closing event.
func (f *Fetcher) discover(ctx context.Context, start *domain.Event) ([]domain.Event, error) {
	listCtx, spent := CountingBudget(ctx)
	mbxs, err := withRetries(listCtx, func() ([]string, error) { return f.Source.Mailboxes(listCtx) })
	if err != nil {
		fl := domain.AsFailure(err)
		return []domain.Event{{Type: domain.DiscoveryCompleted, ID: domain.DeriveID(start.ID, "discovered"), Cause: start.ID, Run: f.Run,
			Time: f.Clock.Now(), Outcome: domain.OutcomeFailed, Class: fl.Class, Code: fl.Code, Message: domain.ShortMessage(fl.Message),
			Requests: int(spent.Load())}}, nil
	}
	mbxs = excluding(mbxs, f.ExcludeMailboxes)
	var (
		mu      sync.Mutex
		read    = make([][]domain.Event, len(mbxs))
		next    int
		pubErr  error
		workers = pool.New().WithMaxGoroutines(max(1, f.DiscoveryParallelism))
	)
	topic := domain.RunOutcomesTopic(f.Run)
	for i := range mbxs {
		workers.Go(func() {
			evs := f.discoverMailbox(ctx, start, mbxs[i])
			mu.Lock()
			defer mu.Unlock()
			read[i] = evs
			for ; next < len(mbxs) && read[next] != nil; next++ {
				if pubErr == nil {
					pubErr = f.publish(topic, read[next])
				}
				read[next] = nil
			}
		})
	}
	workers.Wait()
	if pubErr != nil {
		return nil, fmt.Errorf("publish discovery: %w", pubErr)
	}
	return []domain.Event{{Type: domain.DiscoveryCompleted, ID: domain.DeriveID(start.ID, "discovered"), Cause: start.ID,
		Run: f.Run, Time: f.Clock.Now(), Count: len(mbxs), Outcome: domain.OutcomeSuccess, Requests: int(spent.Load())}}, nil
}

// publish sends events to topic, in order, in one publish.
func (f *Fetcher) publish(topic string, evs []domain.Event) error {
	msgs, err := encodeAll(evs)
	if err != nil {
		return err
	}
	return f.Items.Publish(topic, msgs...)
}

// storedPerEvent bounds an items_stored event, so that a batch of
// thousands of items is not one huge record.
const storedPerEvent = 1000

// storedEvents records what a batch stored: one compact event per
// storedPerEvent items, ids derived from the request, so a request
// answered again after a crash records nothing twice.
func (f *Fetcher) storedEvents(req *domain.Event, stored []domain.StoredItem) []domain.Event {
	var out []domain.Event
	for i := 0; i < len(stored); i += storedPerEvent {
		out = append(out, domain.Event{Type: domain.ItemsStored, ID: domain.DeriveID(req.ID, "stored", strconv.Itoa(i)), Cause: req.ID,
			Run: f.Run, Time: f.Clock.Now(), Mailbox: req.Mailbox, Folder: req.Folder, FolderID: req.FolderID, Kind: req.Kind, Pass: req.Pass,
			Stored: stored[i:min(i+storedPerEvent, len(stored))]})
	}
	return out
}

// putAll stores items in one commit where the storage can, else one by one.
func putAll(st Storage, keys []domain.ItemKey, contents [][]byte) ([]domain.PutResult, error) {
	if bs, ok := st.(BatchStorage); ok {
		return bs.PutBatch(keys, contents)
	}
	out := make([]domain.PutResult, 0, len(keys))
	for i, k := range keys {
		r, err := st.Put(k, contents[i])
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// discoverMailbox reads one mailbox's folder tree: the mailbox's event,
// then one per folder the filter keeps.
func (f *Fetcher) discoverMailbox(ctx context.Context, start *domain.Event, m string) []domain.Event {
	ctx, spent := CountingBudget(ctx)
	if f.Pacer != nil {
		// The server's window counts discovery's requests with the
		// mailbox's others: a pace that did not would take a limit met
		// soon after it for a lower one.
		ctx = NotingSpends(ctx, func(units int) { f.Pacer.Note(m, units) })
	}
	folders, changes, err := f.readFolders(ctx, m)
	folders = f.FolderFilter.Apply(folders)
	me := domain.Event{Type: domain.MailboxDiscovered, ID: domain.DeriveID(f.Run, "mailbox", m), Cause: start.ID, Run: f.Run,
		Time: f.Clock.Now(), Mailbox: m, Count: len(folders), Outcome: domain.OutcomeSuccess, Requests: int(spent.Load()), Tree: changes}
	if err != nil {
		fl := domain.AsFailure(err)
		me.Outcome, me.Class, me.Code, me.Message = domain.OutcomeFailed, fl.Class, fl.Code, domain.ShortMessage(fl.Message)
		me.Count, me.Tree = 0, nil
		return []domain.Event{me}
	}
	out := []domain.Event{me}
	for _, fd := range folders {
		out = append(out, domain.Event{Type: domain.FolderDiscovered, ID: domain.DeriveID(f.Run, "folder", m, fd.ID), Cause: me.ID,
			Run: f.Run, Time: f.Clock.Now(), Mailbox: m, Folder: fd.Path, FolderID: fd.ID, Kind: fd.Kind, WellKnown: fd.WellKnown})
	}
	return out
}

// readFolders reads a mailbox's folders: as the changes since the tree the
// resume state holds when the source tracks hierarchies (the changes are
// returned to be recorded), else by walking the tree, with the well-known
// names asked separately when the folder filter needs them.
func (f *Fetcher) readFolders(ctx context.Context, m string) ([]domain.Folder, *domain.FolderChanges, error) {
	if tracker, ok := f.Source.(FolderTracker); ok && f.Trees != nil {
		prev, _, err := f.Trees.FolderTree(m)
		if err != nil {
			// Unreadable resume state costs a full listing, nothing more.
			f.Log.Warn().Err(err).Str("mailbox", m).Msg("the folder tree of the last discovery is unreadable: listing it again in full")
			prev = domain.FolderTree{}
		}
		changes, err := withRetries(ctx, func() (domain.FolderChanges, error) { return tracker.FolderChanges(ctx, m, prev) })
		if err == nil {
			tree, ok := prev.Apply(changes)
			if !ok {
				return nil, nil, &domain.Failure{Class: domain.ClassTransient, Code: "FolderChangesOutOfStep",
					Message: "the source reported folder changes since another state than the one it was given"}
			}
			if !changes.Full && len(changes.Changed) == 0 && len(changes.Removed) == 0 && domain.KeepToken(prev.Issued, f.Clock.Now()) {
				// Nothing changed since a young token: the tree keeps it,
				// and nothing is recorded (domain.TokenRefresh).
				return tree.Folders(), nil, nil
			}
			return tree.Folders(), &changes, nil
		}
		if !errors.Is(err, ErrFolderTrackingUnavailable) {
			return nil, nil, err
		}
	}
	folders, err := withRetries(ctx, func() ([]domain.Folder, error) { return f.Source.Folders(ctx, m) })
	if namer, ok := f.Source.(WellKnownNamer); ok && err == nil && f.FolderFilter.NeedsWellKnown() {
		var names map[string]string
		if names, err = withRetries(ctx, func() (map[string]string, error) { return namer.WellKnown(ctx, m) }); err == nil {
			for i := range folders {
				if folders[i].WellKnown == "" {
					folders[i].WellKnown = names[folders[i].ID]
				}
			}
		}
	}
	return folders, nil, err
}

// excluding drops the excluded addresses (any case) from a mailbox list.
func excluding(mbxs, excluded []string) []string {
	if len(excluded) == 0 {
		return mbxs
	}
	drop := map[string]bool{}
	for _, x := range excluded {
		drop[strings.ToLower(x)] = true
	}
	out := mbxs[:0:0]
	for _, m := range mbxs {
		// A mailbox's own other mailboxes ("ADDRESS (archive)") go with it.
		owner, _, _ := strings.Cut(m, " (")
		if !drop[strings.ToLower(m)] && !drop[strings.ToLower(owner)] {
			out = append(out, m)
		}
	}
	return out
}

// withRetries retries discovery calls on transient failures; discovery is a
// handful of requests, so it waits inline rather than parking.
func withRetries[T any](ctx context.Context, call func() (T, error)) (T, error) {
	var zero T
	b := domain.DefaultBackoff
	for attempt := 1; ; attempt++ {
		v, err := call()
		if err == nil {
			return v, nil
		}
		fl := domain.AsFailure(err)
		if (fl.Class != domain.ClassTransient && fl.Class != domain.ClassThrottled) || attempt >= b.MaxAttempts {
			return zero, err
		}
		wait := b.Delay(attempt+1, 0.5)
		if fl.RetryAfter > 0 {
			wait = domain.ClampRetryAfter(fl.RetryAfter)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

func (f *Fetcher) list(ctx context.Context, req *domain.Event, outID string) domain.Event {
	res := f.base(req, domain.ItemsListed, outID)
	permit, held, err := f.admit(ctx, req)
	if held == nil && err != nil {
		held = domain.AsFailure(err)
	}
	if held != nil {
		return failureEvent(res, held)
	}
	defer permit.release()
	t0 := time.Now()
	page, err := f.Source.List(ctx, req.Mailbox, req.FolderID, req.PageToken)
	res.SourceMS = time.Since(t0).Milliseconds()
	var fl *domain.Failure
	if err != nil {
		fl = domain.AsFailure(err)
	}
	// A page's time says more of the page (its size, the server's work to
	// build it) than of the server's queue: the pace reads latency from
	// fetches only, whose batches are alike.
	f.paced(&res, permit.sentAt, permit.units, 0, fl)
	if fl != nil {
		return failureEvent(res, fl)
	}
	if dr, ok := f.Storage.(DeletionRecorder); ok {
		for _, id := range page.Removed {
			if err := dr.MarkDeleted(domain.ItemKey{Source: f.SourceName, Mailbox: req.Mailbox, FolderID: req.FolderID, ItemID: id}, f.Clock.Now()); err != nil {
				f.Log.Error().Err(err).Str("mailbox", req.Mailbox).Str("folder", req.Folder).Msg("storage failed")
				return failureEvent(res, &domain.Failure{Class: domain.ClassFatal, Code: CodeStorage, Message: err.Error()})
			}
		}
	}
	res.Outcome = domain.OutcomeSuccess
	res.Items, res.NextPage = page.Items, page.Next
	res.Removed, res.Tracked = page.Removed, page.Tracked
	switch {
	case page.Next != "":
	case req.KeepToken && len(page.Items) == 0 && len(page.Removed) == 0:
		// Nothing changed since a young token: the folder keeps it, and
		// the log does not carry the server's new one.
		res.Unchanged = true
	default:
		res.SyncToken = page.SyncToken
	}
	for _, it := range page.Items {
		if it.Position >= req.Position {
			res.Count++ // scanned: at or after the cursor this pass resumes from
		}
	}
	return res
}

// flushBytes is how much fetched content waits for one storage commit;
// a batch of large items commits in several.
const flushBytes = 16 << 20

func (f *Fetcher) fetch(ctx context.Context, req *domain.Event, outID string) (domain.Event, error) {
	var stored []domain.StoredItem
	var itemFailures []domain.ItemFailure
	var target time.Duration
	var bytes int64
	var keys []domain.ItemKey
	var refs []domain.ItemRef
	var contents [][]byte
	var waiting int
	// flush stores the items fetched so far in one commit and records the
	// outcome of each.
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		ts := time.Now()
		puts, err := putAll(f.Storage, keys, contents)
		if err != nil {
			return &storageError{err}
		}
		_, tracks := f.Storage.(VersionChecker)
		for i, put := range puts {
			ref := refs[i]
			// Unchanged only when the storage held this version already and
			// the log knew it: an item written just before a crash, whose
			// event never made it, is counted once, as new, by the run that
			// records it; and whatever a new or repaired storage lacked is
			// new to it.
			unchanged := false
			if put.Existed || !tracks {
				// (A version the storage did not hold is new whatever the
				// log says: no need to ask it.)
				prev, known, err := f.Resume.Stored(req.Mailbox, req.FolderID, ref.ID)
				if err != nil {
					return &internalError{fmt.Errorf("read the resume index: %w", err)}
				}
				unchanged = known && prev.ChangeKey == ref.ChangeKey
			}
			bytes += put.Size
			stored = append(stored, domain.StoredItem{Position: ref.Position, ItemID: ref.ID, ChangeKey: ref.ChangeKey,
				Size: put.Size, SHA256: put.SHA256, NewBytes: put.NewBytes, Unchanged: unchanged})
		}
		target += time.Since(ts)
		keys, refs, contents, waiting = keys[:0], refs[:0], contents[:0], 0
		return nil
	}
	permit, held, err := f.admit(ctx, req)
	if err != nil {
		return domain.Event{}, err // shutting down: leave the request unanswered
	}
	if held != nil {
		return failureEvent(f.base(req, domain.BatchFetched, outID), held), nil
	}
	defer func() { permit.release() }()
	t0 := time.Now()
	err = f.Source.Fetch(ctx, req.Mailbox, req.FolderID, req.Items, func(it domain.Item) error {
		if fl := it.Failure; fl != nil {
			itemFailures = append(itemFailures, domain.ItemFailure{Item: it.Ref, Class: fl.Class, Code: fl.Code,
				Message: domain.ShortMessage(fl.Message), RetryAfterMS: fl.RetryAfter.Milliseconds()})
			return nil
		}
		format := it.Format
		if format == "" {
			format = domain.FormatMIME
		}
		keys = append(keys, domain.ItemKey{Source: f.SourceName, Mailbox: req.Mailbox, FolderPath: req.Folder, FolderID: req.FolderID, ItemID: it.Ref.ID, ChangeKey: it.Ref.ChangeKey,
			Kind: req.Kind, Format: format, Time: it.Ref.Time})
		refs, contents = append(refs, it.Ref), append(contents, it.Content)
		if waiting += len(it.Content); waiting >= flushBytes {
			return flush()
		}
		return nil
	})
	// The server's latency: the source's time less the storage's so far.
	latency := time.Since(t0) - target
	if err := f.handOver(ctx, &permit, len(keys) > 0); err != nil {
		return domain.Event{}, err // shutting down: leave the request unanswered
	}
	// What was fetched before a failure is stored too: the isolation that
	// follows asks only for what is missing.
	if ferr := flush(); ferr != nil && (err == nil || errors.As(ferr, new(*internalError))) {
		err = ferr
	}
	if len(stored) > 0 {
		msgs, encErr := encodeAll(f.storedEvents(req, stored))
		if encErr != nil {
			return domain.Event{}, encErr
		}
		if pubErr := f.Items.Publish(domain.TopicItems, msgs...); pubErr != nil {
			return domain.Event{}, fmt.Errorf("record stored items: %w", pubErr)
		}
	}
	res := f.base(req, domain.BatchFetched, outID)
	res.TargetMS = target.Milliseconds()
	res.SourceMS = latency.Milliseconds()
	res.Bytes = bytes
	res.Count = len(stored)
	res.ItemFailures = itemFailures
	// The pacer learns from the server's answers only: not from a failure
	// of the storage or of mailvault, nor from a request cut short.
	if !errors.As(err, new(*storageError)) && !errors.As(err, new(*internalError)) && ctx.Err() == nil {
		fl := itemThrottle(itemFailures)
		if err != nil {
			fl = domain.AsFailure(err)
		}
		f.paced(&res, permit.sentAt, permit.units, latency, fl)
	}
	if err != nil {
		var ie *internalError
		if errors.As(err, &ie) {
			return domain.Event{}, ie.err // not the server's fault: abort the run
		}
		var se *storageError
		if errors.As(err, &se) {
			f.Log.Error().Err(se.err).Str("mailbox", req.Mailbox).Str("folder", req.Folder).Msg("storage failed")
			return failureEvent(res, &domain.Failure{Class: domain.ClassFatal, Code: CodeStorage, Message: se.err.Error()}), nil
		}
		if ctx.Err() != nil {
			return domain.Event{}, ctx.Err() // shutting down: leave the request unanswered
		}
		fl := domain.AsFailure(err)
		if fl.Class == domain.ClassGone {
			if len(req.Items) == 1 && len(stored) == 0 {
				// One item, deleted at the source since it was listed.
				res.Outcome = domain.OutcomeSuccess
				res.ItemFailures = []domain.ItemFailure{{Item: req.Items[0], Class: domain.ClassGone, Code: fl.Code, Message: domain.ShortMessage(fl.Message)}}
				return res, nil
			}
			// The request failed whole for one missing item: isolate it
			// like a dirty one; alone, it is recorded as gone.
			fl = &domain.Failure{Class: domain.ClassDirty, Code: fl.Code, Message: fl.Message}
		}
		return failureEvent(res, fl), nil
	}
	res.Outcome = domain.OutcomeSuccess
	return res, nil
}
