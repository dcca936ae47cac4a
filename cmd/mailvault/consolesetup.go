package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
)

// The console's wizards go through the application's commands, as the
// command line's connection, storage, job and alerts commands do.
var _ dashboard.Setup = dashboardBackend{}

func (b dashboardBackend) SetupState(ctx context.Context) (dashboard.SetupState, error) {
	var st dashboard.SetupState
	var err error
	if st.Connections, err = b.Connections(ctx); err != nil {
		return st, err
	}
	if st.Storages, err = b.Storages(ctx); err != nil {
		return st, err
	}
	jobs, err := b.svc.ListJobs(ctx)
	if err != nil {
		return st, err
	}
	for _, j := range jobs {
		st.Jobs = append(st.Jobs, dashboard.JobRef{Name: j.Name, Running: j.Busy})
	}
	_, st.AlertsOn, err = b.svc.AlertSettings(ctx)
	return st, err
}

func (b dashboardBackend) AddConnection(ctx context.Context, c dashboard.ConnectionForm) error {
	spec, err := connectionSpecOf(c)
	if err != nil {
		return err
	}
	if c.Secret == "" {
		return errors.New("the client secret (or the account's password) is required")
	}
	return b.svc.AddConnection(ctx, c.Name, spec, credential.New(c.Secret))
}

func (b dashboardBackend) TestConnection(ctx context.Context, name, mailbox string) ([]dashboard.Check, error) {
	checks, err := b.svc.TestConnection(ctx, name, mailbox, false)
	out := make([]dashboard.Check, len(checks))
	for i, c := range checks {
		out[i] = dashboard.Check{What: c.What, Permission: c.Permission, Optional: c.Optional}
		if c.Err != nil {
			out[i].Problem = c.Err.Error()
		}
	}
	return out, err
}

func (b dashboardBackend) AddStorage(ctx context.Context, s dashboard.StorageForm) (string, error) {
	if !filepath.IsAbs(s.Path) {
		return "", fmt.Errorf("the directory %q: give its absolute path on the daemon's machine", s.Path)
	}
	in := app.AddStorage{Name: s.Name, Path: s.Path, Options: app.StorageOptions{NoCompression: s.NoCompression, Retention: domain.Retention{KeepVersions: s.KeepVersions}}}
	if s.KeepDeleted != "" && s.KeepDeleted != "forever" {
		p, err := domain.ParsePeriod(s.KeepDeleted)
		if err != nil {
			return "", err
		}
		in.Options.Retention.KeepDeletedFor = &p
	}
	if !s.Unencrypted {
		in.Password = []byte(s.Password)
	}
	return b.svc.AddStorage(ctx, in)
}

// JobForm reads a job's definition into the wizard's fields.
func (b dashboardBackend) JobForm(ctx context.Context, name string) (dashboard.JobForm, error) {
	s, err := b.svc.JobSpec(ctx, name)
	if err != nil {
		return dashboard.JobForm{}, err
	}
	j := dashboard.JobForm{Name: s.Name, Continuity: s.Continuity, Idle: s.Idle, Connection: s.Connection, Storage: s.Storage,
		AllMailboxes: s.AllMailboxes, Mailboxes: strings.Join(s.Mailboxes, "\n"), Exclude: strings.Join(s.ExcludeMailboxes, "\n"),
		Archives: s.Archives, ExcludeFolders: strings.Join(s.ExcludeFolders, "\n"), AgeMode: domain.AgeAll, AgeUnit: "days", FutureSubfolders: true}
	var pfs []string
	for _, p := range s.PublicFolders {
		pfs = append(pfs, strings.TrimSuffix(p, "/**"))
		j.FutureSubfolders = j.FutureSubfolders && strings.HasSuffix(p, "/**")
	}
	j.PublicFolders = strings.Join(pfs, "\n")
	if sc := s.Schedule; sc != nil {
		j.Pattern, j.From, j.To, j.TimeZone = sc.Pattern, sc.From, sc.To, sc.TimeZone
		for _, w := range sc.Weekdays {
			// The job may name days short (mon) or long (monday).
			for _, full := range dashboard.Weekdays {
				if len(w) >= 3 && strings.HasPrefix(full, strings.ToLower(w[:3])) {
					j.Weekdays = append(j.Weekdays, full)
				}
			}
		}
	}
	if tf := s.TimeFilter; tf != nil {
		j.AgeMode, j.AgeN, j.AgeUnit, j.KeepContacts = tf.Mode, tf.N, tf.Unit, tf.KeepContacts
	}
	return j, nil
}

// jobSpec is the definition the wizard's fields make; a pattern the
// wizard does not offer (monthly, custom periods) stays as it was.
func (b dashboardBackend) jobSpec(ctx context.Context, j dashboard.JobForm) (jobspec.Spec, error) {
	s := jobspec.Spec{Name: j.Name, Connection: j.Connection, Storage: j.Storage, Continuity: j.Continuity, Idle: j.Idle,
		AllMailboxes: j.AllMailboxes, ExcludeMailboxes: dashboardLines(j.Exclude), Archives: j.Archives, ExcludeFolders: dashboardLines(j.ExcludeFolders)}
	var old *jobspec.Schedule // what the wizard does not show of an edited job's schedule stays
	if j.Editing {
		spec, err := b.svc.JobSpec(ctx, j.Name)
		if err != nil {
			return s, err
		}
		old = spec.Schedule
		if old != nil && (old.Pattern == domain.PatternMonthly || old.Pattern == domain.PatternCustom) && j.Pattern == "" {
			s.Schedule = old
		}
	}
	if s.Continuity == "one-time" {
		s.Idle = ""
	}
	if !j.AllMailboxes {
		s.Mailboxes = dashboardLines(j.Mailboxes)
	}
	for _, p := range dashboardLines(j.PublicFolders) {
		p = strings.TrimSuffix(p, "/**")
		if j.FutureSubfolders {
			p += "/**"
		}
		s.PublicFolders = append(s.PublicFolders, p)
	}
	if j.Pattern != "" {
		zone := j.TimeZone
		if zone == "" {
			zone = "UTC"
		}
		s.Schedule = &jobspec.Schedule{Pattern: j.Pattern, From: j.From, To: j.To, TimeZone: zone, StartDate: time.Now().UTC().Format(time.DateOnly)}
		if old != nil && old.StartDate != "" {
			s.Schedule.StartDate, s.Schedule.EndDate = old.StartDate, old.EndDate
		}
		if j.Pattern == domain.PatternWeekly {
			s.Schedule.Weekdays = j.Weekdays
		}
	}
	if j.AgeMode != "" && j.AgeMode != domain.AgeAll || j.KeepContacts {
		s.TimeFilter = &jobspec.Age{Mode: j.AgeMode, KeepContacts: j.KeepContacts}
		if j.AgeMode != domain.AgeAll {
			s.TimeFilter.N, s.TimeFilter.Unit = j.AgeN, j.AgeUnit
		}
	}
	if _, err := s.Job(); err != nil {
		return s, fmt.Errorf("job %q: %w", s.Name, err)
	}
	return s, nil
}

func dashboardLines(s string) []string {
	var out []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// JobSummary is the job card's lines for the job the wizard made: what
// the jobs page will show.
func (b dashboardBackend) JobSummary(ctx context.Context, j dashboard.JobForm) ([]dashboard.Setting, error) {
	s, err := b.jobSpec(ctx, j)
	if err != nil {
		return nil, err
	}
	return append([]dashboard.Setting{{Name: "Name", Value: s.Name}}, jobSettings(s)...), nil
}

func (b dashboardBackend) SaveJob(ctx context.Context, j dashboard.JobForm, editing bool) error {
	s, err := b.jobSpec(ctx, j)
	if err != nil {
		return err
	}
	if editing {
		err = b.svc.EditJob(ctx, s)
	} else {
		err = b.svc.CreateJob(ctx, s)
	}
	if errors.Is(err, app.ErrRunning) {
		return fmt.Errorf("%w: %w", dashboard.ErrJobRunning, err)
	}
	return err
}

func (b dashboardBackend) Alerts(ctx context.Context) (dashboard.AlertsForm, error) {
	a, on, err := b.svc.AlertSettings(ctx)
	if err != nil || !on {
		return dashboard.AlertsForm{Port: 587, TLS: "mandatory", On: []string{domain.AlertBadNews}}, err
	}
	return dashboard.AlertsForm{Host: a.Host, Port: a.Port, From: a.From, To: strings.Join(a.To, "\n"), Username: a.Username, TLS: a.TLS,
		CACert: a.CACert, On: a.On, Daily: a.Daily, On0: true}, nil
}

// SetAlerts saves the alert settings; an empty password keeps the one
// stored.
func (b dashboardBackend) SetAlerts(ctx context.Context, f dashboard.AlertsForm) error {
	a := domain.AlertSettings{Host: f.Host, Port: f.Port, From: f.From, To: dashboardLines(f.To), Username: f.Username, TLS: f.TLS, CACert: f.CACert,
		On: f.On, Daily: f.Daily}
	return b.svc.SetAlerts(ctx, a, credential.New(f.Password))
}

// connectionSpecOf is the connection the wizard's fields describe.
func connectionSpecOf(c dashboard.ConnectionForm) (app.ConnectionSpec, error) {
	spec := app.ConnectionSpec{Type: c.Type, CACert: c.CACert}
	switch c.Type {
	case "graph":
		spec.TenantID, spec.ClientID, spec.GraphURL, spec.TokenURL = c.TenantID, c.ClientID, c.GraphURL, c.TokenURL
		if spec.GraphURL == "" {
			spec.GraphURL = graph.DefaultGraphURL
		}
	case "ews":
		spec.EWSURL, spec.Username, spec.Auth, spec.Impersonate = c.EWSURL, c.Username, c.Auth, c.Impersonate
	}
	if c.CACert != "" && !filepath.IsAbs(c.CACert) {
		return spec, fmt.Errorf("the CA certificate %q: give its absolute path on the daemon's machine", c.CACert)
	}
	return spec, nil
}

// connection is the recorded connection named name.
func (b dashboardBackend) connection(ctx context.Context, name string) (app.Connection, error) {
	conns, err := b.svc.Connections(ctx)
	if err != nil {
		return app.Connection{}, err
	}
	for _, c := range conns {
		if c.Name == name {
			return c, nil
		}
	}
	return app.Connection{}, fmt.Errorf("no connection named %q", name)
}

func (b dashboardBackend) ConnectionForm(ctx context.Context, name string) (dashboard.ConnectionForm, error) {
	c, err := b.connection(ctx, name)
	return dashboard.ConnectionForm{Name: c.Name, Type: c.Type, TenantID: c.TenantID, ClientID: c.ClientID, GraphURL: c.GraphURL,
		TokenURL: c.TokenURL, EWSURL: c.EWSURL, Username: c.Username, Auth: c.Auth, Impersonate: c.Impersonate, CACert: c.CACert}, err
}

// EditConnection keeps what the wizard does not show (content mode, page
// and batch sizes, concurrency) as it was.
func (b dashboardBackend) EditConnection(ctx context.Context, c dashboard.ConnectionForm) error {
	spec, err := connectionSpecOf(c)
	if err != nil {
		return err
	}
	o, err := b.connection(ctx, c.Name)
	if err != nil {
		return err
	}
	spec.BetaURL, spec.Content, spec.PageSize, spec.Batch, spec.MaxConcurrency = o.BetaURL, o.Content, o.PageSize, o.Batch, o.MaxConcurrency
	return b.svc.EditConnection(ctx, c.Name, spec, credential.New(c.Secret))
}

func (b dashboardBackend) StorageForm(ctx context.Context, name string) (dashboard.StorageForm, error) {
	ref, err := b.storageRef(ctx, name)
	if err != nil {
		return dashboard.StorageForm{}, err
	}
	r, err := b.svc.StorageRetention(ctx, ref, app.RetentionChange{})
	st := dashboard.StorageForm{Name: name, KeepVersions: r.KeepVersions}
	if r.KeepDeletedFor != nil {
		st.KeepDeleted = r.KeepDeletedFor.String()
	}
	return st, err
}

func (b dashboardBackend) SetRetention(ctx context.Context, s dashboard.StorageForm) error {
	ref, err := b.storageRef(ctx, s.Name)
	if err != nil {
		return err
	}
	deleted := s.KeepDeleted
	if deleted == "" {
		deleted = "forever"
	}
	_, err = b.svc.StorageRetention(ctx, ref, app.RetentionChange{KeepVersions: &s.KeepVersions, KeepDeleted: &deleted})
	return err
}
