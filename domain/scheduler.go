package domain

import (
	"sort"
	"time"
)

// JobStatus is what the scheduler knows of one job at a tick.
type JobStatus struct {
	Job Job
	// Active: started (by hand or on schedule) and not stopped. A job
	// without activity periods runs only while active.
	Active  bool
	Running bool
	// LastEnd is when its last finished cycle ended (zero: none), and
	// WindowStart the start of the activity window its last cycle ran in.
	LastEnd     time.Time
	WindowStart time.Time
}

// CycleStart is a cycle the scheduler starts: it must reach a checkpoint
// by Until (zero: no limit) and runs in the activity window that started
// at Window (zero: none).
type CycleStart struct {
	Name   string
	Until  time.Time
	Window time.Time
}

// Plan is what the daemon does at a tick.
type Plan struct {
	Start []CycleStart
	// Done are jobs that have nothing more to do (a finished one-time
	// job, a range of activity that is over): they become inactive.
	Done []string
	// Next is when each job considered is looked at again (zero: only
	// when something changes).
	Next map[string]time.Time
}

// PlanTick is the daemon's scheduler: given every job's status and the
// time, which cycles start now. It is a pure function of its inputs, so
// every rule has a table test on an injected clock. Jobs are considered in
// name order; a job that could write the same mailbox into the same
// storage as a running one (or one started at this tick) waits.
func PlanTick(jobs map[string]JobStatus, now time.Time) Plan {
	p := Plan{Next: map[string]time.Time{}}
	names := make([]string, 0, len(jobs))
	for n := range jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	running := map[string]bool{}
	for _, n := range names {
		if jobs[n].Running {
			running[n] = true
		}
	}
	for _, name := range names {
		st := jobs[name]
		if st.Running {
			continue
		}
		scheduled := st.Job.Schedule.Pattern != PatternNone
		if !scheduled && !st.Active {
			continue // no activity period: only job start runs it
		}
		w, _ := st.Job.Schedule.Current(now)
		ranInWindow := scheduled && !w.Start.IsZero() && st.WindowStart.Equal(w.Start)
		dec := Decide(st.Job.Schedule, st.Job.Continuity, now, st.LastEnd, ranInWindow)
		if dec.Done {
			p.Done = append(p.Done, name)
			continue
		}
		p.Next[name] = dec.Next
		if !dec.Run {
			continue
		}
		busy := false
		for other := range running {
			if other != name && jobs[other].Job.Touches(st.Job) {
				busy = true
			}
		}
		if busy {
			continue
		}
		running[name] = true
		p.Start = append(p.Start, CycleStart{Name: name, Until: dec.Until, Window: w.Start})
	}
	return p
}

// JobState is a job's state as job list and the dashboard show it: a
// phase, or after a cycle, that cycle's outcome (a RunState).
type JobState string

const (
	JobInactive JobState = "inactive"
	JobActive   JobState = "active"
	JobRunning  JobState = "active (running)"
)

// JobStateAfter is a job's state once a cycle ended in s.
func JobStateAfter(s RunState) JobState { return JobState(s) }
