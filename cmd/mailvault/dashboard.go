package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// dashboardBackend gives the web pages the daemon's state, all of it from
// the configuration, the jobs' states and the projections of the log.
type dashboardBackend struct {
	d   *daemon
	ctx context.Context
}

var _ dashboard.Backend = dashboardBackend{}

func (b dashboardBackend) Jobs() []dashboard.Job {
	d := b.d
	c, err := projections.LoadConfig(d.lg)
	if err != nil {
		return nil
	}
	restored, _ := projections.RestoredByJob(d.lg)
	var out []dashboard.Job
	for _, name := range projections.Names(c.Jobs) {
		var s jobspec.Spec
		json.Unmarshal(c.Jobs[name], &s)
		j := dashboard.Job{Name: name, Type: s.Continuity, Storage: s.Storage, Connection: s.Connection, State: "inactive", Restored: restored[name]}
		if j.Type == "" {
			j.Type = "continuous"
		}
		v := d.jobView(name)
		j.State, j.Running, j.Run = string(v.state), v.running, v.run
		j.Stored, j.Scanned, j.ItemsPerS, j.MBPerS = v.stored, v.scanned, v.itemsPerS, v.mbPerS
		j.CurrentMailbox, j.CurrentFolder = v.currentMailbox, v.currentFolder
		j.Settings = jobSettings(s)
		out = append(out, j)
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
	runs, err := projections.ListRuns(b.d.lg)
	if err != nil {
		return nil, nil, err
	}
	for i := len(runs) - 1; i >= 0 && len(good)+len(bad) < 60; i-- {
		r := b.d.metrics.Report(runs[i].RunID)
		if r == nil || r.State == domain.StateRunning {
			continue
		}
		when := r.Ended
		if when.IsZero() {
			when = r.Started
		}
		switch r.State {
		case domain.StateFinished:
			good = append(good, dashboard.News{Time: when, RunID: r.RunID, Text: fmt.Sprintf("Run %s finished", r.RunID),
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
			bad = append(bad, dashboard.News{Time: when, RunID: r.RunID, Text: fmt.Sprintf("Run %s %s", r.RunID, r.State), Detail: detail})
		}
		if r.ItemsReleased > 0 {
			good = append(good, dashboard.News{Time: when, RunID: r.RunID, Text: fmt.Sprintf("%d quarantined items recovered", r.ItemsReleased)})
		}
	}
	sort.SliceStable(good, func(i, j int) bool { return good[i].Time.After(good[j].Time) })
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].Time.After(bad[j].Time) })
	return good, bad, nil
}

func (b dashboardBackend) Runs() ([]projections.RunSummary, error) {
	return projections.ListRuns(b.d.lg)
}

func (b dashboardBackend) Report(run string) (*projections.Report, error) {
	if r := b.d.metrics.Report(run); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("no run %s", run)
}

func (b dashboardBackend) RunCSV(run string, w io.Writer) error {
	if b.d.metrics.Report(run) == nil {
		return fmt.Errorf("no run %s", run)
	}
	return projections.WriteRunCSV(w, b.d.lg, run)
}

// Do runs a job action the way the command line does, through the same
// code (so the same checks apply: editing a running job is refused).
func (b dashboardBackend) Do(action, job, idle string) error {
	var args []string
	switch action {
	case "start", "stop":
		args = []string{"job", action, job}
	case "edit":
		if idle == "" {
			return fmt.Errorf("give the new idle time (hh:mm:ss)")
		}
		args = []string{"job", "edit", job, "--idle", idle}
	default:
		return fmt.Errorf("unknown action %q", action)
	}
	out := runCLI(b.ctx, append(args, "--data", b.d.g.data), nil)
	if out.Code != 0 {
		return fmt.Errorf("%s", strings.TrimSpace(strings.TrimPrefix(string(out.Stderr), "mailvault: ")))
	}
	return nil
}

func (b dashboardBackend) Changed() <-chan struct{} { return b.d.lg.Changed() }
