package app

import (
	"sync"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// RunningRuns are the backup runs a process executes now. The log alone
// cannot tell a run still going from one a crash cut short (neither has
// ended); the process running it can, so its queries say "running" for
// these and "not finished" for the rest.
type RunningRuns struct {
	mu   sync.Mutex
	runs map[string]bool
}

func (r *RunningRuns) add(run string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]bool{}
	}
	r.runs[run] = true
}

func (r *RunningRuns) remove(run string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.runs, run)
}

func (r *RunningRuns) has(run string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[run]
}

// mark says "running" in the summaries of the runs going on now.
func (r *RunningRuns) mark(runs []projections.RunSummary) {
	for i := range runs {
		if runs[i].State == string(domain.StateNotFinished) && r.has(runs[i].RunID) {
			runs[i].State = string(domain.StateRunning)
		}
	}
}
