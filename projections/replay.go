package projections

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// Replay renders what happened in a run, from the log alone: per folder a
// header "MAILBOX / FOLDER", then one numbered line per fetch request in the
// wording of the reference product ("1. Fetch 400 items (#1 - #400) – failed"),
// and unnumbered, indented lines for everything else that is not a fetch.
type Replay struct {
	// notes are about the run as a whole (its compaction), shown first.
	notes     []string
	compacted bool
	order     []string
	folders   map[string]*replayFolder
	pending   map[string]*domain.Event // request id -> batch_requested
}

type replayFolder struct {
	header string
	lines  []string
	n      int
}

// NewReplay starts an empty replay.
func NewReplay() *Replay {
	return &Replay{folders: map[string]*replayFolder{}, pending: map[string]*domain.Event{}}
}

func (r *Replay) folder(ev *domain.Event) *replayFolder {
	key := ev.Mailbox + "\x00" + ev.FolderID
	f, ok := r.folders[key]
	if !ok {
		f = &replayFolder{header: fmt.Sprintf("%s / %s", Printable(ev.Mailbox), Printable(ev.Folder))}
		r.folders[key] = f
		r.order = append(r.order, key)
	}
	return f
}

// FetchLine is the reference wording of one fetch request, without number
// and outcome.
func FetchLine(b domain.Range) string {
	if b.Count == 1 {
		return fmt.Sprintf("Fetch item #%d", b.First)
	}
	return fmt.Sprintf("Fetch %d items (#%d - #%d)", b.Count, b.First, b.Last)
}

func retryAfter(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).String()
}

// Apply adds one event.
func (r *Replay) Apply(ev *domain.Event) {
	if ev.Type == domain.RunCompacted {
		r.notes = append(r.notes, r.Describe(ev)...)
		return
	}
	if lines := r.Describe(ev); len(lines) > 0 {
		f := r.folder(ev)
		f.lines = append(f.lines, lines...)
	}
}

// Describe returns the replay's lines for one event: a numbered line for a
// fetch request's outcome, indented notes for the rest, none for events a
// reader need not see. Fetch requests are numbered per folder, so events
// must come in log order. The CSV log uses the same lines.
func (r *Replay) Describe(ev *domain.Event) []string {
	if ev.Type == domain.RunCompacted {
		r.compacted = true
		return describeCompaction(ev.Compaction)
	}
	if ev.FolderID == "" || r.compacted && domain.IsRunDetail(ev) {
		return nil
	}
	f := r.folder(ev)
	var out []string
	note := func(format string, a ...any) { out = append(out, "   "+fmt.Sprintf(format, a...)) }
	switch ev.Type {
	case domain.BatchRequested:
		r.pending[ev.ID] = ev
	case domain.BatchFetched, domain.BatchFailed, domain.Throttled:
		if ev.Code == domain.CodePaceHold {
			// Not a request: the pace held it back before the server saw it.
			what := "list page " + fmt.Sprint(ev.Page)
			if ev.Batch != nil {
				what = fmt.Sprintf("items #%d–#%d", ev.Batch.First, ev.Batch.Last)
			}
			note("Held by the mailbox's pace, not sent: %s, again after %s", what, retryAfter(ev.RetryAfterMS))
			delete(r.pending, ev.Cause)
			break
		}
		if ev.Request == domain.RequestList {
			if ev.Type == domain.Throttled {
				note("List page %d – throttled (%s), retry after %s", ev.Page, Printable(ev.Code), retryAfter(ev.RetryAfterMS))
			} else {
				note("List page %d – error (%s %s)", ev.Page, Printable(ev.Code), Printable(ev.Message))
			}
			break
		}
		f.n++
		b := domain.Range{}
		if ev.Batch != nil {
			b = *ev.Batch
		}
		line := fmt.Sprintf("%d. %s – %s", f.n, FetchLine(b), requestOutcome(ev))
		switch {
		case ev.Type == domain.BatchFailed && ev.Class != domain.ClassDirty:
			line += fmt.Sprintf(" (%s %s)", ev.Class, Printable(ev.Code))
		}
		out = append(out, line)
		for _, it := range ev.ItemFailures {
			switch it.Class {
			case domain.ClassThrottled:
				note("Item #%d throttled inside the batch (%s), fetched again after %s", it.Item.Position, it.Code, retryAfter(it.RetryAfterMS))
			case domain.ClassTransient:
				note("Item #%d failed inside the batch (%s), fetched again", it.Item.Position, it.Code)
			}
		}
		if ev.Type == domain.Throttled {
			note("Throttled by the server (%s), retry after %s", Printable(ev.Code), retryAfter(ev.RetryAfterMS))
		}
		delete(r.pending, ev.Cause)
	case domain.ItemsListed:
		if len(ev.Removed) > 0 {
			note("Listed %d items, %d deleted at the source (page %d)", len(ev.Items), len(ev.Removed), ev.Page)
		} else {
			note("Listed %d items (page %d)", len(ev.Items), ev.Page)
		}
	case domain.ItemGone:
		note("Item #%d was deleted at the source while being fetched (%s)", ev.Position, Printable(ev.Code))
	case domain.ListingRestarted:
		note("The server discarded the listing state (%s): listing the folder again from the start", Printable(ev.Code))
	case domain.ItemInferredDirty:
		note("Item #%d is dirty by inference, not fetched", ev.Position)
	case domain.ItemQuarantined:
		switch ev.Outcome {
		case domain.OutcomeLeftOut:
			note("Item #%d left out: quarantined (%s)", ev.Position, Printable(ev.Code))
		default:
			note("Item #%d quarantined (%s)", ev.Position, Printable(ev.Code))
		}
	case domain.ItemReleased:
		note("Item #%d released from quarantine: readable again", ev.Position)
	case domain.FolderParked:
		until := ""
		if ev.Until != nil {
			until = " until " + ev.Until.UTC().Format("15:04:05.000")
		}
		note("Folder parked%s (%s); working elsewhere meanwhile", until, ev.Reason)
	case domain.FolderResumed:
		note("Folder resumed")
	case domain.FolderSkipped:
		if ev.Reason == domain.ReasonThrottled {
			pos := 0
			if ev.Cursor != nil {
				pos = ev.Cursor.Position
			}
			note("The mailbox is throttled on folder '%s'. Skipping this folder – the backup will continue on the next run (from #%d).", Printable(ev.Folder), pos)
		} else {
			note("Folder skipped: %s (%s %s)", ev.Reason, Printable(ev.Code), Printable(ev.Message))
		}
	case domain.FolderCompleted:
		note("Folder completed")
	}
	return out
}

// describeCompaction says what a compaction removed from the run and that
// its counts are kept.
func describeCompaction(c *domain.Compaction) []string {
	if c == nil {
		return []string{"The run's per-request detail was compacted"}
	}
	types := make([]string, 0, len(c.ByType))
	for t := range c.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, c.ByType[t])
	}
	return []string{
		fmt.Sprintf("Compacted %s (per-request detail kept %s): %d events from %s to %s removed (%s)",
			c.At.UTC().Format("2006-01-02 15:04"), c.Retention, c.Events,
			c.First.UTC().Format("2006-01-02 15:04:05"), c.Last.UTC().Format("2006-01-02 15:04:05"), strings.Join(parts, ", ")),
		fmt.Sprintf("   Kept: the run's counts (%d items stored, %d unchanged, %d requests), its quarantine, skipped folders and errors; the requests below are no longer listed",
			c.Counts.ItemsStored, c.Counts.ItemsUnchanged, c.Counts.Requests),
	}
}

// WriteText writes the replay: notes on the run first, then the folders in
// the order they first appeared.
func (r *Replay) WriteText(w io.Writer) error {
	if len(r.notes) > 0 {
		if _, err := fmt.Fprintln(w, "Run"); err != nil {
			return err
		}
		for _, l := range r.notes {
			if _, err := fmt.Fprintln(w, "   "+l); err != nil {
				return err
			}
		}
		if len(r.order) > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
	}
	for i, key := range r.order {
		f := r.folders[key]
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintln(w, f.header); err != nil {
			return err
		}
		for _, l := range f.lines {
			if _, err := fmt.Fprintln(w, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteJSONL writes each event as one JSON line, as stored.
func WriteJSONL(w io.Writer, ev *domain.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
