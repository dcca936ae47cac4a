package projections

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// RunSummary is one row of 'mailvault runs'.
type RunSummary struct {
	RunID            string  `json:"run_id"`
	Job              string  `json:"job"` // "" for a run started by hand
	State            string  `json:"state"`
	Started          string  `json:"started"`
	DurationS        float64 `json:"duration_s"`
	ItemsScanned     int     `json:"items_scanned"`
	ItemsStored      int     `json:"items_stored"`
	ItemsQuarantined int     `json:"items_quarantined"`
	Requests         int     `json:"requests"`
	FoldersSkipped   int     `json:"folders_skipped"`
}

// ListRuns summarises every run, oldest first. A run whose process was killed
// has no run_finished event and is listed as not finished, with the counts
// its events show.
func ListRuns(log Reader) ([]RunSummary, error) {
	var out []RunSummary
	err := eachRunReport(log, func(id string, r *Report) {
		out = append(out, RunSummary{RunID: id, Job: r.Job, State: string(r.State), Started: r.Started.UTC().Format("2006-01-02 15:04:05"),
			DurationS: r.DurationS, ItemsScanned: r.ItemsScanned, ItemsStored: r.ItemsStored,
			ItemsQuarantined: r.ItemsQuarantined, Requests: r.Requests, FoldersSkipped: r.FoldersSkipped})
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []RunSummary{} // JSON: [], not null
	}
	return out, nil
}

// eachRunReport rebuilds every run's report, oldest first.
func eachRunReport(log Reader, fn func(id string, r *Report)) error {
	ids, err := Resume{Log: log}.RunIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		r, err := BuildReport(log, id)
		if err != nil {
			return err
		}
		fn(id, r)
	}
	return nil
}

// WriteRunsText writes the runs as a table.
func WriteRunsText(w io.Writer, runs []RunSummary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tJOB\tSTARTED (UTC)\tSTATE\tSCANNED\tSTORED\tQUARANTINED\tREQUESTS\tSKIPPED\tDURATION")
	for _, r := range runs {
		job := r.Job
		if job == "" {
			job = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1fs\n", r.RunID, job, r.Started, r.State, r.ItemsScanned, r.ItemsStored, r.ItemsQuarantined, r.Requests, r.FoldersSkipped, r.DurationS)
	}
	return tw.Flush()
}

// WriteRunsJSON writes the runs as a JSON array.
func WriteRunsJSON(w io.Writer, runs []RunSummary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(runs)
}

// WriteQuarantineText lists quarantined items for a person.
func WriteQuarantineText(w io.Writer, items []domain.QuarantineRecord) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAILBOX\tFOLDER\tPOSITION\tITEM ID\tCODE\tHOW\tATTEMPTS\tLAST TRY (UTC)")
	for _, q := range items {
		how := "failed"
		if q.Inferred {
			how = "inferred"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", q.Mailbox, q.Folder, q.Position, q.ItemID, q.Code, how, q.Attempts, q.LastAttempt.UTC().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

// WriteQuarantineJSON writes the quarantine as a JSON array.
func WriteQuarantineJSON(w io.Writer, items []domain.QuarantineRecord) error {
	if items == nil {
		items = []domain.QuarantineRecord{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(items)
}

// JobHistory is what a job's cycles did, rebuilt from the log: the daemon
// starts from it, so a restart keeps each job's counters and last cycle.
type JobHistory struct {
	Cycles       int
	ItemsStored  int
	ItemsScanned int
	LastRun      string
	LastState    domain.RunState
	LastEnded    time.Time
	LastSpeed    float64 // items/s of the last cycle
	// LastSuccess is when the newest cycle that stored everything it was
	// asked to (finished, with or without warnings) ended; zero for none.
	LastSuccess time.Time
	// States counts the cycles by how they ended.
	States map[domain.RunState]int
}

// JobHistories rebuilds every job's history from its runs (runs started by
// hand belong to no job and are left out).
func JobHistories(log Reader) (map[string]JobHistory, error) {
	out := map[string]JobHistory{}
	err := eachRunReport(log, func(id string, r *Report) { addToHistory(out, id, r) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// addToHistory folds one run's report into its job's history: the one
// fold behind JobHistories and Metrics.JobHistories.
func addToHistory(out map[string]JobHistory, id string, r *Report) {
	if r.Job == "" {
		return
	}
	h := out[r.Job]
	h.Cycles++
	h.ItemsStored += r.ItemsStored
	h.ItemsScanned += r.ItemsScanned
	ended := r.Ended
	if ended.IsZero() { // killed: its last event is its end
		ended = r.Started.Add(time.Duration(r.DurationS * float64(time.Second)))
	}
	if !ended.Before(h.LastEnded) {
		h.LastRun, h.LastState, h.LastEnded, h.LastSpeed = id, r.State, ended, r.ItemsPerS
	}
	if (r.State == domain.StateFinished || r.State == domain.StateWarnings) && ended.After(h.LastSuccess) {
		h.LastSuccess = ended
	}
	if h.States == nil {
		h.States = map[domain.RunState]int{}
	}
	h.States[r.State]++
	out[r.Job] = h
}
