package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// StateNoDaemon is a job's state when no daemon holds the data directory:
// its counters are then unknown.
const StateNoDaemon = "daemon not running"

// JobStatus is a job as the daemon sees it now: the counters of its ended
// cycles plus, while a cycle runs, that cycle's live report.
type JobStatus struct {
	State          domain.JobState
	Run            string
	Running        bool
	Cycles         int
	Stored         int
	Scanned        int
	ItemsPerS      float64
	MBPerS         float64
	CurrentMailbox string
	CurrentFolder  string
	LastCycle      time.Time
	NextCycle      time.Time
}

// Job is one job of the job list: its definition's summary and its state.
type Job struct {
	Name       string `json:"name"`
	Continuity string `json:"continuity"`
	Schedule   string `json:"schedule"`
	Connection string `json:"connection"`
	Storage    string `json:"storage"`
	// State is the daemon's view (inactive, waiting, running, finished
	// ...), or StateNoDaemon; the counters below are then zero.
	State         string     `json:"state"`
	Cycles        int        `json:"cycles"`
	ItemsStored   int        `json:"items_stored"`
	ItemsScanned  int        `json:"items_scanned"`
	ItemsRestored int        `json:"items_restored"`
	ItemsPerS     float64    `json:"items_per_s"`
	LastCycle     *time.Time `json:"last_cycle"`
	NextCycle     *time.Time `json:"next_cycle"`
	// Spec is the definition (for pages that show its settings).
	Spec jobspec.Spec `json:"-"`
	// Live is the daemon's full view, zero without a daemon.
	Live JobStatus `json:"-"`
	// Busy: the job is started (running a cycle or waiting for the
	// next), so editing or deleting it is refused until it stops.
	Busy bool `json:"-"`
}

// CreateJob records a new job after checking its definition and what it
// refers to.
func (s *Service) CreateJob(ctx context.Context, spec jobspec.Spec) error {
	return s.saveJob(ctx, spec, false)
}

// EditJob replaces a job's definition; a busy job is refused (ErrRunning).
func (s *Service) EditJob(ctx context.Context, spec jobspec.Spec) error {
	return s.saveJob(ctx, spec, true)
}

func (s *Service) saveJob(ctx context.Context, spec jobspec.Spec, editing bool) error {
	if _, err := spec.Job(); err != nil {
		return invalid("job", spec.Name, fmt.Sprintf("job %q: %v", spec.Name, err))
	}
	st, err := s.load()
	if err != nil {
		return err
	}
	refs := domain.JobRefs{Connection: spec.Connection, Storage: spec.Storage}
	typ := domain.JobCreated
	if editing {
		typ = domain.JobEdited
		err = st.agg.EditJob(spec.Name, refs, s.busy(spec.Name))
	} else {
		err = st.agg.CreateJob(spec.Name, refs)
	}
	if err != nil {
		return err
	}
	return s.record(ctx, typ, spec.Name, spec)
}

// DeleteJob deletes a job that is not busy; its backups stay in the storage.
func (s *Service) DeleteJob(ctx context.Context, name string) error {
	st, err := s.load()
	if err != nil {
		return err
	}
	if err := st.agg.DeleteJob(name, s.busy(name)); err != nil {
		return err
	}
	return s.record(ctx, domain.JobDeleted, name, nil)
}

// StartJob makes a job active in the daemon: it runs now or at its next
// activity period, and again after a daemon restart.
func (s *Service) StartJob(ctx context.Context, name string) error {
	return s.startStop(ctx, name, true)
}

// StopJob makes a job inactive; a running cycle stops at a checkpoint and
// resumes at the next start.
func (s *Service) StopJob(ctx context.Context, name string) error {
	return s.startStop(ctx, name, false)
}

func (s *Service) startStop(ctx context.Context, name string, start bool) error {
	st, err := s.load()
	if err != nil {
		return err
	}
	if err := st.agg.HasJob(name); err != nil {
		return err
	}
	if s.Jobs == nil {
		return ErrNoDaemon
	}
	typ := domain.JobStarted
	if start {
		s.Jobs.Start(name)
	} else {
		typ = domain.JobStopped
		s.Jobs.Stop(name)
	}
	return s.record(ctx, typ, name, nil)
}

func (s *Service) busy(name string) bool { return s.Jobs != nil && s.Jobs.Busy(name) }

// JobSpec is a job's definition.
func (s *Service) JobSpec(_ context.Context, name string) (jobspec.Spec, error) {
	st, err := s.load()
	if err != nil {
		return jobspec.Spec{}, err
	}
	if err := st.agg.HasJob(name); err != nil {
		return jobspec.Spec{}, err
	}
	var spec jobspec.Spec
	if err := json.Unmarshal(st.raw.Jobs[name], &spec); err != nil {
		return spec, fmt.Errorf("job %s: its recorded definition does not read: %w", name, err)
	}
	return spec, nil
}

// ListJobs lists the jobs by name with their state; restores are counted from
// the log once for the whole list.
func (s *Service) ListJobs(_ context.Context) ([]Job, error) {
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	restored, err := projections.RestoredByJob(s.Log)
	if err != nil {
		return nil, fmt.Errorf("count the restores: %w", err)
	}
	var out []Job
	for _, n := range projections.Names(st.raw.Jobs) {
		var spec jobspec.Spec
		if err := json.Unmarshal(st.raw.Jobs[n], &spec); err != nil {
			return nil, fmt.Errorf("job %s: its recorded definition does not read: %w", n, err)
		}
		j := Job{Name: n, Continuity: spec.Continuity, Schedule: "no activity period (started by hand)", Connection: spec.Connection,
			Storage: spec.Storage, ItemsRestored: restored[n], Spec: spec, State: StateNoDaemon}
		if spec.Schedule != nil {
			j.Schedule = spec.Schedule.Pattern
		}
		if j.Continuity == "" {
			j.Continuity = "continuous"
		}
		if s.Jobs != nil {
			v := s.Jobs.Status(n)
			j.Live, j.Busy = v, s.busy(n)
			j.State, j.Cycles, j.ItemsStored, j.ItemsScanned, j.ItemsPerS = string(v.State), v.Cycles, v.Stored, v.Scanned, v.ItemsPerS
			if !v.LastCycle.IsZero() {
				j.LastCycle = &v.LastCycle
			}
			if !v.NextCycle.IsZero() {
				j.NextCycle = &v.NextCycle
			}
		}
		out = append(out, j)
	}
	return out, nil
}
