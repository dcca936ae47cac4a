package domain

// FolderPass is one pass over a folder listing: it turns listing pages into
// batches, drives each batch through isolation, and keeps the resume cursor.
// Requests within a folder are strictly sequential (one outstanding at a time),
// which keeps the isolation order of the seed and makes replays deterministic;
// parallelism comes from working on several folders and mailboxes at once.
//
// Memory is bounded by one listing page plus one batch, whatever the folder
// size: pages are requested only when fewer than a batch of items is pending.
type FolderPass struct {
	batchSize int
	cursor    Cursor
	skip      func(ItemRef) Disposition

	pending     []ItemRef
	retries     []ItemRef
	pages       []pageMark // pages that still have pending items, oldest first
	nextToken   string
	listed      bool // the first page was requested at least once
	listingDone bool
	page        int

	batch   *Batch
	isRetry bool
	scanned int
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
}

// NewFolderPass starts or resumes a pass. cursor.Position <= 1 means from the
// start. skip classifies each listed item (stored, quarantined...).
func NewFolderPass(batchSize int, cursor Cursor, skip func(ItemRef) Disposition) *FolderPass {
	if batchSize < 1 {
		batchSize = 1
	}
	if cursor.Position < 1 {
		cursor.Position = 1
	}
	if cursor.PageFirst < 1 {
		cursor.PageFirst = 1
	}
	return &FolderPass{batchSize: batchSize, cursor: cursor, skip: skip, nextToken: cursor.PageToken}
}

// Cursor is where this pass would resume if it stopped now.
func (f *FolderPass) Cursor() Cursor { return f.cursor }

// Scanned counts listed items considered by this pass (at or after the cursor
// it started from).
func (f *FolderPass) Scanned() int { return f.scanned }

// Next returns the next step. FolderList and FolderFetch are returned again
// until AddPage or Record is called; split and infer steps take effect as they
// are returned.
func (f *FolderPass) Next() FolderStep {
	for {
		if f.batch != nil {
			s := f.batch.Next()
			switch s.Kind {
			case StepFetch:
				return FolderStep{Kind: FolderFetch, Step: s, Retry: f.isRetry}
			case StepSplit:
				return FolderStep{Kind: FolderSplit, Step: s}
			case StepInferDirty:
				return FolderStep{Kind: FolderInferDirty, Step: s}
			case StepDone:
				f.batch = nil
				f.isRetry = false
				f.advanceCursor()
				continue
			}
		}
		if len(f.retries) > 0 {
			item := f.retries[0]
			f.retries = f.retries[1:]
			f.batch = NewBatch([]ItemRef{item})
			f.isRetry = true
			continue
		}
		if len(f.pending) >= f.batchSize || (f.listingDone && len(f.pending) > 0) {
			n := min(f.batchSize, len(f.pending))
			items := make([]ItemRef, n)
			copy(items, f.pending[:n])
			f.pending = f.pending[n:]
			f.batch = NewBatch(items)
			continue
		}
		if !f.listingDone {
			return FolderStep{Kind: FolderList, PageToken: f.nextToken, Page: f.page + 1}
		}
		return FolderStep{Kind: FolderDone}
	}
}

// AddPage takes a listing page. Items before the resume cursor are ignored;
// the others are classified and queued. next is the token of the following
// page, "" when this was the last.
func (f *FolderPass) AddPage(items []ItemRef, next string) {
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
	if f.batch == nil && len(f.pending) == 0 && len(f.retries) == 0 {
		f.advanceCursor()
	}
}

// Record reports the outcome of the outstanding fetch (ok, or failed dirty).
func (f *FolderPass) Record(ok bool) (quarantine []ItemRef) {
	if f.batch == nil {
		return nil
	}
	quarantine = f.batch.Record(ok)
	if f.batch.Done() {
		// Move the cursor now, so a checkpoint taken before the next step
		// does not send the next run over this batch again.
		f.batch = nil
		f.isRetry = false
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
	back := make([]ItemRef, 0, len(items)+len(f.pending))
	for _, it := range items {
		if it.Retry {
			f.retries = append(f.retries, it)
			continue
		}
		back = append(back, it)
	}
	sortByPosition(back)
	f.pending = append(back, f.pending...)
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
	*f = FolderPass{batchSize: f.batchSize, skip: f.skip,
		cursor: Cursor{Pass: f.cursor.Pass, Position: 1, PageFirst: 1}}
}

// advanceCursor moves the cursor to the first item not yet handled.
func (f *FolderPass) advanceCursor() {
	pos := 0
	switch {
	case len(f.pending) > 0:
		pos = f.pending[0].Position
	case len(f.pages) > 0:
		pos = f.pages[len(f.pages)-1].last + 1
	default:
		return
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
