package domain

// SinglesThreshold is the size at or below which a failed batch is fetched
// item by item instead of being halved again.
const SinglesThreshold = 4

// StepKind is what the isolation of a batch asks the engine to do next.
type StepKind int

const (
	// StepDone: every item of the batch is stored or quarantined.
	StepDone StepKind = iota
	// StepFetch: fetch Items in one request and report the result.
	StepFetch
	// StepSplit: Items is being halved into Halves; nothing to fetch.
	StepSplit
	// StepInferDirty: Items[0] is dirty by inference and is not fetched.
	StepInferDirty
)

// Step is one instruction of a batch isolation.
type Step struct {
	Kind  StepKind
	Items []ItemRef
	// Halves is set for StepSplit: first half, second half.
	Halves [2][]ItemRef
	// KnownDirty is set for StepSplit when the split set was not fetched
	// whole: its sibling succeeded, so it must hold the dirty item.
	KnownDirty bool
}

type frameKind int

const (
	frameWhole frameKind = iota
	frameIsolate
	frameFirstHalf
	frameSecondHalf
	frameSingles
)

type frame struct {
	kind   frameKind
	items  []ItemRef // whole batch, set to isolate, or singles
	second []ItemRef // second half, for half frames
	known  bool      // set to isolate was never fetched whole
	next   int       // singles: index of the next item
	allOK  bool      // singles: every single so far succeeded
}

// Batch drives one top-level batch through dirty-item isolation:
//
//   - a failed batch of more than SinglesThreshold items is split in two, the
//     first half taking the extra item, and the first half is fetched first;
//   - if the first half succeeds, the second half must hold the dirty item and
//     is split at once without being fetched whole; if it fails, the second
//     half is fetched too; failed halves are then isolated the same way, first
//     half first (depth first);
//   - a failed batch of SinglesThreshold or fewer items is fetched item by
//     item; when all but the last single succeeded, the last is dirty by
//     inference and is not fetched.
//
// Batch is a pure state machine: Next says what to do, Record reports the
// outcome of the fetch Next asked for. Throttling and transient failures are
// not outcomes: the engine repeats the same fetch later.
type Batch struct {
	stack []frame
}

// NewBatch starts the isolation of items, which are fetched whole first.
func NewBatch(items []ItemRef) *Batch {
	return &Batch{stack: []frame{{kind: frameWhole, items: items}}}
}

// Halve splits items in two, the first half taking the extra item (25 -> 13+12).
func Halve(items []ItemRef) (first, second []ItemRef) {
	mid := (len(items) + 1) / 2
	return items[:mid:mid], items[mid:]
}

func (b *Batch) top() *frame { return &b.stack[len(b.stack)-1] }
func (b *Batch) pop()        { b.stack = b.stack[:len(b.stack)-1] }
func (b *Batch) push(f frame) {
	b.stack = append(b.stack, f)
}

// Next returns the next step. A StepFetch is returned again until Record is
// called; StepSplit and StepInferDirty take effect as they are returned.
func (b *Batch) Next() Step {
	for len(b.stack) > 0 {
		f := b.top()
		switch f.kind {
		case frameWhole:
			return Step{Kind: StepFetch, Items: f.items}
		case frameIsolate:
			if len(f.items) <= SinglesThreshold {
				*f = frame{kind: frameSingles, items: f.items, allOK: true}
				continue
			}
			first, second := Halve(f.items)
			step := Step{Kind: StepSplit, Items: f.items, Halves: [2][]ItemRef{first, second}, KnownDirty: f.known}
			*f = frame{kind: frameFirstHalf, items: first, second: second}
			return step
		case frameFirstHalf:
			return Step{Kind: StepFetch, Items: f.items}
		case frameSecondHalf:
			return Step{Kind: StepFetch, Items: f.second}
		case frameSingles:
			if f.next >= len(f.items) {
				b.pop()
				continue
			}
			if f.next == len(f.items)-1 && f.allOK {
				item := f.items[f.next : f.next+1]
				b.pop()
				return Step{Kind: StepInferDirty, Items: item}
			}
			return Step{Kind: StepFetch, Items: f.items[f.next : f.next+1]}
		}
	}
	return Step{Kind: StepDone}
}

// Record reports the outcome of the last StepFetch: ok when the server
// delivered every item, false when it failed the request as dirty. It returns
// the items that are now known dirty and must be quarantined (a failed single).
func (b *Batch) Record(ok bool) (quarantine []ItemRef) {
	if len(b.stack) == 0 {
		return nil
	}
	f := b.top()
	switch f.kind {
	case frameWhole:
		items := f.items
		b.pop()
		if ok {
			return nil
		}
		if len(items) == 1 {
			// A failed single-item batch needs no search: it is the dirty one.
			return items
		}
		b.push(frame{kind: frameIsolate, items: items})
	case frameFirstHalf:
		if ok {
			*f = frame{kind: frameIsolate, items: f.second, known: true}
		} else {
			f.kind = frameSecondHalf
		}
	case frameSecondHalf:
		first, second := f.items, f.second
		b.pop()
		if !ok {
			b.push(frame{kind: frameIsolate, items: second})
		}
		b.push(frame{kind: frameIsolate, items: first})
	case frameSingles:
		item := f.items[f.next : f.next+1]
		f.next++
		if f.next >= len(f.items) {
			b.pop()
		}
		if !ok {
			f.allOK = false
			return item
		}
	}
	return nil
}

// Done reports whether every item of the batch is stored or quarantined.
func (b *Batch) Done() bool { return len(b.stack) == 0 }
