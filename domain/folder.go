package domain

// FolderPass is one pass over a folder listing: it turns listing pages into
// batches, drives each batch through isolation, and keeps the resume cursor.
//
// Up to parallel batches of a folder are in flight at once (each isolated on
// its own, strictly in order within the batch, so a batch's history reads as
// the seed's); with parallel 1 requests within a folder are strictly
// sequential, which keeps replays of the in-process source deterministic.
// Parallelism within a folder matters when one big folder is all the work
// and requests are cheap in the server's budget (Graph's exportItems).
//
// Memory is bounded by one listing page plus parallel batches, whatever the
// folder size: pages are requested only when fewer than parallel batches of
// items are pending.
type FolderPass struct {
	batchSize int
	parallel  int
	cursor    Cursor
	skip      func(ItemRef) Disposition

	pending     []ItemRef
	retries     []ItemRef
	pages       []pageMark // pages that still have pending items, oldest first
	nextToken   string
	listing     bool // a page request is out
	listingDone bool
	page        int

	active  []*slot
	slotSeq int
	scanned int
}

// slot is one batch in flight.
type slot struct {
	id          int
	batch       *Batch
	retry       bool
	first       int // lowest position of the batch: the cursor cannot pass it
	outstanding bool
}

type pageMark struct {
	token string
	first int
	last  int
}

// Disposition says how a listed item is treated before any fetch.
type Disposition int

const (
	// Fetch the item in the next batch.
	Fetch Disposition = iota
	// SkipDone: already stored in this pass (an interrupted pass resumed).
	SkipDone
	// SkipQuarantined: known dirty and not yet due for its retry.
	SkipQuarantined
	// RetryQuarantined: known dirty and due: fetch it alone.
	RetryQuarantined
	// SkipFiltered: left out by the job's time filter.
	SkipFiltered
)

// FolderStepKind extends the isolation steps with listing and completion.
type FolderStepKind int

const (
	FolderWait FolderStepKind = iota // nothing to do until an outstanding answer arrives
	FolderList
	FolderFetch
	FolderSplit
	FolderInferDirty
	FolderDone
)

// FolderStep is the next thing a folder pass needs.
type FolderStep struct {
	Kind FolderStepKind
	// PageToken to list, for FolderList ("" is the first page).
	PageToken string
	Page      int
	// Step is the isolation step, for fetch, split and infer.
	Step Step
	// Retry is set when the fetch is a quarantined item's solo retry.
	Retry bool
	// Slot names the batch a fetch, split or infer step belongs to.
	Slot int
}

// NewFolderPass starts or resumes a pass. cursor.Position <= 1 means from the
// start. skip classifies each listed item (stored, quarantined...). parallel
// bounds the batches in flight at once (at least 1).
func NewFolderPass(batchSize, parallel int, cursor Cursor, skip func(ItemRef) Disposition) *FolderPass {
	if batchSize < 1 {
		batchSize = 1
	}
	if parallel < 1 {
		parallel = 1
	}
	if cursor.Position < 1 {
		cursor.Position = 1
	}
	if cursor.PageFirst < 1 {
		cursor.PageFirst = 1
	}
	return &FolderPass{batchSize: batchSize, parallel: parallel, cursor: cursor, skip: skip, nextToken: cursor.PageToken}
}

// Cursor is where this pass would resume if it stopped now.
func (f *FolderPass) Cursor() Cursor { return f.cursor }

// Scanned counts listed items considered by this pass (at or after the cursor
// it started from).
func (f *FolderPass) Scanned() int { return f.scanned }

// Outstanding counts requests started and not yet answered.
func (f *FolderPass) Outstanding() int {
	n := 0
	if f.listing {
		n++
	}
	for _, s := range f.active {
		if s.outstanding {
			n++
		}
	}
	return n
}

// Next returns the next step that is not already in flight. FolderList and
// FolderFetch are returned again until Start is called for them; split and
// infer steps take effect as they are returned.
func (f *FolderPass) Next() FolderStep {
	for {
		progressed := false
		for i := 0; i < len(f.active); i++ {
			sl := f.active[i]
			if sl.outstanding {
				continue
			}
			s := sl.batch.Next()
			switch s.Kind {
			case StepFetch:
				return FolderStep{Kind: FolderFetch, Step: s, Retry: sl.retry, Slot: sl.id}
			case StepSplit:
				return FolderStep{Kind: FolderSplit, Step: s, Slot: sl.id}
			case StepInferDirty:
				return FolderStep{Kind: FolderInferDirty, Step: s, Slot: sl.id}
			case StepDone:
				f.remove(sl.id)
				f.advanceCursor()
				i--
				progressed = true
			}
		}
		if progressed {
			continue
		}
		if len(f.active) < f.parallel {
			if len(f.retries) > 0 {
				item := f.retries[0]
				f.retries = f.retries[1:]
				f.open([]ItemRef{item}, true)
				continue
			}
			if len(f.pending) >= f.batchSize || (f.listingDone && len(f.pending) > 0) {
				n := min(f.batchSize, len(f.pending))
				items := make([]ItemRef, n)
				copy(items, f.pending[:n])
				f.pending = f.pending[n:]
				f.open(items, false)
				continue
			}
		}
		// List ahead while batches are out only when several may run at
		// once; with one, listing waits for the batch as it always did.
		if !f.listingDone && !f.listing && len(f.pending) < f.batchSize*f.parallel && (f.parallel > 1 || len(f.active) == 0) {
			return FolderStep{Kind: FolderList, PageToken: f.nextToken, Page: f.page + 1}
		}
		if f.listing || len(f.active) > 0 {
			return FolderStep{Kind: FolderWait}
		}
		return FolderStep{Kind: FolderDone}
	}
}

func (f *FolderPass) open(items []ItemRef, retry bool) {
	f.slotSeq++
	f.active = append(f.active, &slot{id: f.slotSeq, batch: NewBatch(items), retry: retry, first: items[0].Position})
}

func (f *FolderPass) slot(id int) *slot {
	for _, s := range f.active {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *FolderPass) remove(id int) {
	for i, s := range f.active {
		if s.id == id {
			f.active = append(f.active[:i], f.active[i+1:]...)
			return
		}
	}
}

// Start marks a list or fetch step as sent.
func (f *FolderPass) Start(s FolderStep) {
	switch s.Kind {
	case FolderList:
		f.listing = true
	case FolderFetch:
		if sl := f.slot(s.Slot); sl != nil {
			sl.outstanding = true
		}
	}
}

// Abandon takes back a sent step that got no usable answer (throttled, a
// transient error): Next returns it again.
func (f *FolderPass) Abandon(s FolderStep) {
	switch s.Kind {
	case FolderList:
		f.listing = false
	case FolderFetch:
		if sl := f.slot(s.Slot); sl != nil {
			sl.outstanding = false
		}
	}
}

// AddPage takes a listing page. Items before the resume cursor are ignored;
// the others are classified and queued. next is the token of the following
// page, "" when this was the last.
func (f *FolderPass) AddPage(items []ItemRef, next string) {
	f.listing = false
	f.page++
	token := f.nextToken
	f.nextToken = next
	f.listingDone = next == ""
	if len(items) > 0 {
		f.pages = append(f.pages, pageMark{token: token, first: items[0].Position, last: items[len(items)-1].Position})
	}
	for _, it := range items {
		if it.Position < f.cursor.Position {
			continue
		}
		f.scanned++
		switch f.skip(it) {
		case Fetch:
			f.pending = append(f.pending, it)
		case RetryQuarantined:
			it.Retry = true
			f.retries = append(f.retries, it)
		}
	}
	if len(f.active) == 0 && len(f.pending) == 0 && len(f.retries) == 0 {
		f.advanceCursor()
	}
}

// Record reports the outcome of a slot's outstanding fetch (ok, or failed
// dirty) and returns the items it proves dirty.
func (f *FolderPass) Record(slotID int, ok bool) (quarantine []ItemRef) {
	sl := f.slot(slotID)
	if sl == nil {
		return nil
	}
	sl.outstanding = false
	quarantine = sl.batch.Record(ok)
	if sl.batch.Done() {
		// Move the cursor now, so a checkpoint taken before the next step
		// does not send the next run over this batch again.
		f.remove(slotID)
		f.advanceCursor()
	}
	return quarantine
}

// Requeue puts items of the outstanding batch back in line: they failed on
// their own for a reason that passes (a throttled or timed-out sub-request)
// and are fetched again in a later batch. Call it before Record, so that the
// cursor stays at the earliest requeued item.
func (f *FolderPass) Requeue(items []ItemRef) {
	if len(items) == 0 {
		return
	}
	merged := make([]ItemRef, 0, len(items)+len(f.pending))
	for _, it := range items {
		if it.Retry {
			f.retries = append(f.retries, it)
			continue
		}
		merged = append(merged, it)
	}
	merged = append(merged, f.pending...)
	sortByPosition(merged)
	f.pending = merged
}

func sortByPosition(items []ItemRef) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].Position < items[j-1].Position; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// Restart begins the pass again from the first page: the server discarded
// the listing state. Items already handled are skipped by the disposition
// (they are stored in this pass), so nothing is fetched twice.
func (f *FolderPass) Restart() {
	*f = FolderPass{batchSize: f.batchSize, parallel: f.parallel, skip: f.skip, slotSeq: f.slotSeq,
		cursor: Cursor{Pass: f.cursor.Pass, Position: 1, PageFirst: 1}}
}

// advanceCursor moves the cursor to the first item not yet handled: the
// start of the earliest batch in flight, or the first pending item.
func (f *FolderPass) advanceCursor() {
	pos := 0
	for _, s := range f.active {
		if !s.retry && (pos == 0 || s.first < pos) {
			pos = s.first
		}
	}
	if len(f.pending) > 0 && (pos == 0 || f.pending[0].Position < pos) {
		pos = f.pending[0].Position
	}
	if pos == 0 {
		if len(f.pages) == 0 {
			return
		}
		pos = f.pages[len(f.pages)-1].last + 1
	}
	// Drop pages wholly before pos; the cursor names the page holding pos.
	for len(f.pages) > 1 && f.pages[0].last < pos {
		f.pages = f.pages[1:]
	}
	c := Cursor{Pass: f.cursor.Pass, Position: pos}
	if len(f.pages) > 0 && pos <= f.pages[0].last {
		c.PageToken, c.PageFirst = f.pages[0].token, f.pages[0].first
	} else {
		// Everything listed so far is done: resume at the next page.
		c.PageToken, c.PageFirst = f.nextToken, pos
		f.pages = f.pages[:0]
	}
	f.cursor = c
}
