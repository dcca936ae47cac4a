package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/export"
	"github.com/mailvault/mailvault/adapters/itemview"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/adapters/vault"
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
	svc      *app.Service
	lg       *eventlog.Log
	metrics  *projections.Metrics
	restores *consoleRestores
}

var _ dashboard.Restorer = dashboardBackend{}

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
	// Restores are news too: what came back, and what did not.
	if _, restores, err := b.svc.Runs(context.Background()); err == nil {
		for i := len(restores) - 1; i >= 0 && i >= len(restores)-20; i-- {
			r := restores[i]
			when := r.Ended
			if when.IsZero() {
				when = r.Started
			}
			detail := fmt.Sprintf("%d created, %d replaced, %d skipped (already there), %d copies, %d failed", r.Created, r.Replaced, r.Skipped, r.Copied, r.Failed)
			switch r.State {
			case domain.StateRunning:
			case domain.StateFinished:
				good = append(good, dashboard.News{Time: when, Text: "Restore " + r.RunID + " finished", Detail: detail})
			default:
				bad = append(bad, dashboard.News{Time: when, Text: "Restore " + r.RunID + " " + string(r.State), Detail: detail})
			}
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

var _ dashboard.Browser = dashboardBackend{}

// Storages names the storages added by name: the console browses those,
// never a directory named in a URL.
func (b dashboardBackend) Storages(ctx context.Context) ([]string, error) {
	list, err := b.svc.ListStorages(ctx)
	names := make([]string, 0, len(list))
	for _, s := range list {
		names = append(names, s.Name)
	}
	return names, err
}

// storageRef is a named storage the console may open.
func (b dashboardBackend) storageRef(ctx context.Context, name string) (app.StorageRef, error) {
	names, err := b.Storages(ctx)
	if err != nil {
		return app.StorageRef{}, err
	}
	if !slices.Contains(names, name) {
		return app.StorageRef{}, fmt.Errorf("no storage named %q (see mailvault storage list): %w", name, dashboard.ErrNoItem)
	}
	return app.StorageRef{Storage: name}, nil
}

func selectionOf(q dashboard.Query) app.Selection {
	return app.Selection{Mailbox: q.Mailbox, Folder: q.Folder, Subject: q.Subject, From: q.From, Recipient: q.Recipient, After: q.After, Before: q.Before}
}

func (b dashboardBackend) Groups(ctx context.Context, storage string, q dashboard.Query) ([]dashboard.Group, error) {
	ref, err := b.storageRef(ctx, storage)
	if err != nil {
		return nil, err
	}
	groups, err := b.svc.Groups(ctx, ref, app.Selection{Mailbox: q.Mailbox})
	out := make([]dashboard.Group, len(groups))
	for i, g := range groups {
		out[i] = dashboard.Group{Name: g.Name, Items: g.Items, Bytes: g.Bytes}
	}
	return out, err
}

// errEnough stops a walk the page has what it shows from.
var errEnough = errors.New("enough")

func (b dashboardBackend) Find(ctx context.Context, storage string, q dashboard.Query, fn func(dashboard.ItemRow) bool) error {
	ref, err := b.storageRef(ctx, storage)
	if err != nil {
		return err
	}
	err = b.svc.Browse(ctx, ref, selectionOf(q), func(v vault.Version) error {
		if !fn(itemRow(v)) {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

func itemRow(v vault.Version) dashboard.ItemRow {
	return dashboard.ItemRow{ID: v.ID, Mailbox: v.Mailbox, Folder: v.FolderPath, Kind: v.Kind, Subject: v.Subject, From: v.From, When: app.When(v), Size: v.Size,
		Stored: v.StoredAt}
}

func (b dashboardBackend) read(ctx context.Context, storage, id string) (app.StoredItem, error) {
	ref, err := b.storageRef(ctx, storage)
	if err != nil {
		return app.StoredItem{}, err
	}
	it, err := b.svc.Item(ctx, ref, id)
	if errors.Is(err, app.ErrNotFound) {
		err = fmt.Errorf("%w: %w", dashboard.ErrNoItem, err)
	}
	return it, err
}

// Item opens a stored version as a person reads it; what cannot be shown
// (an export stream that does not convert) is said, and the download and
// restore still have it.
func (b dashboardBackend) Item(ctx context.Context, storage, id string) (dashboard.ItemPage, error) {
	it, err := b.read(ctx, storage, id)
	if err != nil {
		return dashboard.ItemPage{}, err
	}
	v := it.Version
	page := dashboard.ItemPage{Row: itemRow(v)}
	for i := len(it.Versions) - 1; i >= 0; i-- { // newest first
		page.Versions = append(page.Versions, itemRow(it.Versions[i]))
	}
	view, err := itemview.Open(v.Kind, v.Format, it.Content)
	if err != nil {
		page.Problem = "This item cannot be shown here: " + err.Error()
	}
	page.Text, page.HTML, page.RemoteBlocked = view.Text, view.HTML, view.RemoteBlocked
	for _, h := range view.Headers {
		page.Headers = append(page.Headers, dashboard.Field{Name: h.Name, Value: h.Value})
	}
	for _, a := range view.Attachments {
		page.Attachments = append(page.Attachments, dashboard.Attachment{Name: a.Name, Type: a.Type, Size: a.Size})
	}
	return page, nil
}

func (b dashboardBackend) Download(ctx context.Context, storage, id string) (string, string, []byte, error) {
	it, err := b.read(ctx, storage, id)
	if err != nil {
		return "", "", nil, err
	}
	v := it.Version
	return export.File(export.Item{ID: v.ID, Subject: v.Subject, Mailbox: v.Mailbox, Folder: v.FolderPath, FolderID: v.FolderID,
		Kind: v.Kind, Format: v.Format, Content: it.Content})
}
