package projections

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
)

// RestoredByJob counts the items restores created, replaced or copied from
// each job's storage (the job's "items restored").
func RestoredByJob(l Scanner) (map[string]int, error) {
	jobOf := map[string]string{}
	seen := map[string]bool{}
	out := map[string]int{}
	err := l.Scan(eventlog.Topic(domain.TopicRestore), 0, func(rec eventlog.Record) error {
		ev, err := Decode(rec)
		if err != nil {
			return err
		}
		switch {
		case ev.Type == domain.RestoreStarted && ev.Config != nil && ev.Config.Job != "":
			jobOf[ev.Run] = ev.Config.Job
		case ev.Type == domain.ItemRestored && (ev.Outcome == "created" || ev.Outcome == "replaced" || ev.Outcome == "copied"):
			if job := jobOf[ev.Run]; job != "" && !seen[ev.ID] {
				seen[ev.ID] = true
				out[job]++
			}
		}
		return nil
	})
	return out, err
}

// ListRestores reports every restore run in the log, oldest first.
func ListRestores(l Scanner) ([]*RestoreReport, error) {
	var runs []string
	seen := map[string]bool{}
	err := l.Scan(eventlog.Topic(domain.TopicRestore), 0, func(rec eventlog.Record) error {
		if rec.Metadata[eventlog.MetaType] == string(domain.RestoreStarted) && !seen[rec.Metadata[eventlog.MetaRun]] {
			seen[rec.Metadata[eventlog.MetaRun]] = true
			runs = append(runs, rec.Metadata[eventlog.MetaRun])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*RestoreReport, 0, len(runs))
	for _, run := range runs {
		r, _, err := LoadRestore(l, run)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// RestoreFailure is an item a restore could not restore, and why.
type RestoreFailure struct {
	Mailbox   string `json:"mailbox"`
	Folder    string `json:"folder"`
	ItemID    string `json:"item_id"`
	VersionID string `json:"version_id"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// RestoreReport is the fold of one restore run's events.
type RestoreReport struct {
	RunID    string          `json:"run_id"`
	State    domain.RunState `json:"state"`
	Started  time.Time       `json:"started"`
	Ended    time.Time       `json:"ended,omitzero"`
	Created  int             `json:"created"`
	Replaced int             `json:"replaced"`
	Skipped  int             `json:"skipped"`
	Copied   int             `json:"copied"`
	Failed   int             `json:"failed"`
	Bytes    int64           `json:"bytes"`
	// NotPreserved counts, per property, the restored items that lost it.
	NotPreserved map[string]int   `json:"not_preserved"`
	Failures     []RestoreFailure `json:"failures"`

	// Done and Started are what a resumed run needs: versions finished,
	// and versions whose creation began.
	Done    map[string]bool `json:"-"`
	Begun   map[string]bool `json:"-"`
	failed  map[string]int
	present bool
}

// NewRestoreReport starts an empty report.
func NewRestoreReport(run string) *RestoreReport {
	return &RestoreReport{RunID: run, State: domain.StateRunning, NotPreserved: map[string]int{}, Failures: []RestoreFailure{},
		Done: map[string]bool{}, Begun: map[string]bool{}, failed: map[string]int{}}
}

// Apply folds one event.
func (r *RestoreReport) Apply(ev *domain.Event) {
	switch ev.Type {
	case domain.RestoreStarted:
		r.present = true
		if r.Started.IsZero() {
			r.Started = ev.Time
		}
		r.State, r.Ended = domain.StateRunning, time.Time{}
	case domain.ItemRestored:
		if ev.Outcome == "started" {
			r.Begun[ev.ChangeKey] = true
			return
		}
		if r.Done[ev.ChangeKey] {
			return
		}
		r.Done[ev.ChangeKey] = true
		if i, ok := r.failed[ev.ChangeKey]; ok {
			// Failed in an earlier attempt, restored now.
			r.Failures = append(r.Failures[:i], r.Failures[i+1:]...)
			delete(r.failed, ev.ChangeKey)
			for k, j := range r.failed {
				if j > i {
					r.failed[k] = j - 1
				}
			}
			r.Failed--
		}
		switch ev.Outcome {
		case "created":
			r.Created++
		case "replaced":
			r.Replaced++
		case "skipped":
			r.Skipped++
		case "copied":
			r.Copied++
		}
		r.Bytes += ev.Size
		if ev.Reason != "" {
			for _, p := range strings.Split(ev.Reason, "; ") {
				r.NotPreserved[p]++
			}
		}
	case domain.RestoreFailed:
		f := RestoreFailure{Mailbox: ev.Mailbox, Folder: ev.Folder, ItemID: ev.ItemID, VersionID: ev.ChangeKey, Code: ev.Code, Message: ev.Message}
		if i, ok := r.failed[ev.ChangeKey]; ok {
			r.Failures[i] = f
			return
		}
		r.failed[ev.ChangeKey] = len(r.Failures)
		r.Failures = append(r.Failures, f)
		r.Failed++
	case domain.RestoreFinished:
		r.State, r.Ended = domain.RunState(ev.State), ev.Time
	}
}

// LoadRestore folds the run's events from the log; found is false for a
// run the log does not know.
func LoadRestore(l Scanner, run string) (r *RestoreReport, found bool, err error) {
	r = NewRestoreReport(run)
	err = l.Scan(eventlog.Run(run), 0, func(rec eventlog.Record) error {
		ev, err := Decode(rec)
		if err != nil {
			return err
		}
		r.Apply(&ev)
		return nil
	})
	return r, r.present, err
}

// WriteText writes the report for people.
func (r *RestoreReport) WriteText(w io.Writer) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("Restore %s: %s", r.RunID, r.State)
	p("  created   %d", r.Created)
	p("  replaced  %d", r.Replaced)
	p("  skipped   %d (already in the target)", r.Skipped)
	p("  copied    %d", r.Copied)
	p("  failed    %d", r.Failed)
	p("  restored  %s", HumanBytes(r.Bytes))
	if len(r.NotPreserved) > 0 {
		p("  not preserved (the target API cannot keep them):")
		var keys []string
		for k := range r.NotPreserved {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("    %d items: %s", r.NotPreserved[k], k)
		}
	}
	for _, f := range r.Failures {
		p("  failed: %s / %s item %s (version %s): %s %s", f.Mailbox, f.Folder, f.ItemID, f.VersionID, f.Code, f.Message)
	}
	return nil
}

// WriteJSON writes the report as JSON.
func (r *RestoreReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
