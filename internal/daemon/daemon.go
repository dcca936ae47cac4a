// Package daemon runs the backup jobs on their schedules. What to start is
// decided by domain.PlanTick, a pure function of the jobs' definitions,
// their states and the time; this package keeps the states, asks at every
// tick of an injected clock, and runs the cycles it is told to start
// through a CycleRunner, so the whole of it runs in tests without a server,
// a storage or the wall clock.
//
// It implements the application's JobControl port, and serves the typed
// local API (see api.go) that the command line's Client talks to.
package daemon

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// Log is what the daemon reads of the event log: the configuration, the
// runs' reports (for the jobs' history) and the changes it records itself.
type Log interface {
	projections.Reader
	projections.Appender
}

// CycleRunner runs one backup cycle of a job as run and says how it ended:
// finished or finished with warnings. An error means the cycle did not
// finish (its connection or storage could not be opened, or the run
// stopped short); the job is then "not finished".
type CycleRunner func(ctx context.Context, job string, def domain.Job, run string) (domain.RunState, error)

// Config is what a daemon is made of.
type Config struct {
	Log Log
	// Reports is the live report of a run (nil when it has none).
	Reports func(run string) *projections.Report
	// Histories, if set, gives the jobs' histories at start instead of a
	// scan of the log (the metrics fold holds them already).
	Histories func() map[string]projections.JobHistory
	// RunCycle runs the cycles the scheduler starts.
	RunCycle CycleRunner
	// NewRun names a cycle's run.
	NewRun func(now time.Time) string
	// EveryTick, if set, is called at each tick before the plan, with the
	// configuration the tick read (the daily summary mail).
	EveryTick func(ctx context.Context, now time.Time, c *projections.Config)
	Now       func() time.Time
	Logger    zerolog.Logger
}

// jobState is what the daemon knows of one job.
type jobState struct {
	active      bool // started (by hand or on schedule) and not stopped
	stopped     bool // job stop: a cycle ending now leaves the job inactive
	running     bool
	cancel      context.CancelFunc
	lastEnd     time.Time // the last finished cycle (the idle time counts from it)
	historyEnd  time.Time // when the last cycle in the log ended, finished or not
	windowStart time.Time // the window the last cycle ran in
	cycles      int
	state       domain.JobState
	lastRun     string
	currentRun  string    // the run of the cycle running now
	next        time.Time // when the scheduler looks at the job again
	stored      int       // over all cycles
	scanned     int
	speed       float64 // items/s of the last cycle
}

// Daemon keeps the jobs' states and starts their cycles.
type Daemon struct {
	cfg Config

	mu   sync.Mutex
	jobs map[string]*jobState
	wg   sync.WaitGroup
}

// New makes a daemon; Restore then brings back what the log says.
func New(cfg Config) *Daemon {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Reports == nil {
		cfg.Reports = func(string) *projections.Report { return nil }
	}
	return &Daemon{cfg: cfg, jobs: map[string]*jobState{}}
}

var _ app.JobControl = (*Daemon)(nil)

// Restore makes active again the jobs that were active when the daemon
// stopped or was killed (their cycles resume from the log), and brings back
// each job's history: cycles, items, the last cycle and its outcome.
func (d *Daemon) Restore() error {
	c, err := projections.LoadConfig(d.cfg.Log)
	if err != nil {
		return err
	}
	var history map[string]projections.JobHistory
	if d.cfg.Histories != nil {
		history = d.cfg.Histories()
	} else if history, err = projections.JobHistories(d.cfg.Log); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ch := range c.History {
		switch ch.Type {
		case domain.JobStarted:
			d.job(ch.Name).active = true
		case domain.JobStopped, domain.JobDeleted:
			d.job(ch.Name).active = false
		}
	}
	for name, h := range history {
		if _, defined := c.Jobs[name]; !defined {
			continue
		}
		j := d.job(name)
		j.cycles, j.stored, j.scanned, j.speed = h.Cycles, h.ItemsStored, h.ItemsScanned, h.LastSpeed
		j.lastRun, j.historyEnd = h.LastRun, h.LastEnded
		if h.LastState != domain.StateNotFinished {
			// The idle time counts from a finished cycle; a cycle the
			// restart interrupted continues at once.
			j.lastEnd = h.LastEnded
		}
		if j.active {
			j.state = domain.JobStateAfter(h.LastState)
		}
	}
	return nil
}

func (d *Daemon) job(name string) *jobState {
	j := d.jobs[name]
	if j == nil {
		j = &jobState{state: domain.JobInactive}
		d.jobs[name] = j
	}
	return j
}

// Run ticks every interval until ctx ends, then cancels the running cycles
// (they stop at a checkpoint) and waits up to grace for them. It says
// whether they all stopped in time.
func (d *Daemon) Run(ctx context.Context, interval, grace time.Duration) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d.Tick(ctx, d.cfg.Now())
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for _, j := range d.jobs {
				if j.cancel != nil {
					j.cancel()
				}
			}
			d.mu.Unlock()
			done := make(chan struct{})
			go func() { d.wg.Wait(); close(done) }()
			select {
			case <-done:
				return true
			case <-time.After(grace):
				return false
			}
		case <-t.C:
		}
	}
}

// Wait waits for the cycles running now.
func (d *Daemon) Wait() { d.wg.Wait() }

// Tick decides, at now, which cycles start, and starts them.
func (d *Daemon) Tick(ctx context.Context, now time.Time) {
	c, err := projections.LoadConfig(d.cfg.Log)
	if err != nil {
		d.cfg.Logger.Error().Err(err).Msg("read the configuration")
		return
	}
	if d.cfg.EveryTick != nil {
		d.cfg.EveryTick(ctx, now, c)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	jobs := map[string]domain.Job{}
	for _, name := range projections.Names(c.Jobs) {
		var s jobspec.Spec
		if json.Unmarshal(c.Jobs[name], &s) != nil {
			continue
		}
		j, err := s.Job()
		if err != nil {
			continue
		}
		jobs[name] = j
	}
	status := make(map[string]domain.JobStatus, len(jobs))
	for name, job := range jobs {
		st := d.job(name)
		status[name] = domain.JobStatus{Job: job, Active: st.active, Running: st.running, LastEnd: st.lastEnd, WindowStart: st.windowStart}
	}
	plan := domain.PlanTick(status, now)
	for name, next := range plan.Next {
		d.job(name).next = next
	}
	for _, name := range plan.Done {
		d.job(name).active = false
	}
	for _, start := range plan.Start {
		d.startCycle(ctx, start.Name, jobs[start.Name], start.Until, start.Window, now)
	}
}

// startCycle runs one cycle of a job in the background. Callers hold d.mu.
func (d *Daemon) startCycle(ctx context.Context, name string, job domain.Job, until, window, now time.Time) {
	st := d.job(name)
	cctx, cancel := context.WithCancel(ctx)
	if !until.IsZero() {
		cctx, cancel = context.WithDeadline(ctx, until)
	}
	run := d.cfg.NewRun(now)
	st.running, st.cancel, st.windowStart, st.currentRun = true, cancel, window, run
	st.state = domain.JobActive
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer cancel()
		state, err := d.cfg.RunCycle(cctx, name, job, run)
		rep := d.cfg.Reports(run)
		if rep == nil {
			rep, _ = projections.BuildReport(d.cfg.Log, run)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		st.running, st.cancel, st.currentRun, st.lastEnd = false, nil, "", d.cfg.Now()
		st.cycles++
		if rep != nil {
			st.lastRun, st.stored, st.scanned, st.speed = run, st.stored+rep.ItemsStored, st.scanned+rep.ItemsScanned, rep.ItemsPerS
		}
		switch {
		case st.stopped:
			st.state = domain.JobInactive // stopped by hand: the interrupted cycle resumes at the next start
		case err != nil:
			st.state = domain.JobStateAfter(domain.StateNotFinished)
			d.cfg.Logger.Warn().Err(err).Str("job", name).Msg("cycle did not finish")
		default:
			st.state = domain.JobStateAfter(state)
		}
		if job.Continuity.OneTime && job.Schedule.Pattern == domain.PatternNone && err == nil && state != domain.StateNotFinished && !st.stopped {
			// A one-time job started by hand has done its cycle: record it
			// now, so that a restart does not run it again.
			st.active = false
			at := d.cfg.Now().UTC()
			ch := domain.ConfigChange{Type: domain.JobStopped, ID: domain.DeriveID("config", domain.JobStopped, name, at.Format(time.RFC3339Nano)),
				Time: at, Actor: "mailvault daemon (one-time job finished)", Name: name}
			if err := projections.RecordChange(context.WithoutCancel(ctx), d.cfg.Log, ch); err != nil {
				d.cfg.Logger.Error().Err(err).Str("job", name).Msg("record the end of a one-time job")
			}
		}
	}()
}

// Start makes a job active: it runs at the next tick its schedule allows.
func (d *Daemon) Start(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.job(name)
	j.active, j.stopped = true, false
	if !j.running {
		j.state = domain.JobActive // shown at once, not at the next tick
	}
}

// Stop makes a job inactive; its running cycle stops at a checkpoint and
// resumes at the next start.
func (d *Daemon) Stop(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.job(name)
	j.active, j.stopped = false, true
	if j.cancel != nil {
		j.cancel()
	}
	j.state = domain.JobInactive
}

// Busy says a job runs a cycle or is active.
func (d *Daemon) Busy(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.jobs[name]
	return j != nil && (j.running || j.active)
}

// Running counts the jobs with a cycle running now.
func (d *Daemon) Running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, j := range d.jobs {
		if j.running {
			n++
		}
	}
	return n
}

// Status is a job as the daemon sees it now: the counters of its ended
// cycles plus, while a cycle runs, that cycle's live report.
func (d *Daemon) Status(name string) app.JobStatus {
	v := app.JobStatus{State: domain.JobInactive}
	d.mu.Lock()
	st := d.jobs[name]
	var current string
	if st != nil {
		v.State, v.Stored, v.Scanned, v.ItemsPerS, v.Run, v.Cycles = st.state, st.stored, st.scanned, st.speed, st.lastRun, st.cycles
		if v.State == "" {
			v.State = domain.JobInactive
			if st.active {
				v.State = domain.JobActive
			}
		}
		if st.running {
			v.State, v.Running, current = domain.JobRunning, true, st.currentRun
		}
		v.LastCycle, v.NextCycle = st.lastEnd, st.next
		if v.LastCycle.Before(st.historyEnd) {
			v.LastCycle = st.historyEnd
		}
	}
	d.mu.Unlock()
	if current != "" {
		if r := d.cfg.Reports(current); r != nil {
			v.Stored += r.ItemsStored
			v.Scanned += r.ItemsScanned
			v.ItemsPerS, v.MBPerS = r.ItemsPerS, r.MBPerS
			v.CurrentMailbox, v.CurrentFolder = r.CurrentMailbox, r.CurrentFolder
		}
		v.Run = current
	} else if v.Run != "" {
		if r := d.cfg.Reports(v.Run); r != nil {
			v.MBPerS = r.MBPerS
		}
	}
	return v
}
