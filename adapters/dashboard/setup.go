package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Setup is what the console's wizards create and edit: connections,
// storages, jobs and alerts, through the same application commands as the
// command line and the local API (the same checks, the same refusals).
type Setup interface {
	SetupState(ctx context.Context) (SetupState, error)
	AddConnection(ctx context.Context, c ConnectionForm) error
	// ConnectionForm reads a connection into the wizard's fields (never
	// its secret); EditConnection saves them (an empty secret keeps the
	// stored one).
	ConnectionForm(ctx context.Context, name string) (ConnectionForm, error)
	EditConnection(ctx context.Context, c ConnectionForm) error
	// StorageForm reads a storage's retention into the wizard's fields;
	// SetRetention saves a new one.
	StorageForm(ctx context.Context, name string) (StorageForm, error)
	SetRetention(ctx context.Context, s StorageForm) error
	// TestConnection checks a connection's credentials and permissions,
	// with a mailbox to try them on ("" for the first the server lists).
	TestConnection(ctx context.Context, name, mailbox string) ([]Check, error)
	// AddStorage creates a storage; a password-protected one's recovery
	// key is returned, to be shown once.
	AddStorage(ctx context.Context, s StorageForm) (recoveryKey string, err error)
	// JobForm reads a job into the wizard's fields.
	JobForm(ctx context.Context, name string) (JobForm, error)
	// SaveJob creates a job, or replaces one (editing: a running job is
	// refused, ErrJobRunning).
	SaveJob(ctx context.Context, j JobForm, editing bool) error
	// JobSummary says in lines what a job will do, or why it cannot be.
	JobSummary(ctx context.Context, j JobForm) ([]Setting, error)
	Alerts(ctx context.Context) (AlertsForm, error)
	SetAlerts(ctx context.Context, a AlertsForm) error
}

// ErrJobRunning is what SaveJob answers for a job that is running.
var ErrJobRunning = errors.New("the job is running")

// SetupState is what there is to set up.
type SetupState struct {
	Connections, Storages []string
	Jobs                  []JobRef
	AlertsOn              bool
}

// JobRef is a job in the setup list.
type JobRef struct {
	Name    string
	Running bool
}

// Check is one line of a connection test: what was tried, the permission
// it needs, and what went wrong ("" when it worked).
type Check struct {
	What, Permission, Problem string
	Optional                  bool
}

// ConnectionForm is the connection wizard's fields.
type ConnectionForm struct {
	Name, Type                             string // graph | ews
	TenantID, ClientID, GraphURL, TokenURL string // graph
	EWSURL, Username, Auth                 string // ews
	Impersonate                            bool
	CACert                                 string // a CA certificate file on the daemon's machine
	Secret                                 string // the client secret, or the account's password
	TestMailbox                            string // a mailbox to test the permissions on
	Problem                                string
	Editing                                bool
}

// StorageForm is the storage wizard's fields.
type StorageForm struct {
	Name, Path, Password, Confirm string
	Unencrypted, NoCompression    bool
	KeepVersions                  int
	KeepDeleted                   string // 90d, 6m, 7y; "" forever
	Editing                       bool   // only the retention changes
}

// JobForm is the job wizard's fields, in the reference's order: name,
// continuity and idle time, activity periods, connection, mailboxes,
// public folders, storage, time filter, folder filter.
type JobForm struct {
	Name               string
	Continuity, Idle   string // continuous | one-time; hh:mm:ss
	Pattern            string // "" (always), daily, weekly, monthly
	From, To, TimeZone string
	Weekdays           []string
	Connection         string
	AllMailboxes       bool
	Mailboxes, Exclude string // one address a line
	Archives           bool
	PublicFolders      string // one path a line
	FutureSubfolders   bool   // each public folder with its subfolders, present and future
	Storage            string
	AgeMode            string // all | older | not_older
	AgeN               int
	AgeUnit            string // days | weeks | months | years
	KeepContacts       bool
	ExcludeFolders     string // one path a line
	// Editing an existing job; Running: it runs now (saving is refused
	// until it stops); Now: start the new job at once.
	Editing, Running, Now bool
}

// AlertsForm is the alerts page's fields.
type AlertsForm struct {
	Host        string
	Port        int
	From, To    string // To: addresses, one a line
	Username    string
	Password    string // never shown; empty keeps the one stored
	TLS, CACert string
	On          []string
	Daily       string // hh:mm: a daily summary; "" none
	On0         bool   // alerts were set before
}

// AlertEvents are what alerts can be sent on: runs with bad news (not
// finished, warnings) and runs that finished.
var AlertEvents = []string{"bad-news", "good-news"}

// Weekdays are the weekly pattern's days.
var Weekdays = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

func (s *Server) setupIndex(w http.ResponseWriter, r *http.Request) {
	st, err := s.su.SetupState(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, r, "setup.html", map[string]any{"S": st, "Page": "setup", "Notice": r.URL.Query().Get("notice")})
}

func (s *Server) connectionPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "connection.html", map[string]any{"C": ConnectionForm{Type: "graph", Auth: "ntlm"}, "Page": "connection"})
}

func connectionForm(r *http.Request) ConnectionForm {
	f := func(k string) string { return strings.TrimSpace(r.FormValue(k)) }
	return ConnectionForm{Name: f("name"), Type: f("type"), TenantID: f("tenant_id"), ClientID: f("client_id"), GraphURL: f("graph_url"),
		TokenURL: f("token_url"), EWSURL: f("ews_url"), Username: f("username"), Auth: f("auth"), Impersonate: r.FormValue("impersonate") != "",
		CACert: f("ca_cert"), Secret: r.FormValue("secret"), TestMailbox: f("test_mailbox")}
}

// saveConnection records a new connection (or, with a name in the path,
// an edited one), then tests it: the page shows the permission checklist,
// and the connection stays whatever the test says (a missing consent is
// granted later, and the test run again).
func (s *Server) saveConnection(w http.ResponseWriter, r *http.Request) {
	c := connectionForm(r)
	save := s.su.AddConnection
	if name := r.PathValue("name"); name != "" {
		c.Name, c.Editing, save = name, true, s.su.EditConnection
	}
	if err := save(r.Context(), c); err != nil {
		c.Secret, c.Problem = "", err.Error()
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "connection.html", map[string]any{"C": c, "Page": "connection"})
		return
	}
	s.showChecks(w, r, c.Name, c.TestMailbox)
}

func (s *Server) editConnectionPage(w http.ResponseWriter, r *http.Request) {
	c, err := s.su.ConnectionForm(r.Context(), r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	c.Editing = true
	s.render(w, r, "connection.html", map[string]any{"C": c, "Page": "connection"})
}

func (s *Server) retentionPage(w http.ResponseWriter, r *http.Request) {
	st, err := s.su.StorageForm(r.Context(), r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	st.Editing = true
	s.render(w, r, "storage.html", map[string]any{"St": st, "Page": "storage"})
}

func (s *Server) setRetention(w http.ResponseWriter, r *http.Request) {
	st := StorageForm{Name: r.PathValue("name"), KeepDeleted: strings.TrimSpace(r.FormValue("keep_deleted")), Editing: true}
	st.KeepVersions, _ = strconv.Atoi(strings.TrimSpace(r.FormValue("keep_versions")))
	if err := s.su.SetRetention(r.Context(), st); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "storage.html", map[string]any{"St": st, "Problem": err.Error(), "Page": "storage"})
		return
	}
	http.Redirect(w, r, "/setup?notice="+url.QueryEscape("Storage "+st.Name+": retention saved; prune applies it."), http.StatusSeeOther)
}

func (s *Server) testConnection(w http.ResponseWriter, r *http.Request) {
	s.showChecks(w, r, r.PathValue("name"), strings.TrimSpace(r.FormValue("test_mailbox")))
}

func (s *Server) showChecks(w http.ResponseWriter, r *http.Request, name, mailbox string) {
	checks, err := s.su.TestConnection(r.Context(), name, mailbox)
	data := map[string]any{"Name": name, "Mailbox": mailbox, "Checks": checks, "Page": "checks"}
	if err != nil {
		data["Problem"] = err.Error()
	}
	s.render(w, r, "checks.html", data)
}

func (s *Server) storagePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "storage.html", map[string]any{"St": StorageForm{}, "Page": "storage"})
}

// addStorage creates the storage and shows its recovery key, once: the
// page is not kept (no-store) and the key is not recorded anywhere else.
func (s *Server) addStorage(w http.ResponseWriter, r *http.Request) {
	f := func(k string) string { return strings.TrimSpace(r.FormValue(k)) }
	st := StorageForm{Name: f("name"), Path: f("path"), Password: r.FormValue("password"), Confirm: r.FormValue("confirm"),
		Unencrypted: r.FormValue("unencrypted") != "", NoCompression: r.FormValue("no_compression") != "", KeepDeleted: f("keep_deleted")}
	st.KeepVersions, _ = strconv.Atoi(f("keep_versions"))
	problem := ""
	switch {
	case !st.Unencrypted && st.Password == "":
		problem = "give the storage a password, or choose an unencrypted storage"
	case !st.Unencrypted && st.Password != st.Confirm:
		problem = "the two passwords differ"
	}
	var key string
	if problem == "" {
		var err error
		if key, err = s.su.AddStorage(r.Context(), st); err != nil {
			problem = err.Error()
		}
	}
	st.Password, st.Confirm = "", ""
	if problem != "" {
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "storage.html", map[string]any{"St": st, "Problem": problem, "Page": "storage"})
		return
	}
	s.render(w, r, "storage.html", map[string]any{"St": st, "Created": true, "RecoveryKey": key, "Page": "storage"})
}

func jobForm(r *http.Request) JobForm {
	f := func(k string) string { return strings.TrimSpace(r.FormValue(k)) }
	on := func(k string) bool { return r.FormValue(k) != "" }
	r.ParseForm()
	j := JobForm{Name: f("name"), Continuity: f("continuity"), Idle: f("idle"), Pattern: f("pattern"), From: f("from"), To: f("to"),
		TimeZone: f("time_zone"), Weekdays: r.Form["weekdays"], Connection: f("connection"), AllMailboxes: f("mailbox_choice") == "all",
		Mailboxes: r.FormValue("mailboxes"), Exclude: r.FormValue("exclude"), Archives: on("archives"), PublicFolders: r.FormValue("public_folders"),
		FutureSubfolders: on("future_subfolders"), Storage: f("storage"), AgeMode: f("age_mode"), AgeUnit: f("age_unit"),
		KeepContacts: on("keep_contacts"), ExcludeFolders: r.FormValue("exclude_folders"), Editing: on("editing"), Now: on("now")}
	j.AgeN, _ = strconv.Atoi(f("age_n"))
	return j
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	j := JobForm{Continuity: "continuous", Idle: "00:01:00", AllMailboxes: true, AgeMode: "all", AgeUnit: "days", FutureSubfolders: true}
	if name := r.PathValue("name"); name != "" {
		var err error
		if j, err = s.su.JobForm(r.Context(), name); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		j.Editing = true
	}
	s.renderJob(w, r, j, "", http.StatusOK)
}

func (s *Server) renderJob(w http.ResponseWriter, r *http.Request, j JobForm, problem string, status int) {
	st, err := s.su.SetupState(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if j.Editing {
		for _, jr := range st.Jobs {
			j.Running = j.Running || jr.Name == j.Name && jr.Running
		}
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	s.render(w, r, "job.html", map[string]any{"J": j, "S": st, "Problem": problem, "Weekdays": Weekdays, "Page": "job"})
}

// jobReview is the wizard's last step: the summary of what the job will
// do, to confirm; or the form again with what is wrong.
func (s *Server) jobReview(w http.ResponseWriter, r *http.Request) {
	j := jobForm(r)
	summary, err := s.su.JobSummary(r.Context(), j)
	if err != nil {
		s.renderJob(w, r, j, err.Error(), http.StatusBadRequest)
		return
	}
	s.render(w, r, "jobsummary.html", map[string]any{"J": j, "Summary": summary, "Hidden": jobHidden(j), "Page": "jobsummary"})
}

// jobHidden carries a reviewed job's fields to the confirmation.
func jobHidden(j JobForm) url.Values {
	v := url.Values{"name": {j.Name}, "continuity": {j.Continuity}, "idle": {j.Idle}, "pattern": {j.Pattern}, "from": {j.From}, "to": {j.To},
		"time_zone": {j.TimeZone}, "weekdays": j.Weekdays, "connection": {j.Connection}, "mailboxes": {j.Mailboxes}, "exclude": {j.Exclude},
		"public_folders": {j.PublicFolders}, "storage": {j.Storage}, "age_mode": {j.AgeMode}, "age_n": {strconv.Itoa(j.AgeN)}, "age_unit": {j.AgeUnit},
		"exclude_folders": {j.ExcludeFolders}}
	for k, on := range map[string]bool{"archives": j.Archives, "future_subfolders": j.FutureSubfolders, "keep_contacts": j.KeepContacts,
		"editing": j.Editing, "now": j.Now} {
		if on {
			v.Set(k, "1")
		}
	}
	if j.AllMailboxes {
		v.Set("mailbox_choice", "all")
	}
	return v
}

func (s *Server) saveJob(w http.ResponseWriter, r *http.Request) {
	j := jobForm(r)
	err := s.su.SaveJob(r.Context(), j, j.Editing)
	if errors.Is(err, ErrJobRunning) {
		j.Running = true
		s.renderJob(w, r, j, "The job is running: stop it first, then save.", http.StatusConflict)
		return
	}
	if err != nil {
		s.renderJob(w, r, j, err.Error(), http.StatusBadRequest)
		return
	}
	verb := "created"
	if j.Editing {
		verb = "saved"
	}
	if j.Now && !j.Editing {
		if err := s.b.Do("start", j.Name, ""); err != nil {
			http.Redirect(w, r, "/setup?notice="+url.QueryEscape("Job "+j.Name+" "+verb+"; it did not start: "+err.Error()), http.StatusSeeOther)
			return
		}
		verb += " and started"
	}
	http.Redirect(w, r, "/setup?notice="+url.QueryEscape("Job "+j.Name+" "+verb+"."), http.StatusSeeOther)
}

func (s *Server) alertsPage(w http.ResponseWriter, r *http.Request) {
	a, err := s.su.Alerts(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, r, "alerts.html", map[string]any{"A": a, "Events": AlertEvents, "Page": "alerts"})
}

func (s *Server) setAlerts(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f := func(k string) string { return strings.TrimSpace(r.FormValue(k)) }
	a := AlertsForm{Host: f("host"), From: f("from"), To: r.FormValue("to"), Username: f("username"), Password: r.FormValue("password"),
		TLS: f("tls"), CACert: f("ca_cert"), On: r.Form["on"], Daily: f("daily")}
	a.Port, _ = strconv.Atoi(f("port"))
	if err := s.su.SetAlerts(r.Context(), a); err != nil {
		a.Password = ""
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "alerts.html", map[string]any{"A": a, "Events": AlertEvents, "Problem": err.Error(), "Page": "alerts"})
		return
	}
	http.Redirect(w, r, "/setup?notice="+url.QueryEscape("Alerts saved."), http.StatusSeeOther)
}

// has is for templates: whether a list holds a value.
func has(list []string, v string) bool { return slices.Contains(list, v) }
