package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// dashboardBackend gives the web pages the daemon's state: the jobs from
// the application (the same list job list prints), the rest from the
// projections of the log. Its actions are the application's commands, so
// the same rules hold as on the command line (editing a running job is
// refused).
type dashboardBackend struct {
	svc     *app.Service
	lg      *eventlog.Log
	metrics *projections.Metrics
}

var _ dashboard.Backend = dashboardBackend{}

func (b dashboardBackend) Jobs() []dashboard.Job {
	jobs, err := b.svc.ListJobs(context.Background())
	if err != nil {
		return nil
	}
	histories := b.metrics.JobHistories()
	var out []dashboard.Job
	for _, j := range jobs {
		v, h := j.Live, histories[j.Name]
		out = append(out, dashboard.Job{Name: j.Name, Type: j.Continuity, Storage: j.Storage, Connection: j.Connection, Restored: j.ItemsRestored,
			State: string(v.State), Running: v.Running, Run: v.Run, Stored: v.Stored, Scanned: v.Scanned, ItemsPerS: v.ItemsPerS, MBPerS: v.MBPerS,
			CurrentMailbox: v.CurrentMailbox, CurrentFolder: v.CurrentFolder, Settings: jobSettings(j.Spec), LastSuccess: h.LastSuccess, Protected: h.ItemsStored})
	}
	return out
}

func jobSettings(s jobspec.Spec) []dashboard.Setting {
	mailboxes := strings.Join(s.Mailboxes, ", ")
	if s.AllMailboxes {
		mailboxes = "all mailboxes"
	}
	if len(s.ExcludeMailboxes) > 0 {
		mailboxes += " except " + strings.Join(s.ExcludeMailboxes, ", ")
	}
	if s.Archives {
		mailboxes += ", with their archives"
	}
	out := []dashboard.Setting{{Name: "Connection", Value: s.Connection}, {Name: "Storage", Value: s.Storage}, {Name: "Mailboxes", Value: mailboxes}}
	if len(s.PublicFolders) > 0 {
		out = append(out, dashboard.Setting{Name: "Public folders", Value: strings.Join(s.PublicFolders, ", ")})
	}
	idle := s.Idle
	if idle == "" && s.Continuity != "one-time" {
		idle = "00:01:00"
	}
	out = append(out, dashboard.Setting{Name: "Continuity", Value: strings.TrimSpace(s.Continuity + " " + idle)})
	sched := "none (started by hand)"
	if s.Schedule != nil {
		sched = s.Schedule.Pattern
		if s.Schedule.From != "" {
			sched += " " + s.Schedule.From + "–" + s.Schedule.To
		}
		if s.Schedule.TimeZone != "" {
			sched += " (" + s.Schedule.TimeZone + ")"
		}
	}
	out = append(out, dashboard.Setting{Name: "Schedule", Value: sched})
	if s.TimeFilter != nil && s.TimeFilter.Mode != "" && s.TimeFilter.Mode != "all" {
		out = append(out, dashboard.Setting{Name: "Time filter", Value: fmt.Sprintf("%s %d %s", s.TimeFilter.Mode, s.TimeFilter.N, s.TimeFilter.Unit)})
	}
	if len(s.ExcludeFolders) > 0 {
		out = append(out, dashboard.Setting{Name: "Excluded folders", Value: strings.Join(s.ExcludeFolders, ", ")})
	}
	return out
}

// News sorts the runs into good news (finished jobs, completed folders,
// quarantined items released) and bad news (failed or warning runs,
// quarantined items, folders skipped for throttling, storage problems),
// newest first.
func (b dashboardBackend) News() (good, bad []dashboard.News, err error) {
	runs, err := projections.ListRuns(b.lg)
	if err != nil {
		return nil, nil, err
	}
	for i := len(runs) - 1; i >= 0 && len(good)+len(bad) < 60; i-- {
		r := b.metrics.Report(runs[i].RunID)
		if r == nil || r.State == domain.StateRunning {
			continue
		}
		when := r.Ended
		if when.IsZero() {
			when = r.Started
		}
		// News name the job a run was a cycle of; a run started by hand
		// has none.
		what := "Run " + r.RunID
		if r.Job != "" {
			what = "Job " + r.Job + ": run " + r.RunID
		}
		switch r.State {
		case domain.StateFinished:
			good = append(good, dashboard.News{Time: when, RunID: r.RunID, Text: what + " finished",
				Detail: fmt.Sprintf("%d items stored, %d folders completed", r.ItemsStored, r.FoldersCompleted)})
		default:
			detail := fmt.Sprintf("%d items stored", r.ItemsStored)
			if r.ItemsQuarantined > 0 {
				detail += fmt.Sprintf(", %d items quarantined", r.ItemsQuarantined)
			}
			if r.FoldersSkipped > 0 {
				detail += fmt.Sprintf(", %d folders skipped (throttling or errors)", r.FoldersSkipped)
			}
			for _, e := range r.Errors {
				if strings.Contains(e, "storage") {
					detail += "; storage problem: " + e
				}
			}
			bad = append(bad, dashboard.News{Time: when, RunID: r.RunID, Text: what + " " + string(r.State), Detail: detail})
		}
		if r.ItemsReleased > 0 {
			good = append(good, dashboard.News{Time: when, RunID: r.RunID, Text: fmt.Sprintf("%s: %d quarantined items recovered", what, r.ItemsReleased)})
		}
	}
	sort.SliceStable(good, func(i, j int) bool { return good[i].Time.After(good[j].Time) })
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].Time.After(bad[j].Time) })
	return good, bad, nil
}

func (b dashboardBackend) Runs() ([]projections.RunSummary, error) {
	return projections.ListRuns(b.lg)
}

func (b dashboardBackend) Report(run string) (*projections.Report, error) {
	if r := b.metrics.Report(run); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("no run %s", run)
}

func (b dashboardBackend) RunCSV(run string, w io.Writer) error {
	if b.metrics.Report(run) == nil {
		return fmt.Errorf("no run %s", run)
	}
	return b.svc.RunCSV(context.Background(), run, w)
}

// Do runs a job action through the application.
func (b dashboardBackend) Do(action, job, idle string) error {
	ctx := context.Background()
	switch action {
	case "start":
		return b.svc.StartJob(ctx, job)
	case "stop":
		return b.svc.StopJob(ctx, job)
	case "edit":
		if idle == "" {
			return fmt.Errorf("give the new idle time (hh:mm:ss)")
		}
		spec, err := b.svc.JobSpec(ctx, job)
		if err != nil {
			return err
		}
		spec.Idle = idle
		return b.svc.EditJob(ctx, spec)
	}
	return fmt.Errorf("unknown action %q", action)
}

func (b dashboardBackend) Changed() <-chan struct{} { return b.lg.Changed() }
