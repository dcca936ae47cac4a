package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// secrets is the secret store in memory.
type secrets map[string]credential.Secret

func (s secrets) Put(name string, v credential.Secret) error { s[name] = v; return nil }
func (s secrets) Get(name string) (credential.Secret, error) {
	v, ok := s[name]
	if !ok {
		return v, fmt.Errorf("no secret %s", name)
	}
	return v, nil
}
func (s secrets) Delete(name string) error { delete(s, name); return nil }

// storages provisions nothing on disk: a password means encrypted.
type storages struct{ fail error }

func (s storages) Provision(_ string, pw []byte, _ app.StorageOptions) (bool, string, error) {
	if s.fail != nil {
		return false, "", s.fail
	}
	if pw == nil {
		return false, "", nil
	}
	return true, "RECOVERY-KEY", nil
}

// jobs is a daemon's job control in memory.
type jobs struct{ busy, started, stopped map[string]bool }

func (j *jobs) Busy(name string) bool { return j.busy[name] }
func (j *jobs) Start(name string)     { j.started[name] = true }
func (j *jobs) Stop(name string)      { j.stopped[name] = true }
func (j *jobs) Status(name string) app.JobStatus {
	return app.JobStatus{State: domain.JobActive, Cycles: 2, Stored: 40, NextCycle: time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)}
}

func newService(t *testing.T) (*app.Service, *eventlog.Log, secrets) {
	t.Helper()
	lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: []eventlog.Hook{projections.ResumeHook}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	sec := secrets{}
	clock := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	s := &app.Service{Log: lg, Secrets: sec, Storages: storages{}, Actor: "tester", Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	return s, lg, sec
}

func graphConn() app.ConnectionSpec {
	return app.ConnectionSpec{Type: "graph", TenantID: "T1", ClientID: "C1"}
}

func job(name, conn, storage string) jobspec.Spec {
	return jobspec.Spec{Name: name, Connection: conn, Storage: storage, Continuity: "continuous", Mailboxes: []string{"a@contoso.test"}}
}

// Every command in order, as an administrator sets mailvault up and tears
// it down: what is refused changes nothing, what is allowed is recorded
// with who did it, and secrets stay out of the log.
func TestServiceCommands(t *testing.T) {
	ctx := context.Background()
	s, lg, sec := newService(t)
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	refused := func(what string, err, want error, text string) {
		t.Helper()
		if !errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), text) {
			t.Fatalf("%s: got %v, want %v saying %q", what, err, want, text)
		}
	}
	ok("add connection", s.AddConnection(ctx, "contoso", graphConn(), credential.New("client-secret-1")))
	refused("add it again", s.AddConnection(ctx, "contoso", graphConn(), credential.New("x")), app.ErrExists, "exists already")
	refused("graph without tenant", s.AddConnection(ctx, "c2", app.ConnectionSpec{Type: "graph"}, credential.New("x")), app.ErrInvalid, "--tenant-id")
	refused("ews without url", s.AddConnection(ctx, "c2", app.ConnectionSpec{Type: "ews"}, credential.New("x")), app.ErrInvalid, "--ews-url")
	refused("unknown type", s.AddConnection(ctx, "c2", app.ConnectionSpec{Type: "imap"}, credential.New("x")), app.ErrInvalid, "use graph or ews")
	moved := graphConn()
	moved.TokenURL = "https://login.example/token"
	ok("edit the connection, keeping its secret", s.EditConnection(ctx, "contoso", moved, credential.Secret{}))
	if conns, _ := s.Connections(ctx); len(conns) != 1 || conns[0].TokenURL != moved.TokenURL || sec["contoso"].Reveal() != "client-secret-1" {
		t.Fatalf("after the edit: %+v, secret %q", conns, sec["contoso"].Reveal())
	}
	ok("edit the connection's secret", s.EditConnection(ctx, "contoso", moved, credential.New("client-secret-2")))
	if sec["contoso"].Reveal() != "client-secret-2" {
		t.Fatalf("the new secret was not kept")
	}
	refused("edit an unknown connection", s.EditConnection(ctx, "nope", moved, credential.Secret{}), app.ErrNotFound, `no connection named "nope"`)
	refused("edit into an invalid one", s.EditConnection(ctx, "contoso", app.ConnectionSpec{Type: "graph"}, credential.Secret{}), app.ErrInvalid, "--tenant-id")
	recovery, err := s.AddStorage(ctx, app.AddStorage{Name: "nas", Path: "/srv/nas", Password: []byte("storage-pw")})
	ok("add storage", err)
	if recovery != "RECOVERY-KEY" || sec[app.StorageSecretName("nas")].Reveal() != "storage-pw" {
		t.Fatalf("recovery %q, stored password %q", recovery, sec[app.StorageSecretName("nas")].Reveal())
	}
	_, err = s.AddStorage(ctx, app.AddStorage{Name: "nas", Path: "/srv/other"})
	refused("add storage again", err, app.ErrExists, `a storage named "nas" exists already`)
	_, err = s.AddStorage(ctx, app.AddStorage{Name: "plain", Path: "/srv/plain"})
	ok("add unencrypted storage", err)
	provisionFails := *s
	errFull := errors.New("disk full")
	provisionFails.Storages = storages{fail: errFull}
	_, err = provisionFails.AddStorage(ctx, app.AddStorage{Name: "broken", Path: "/srv/broken"})
	refused("a storage that cannot be created", err, errFull, "disk full")

	ok("create job", s.CreateJob(ctx, job("nightly", "contoso", "nas")))
	refused("create it again", s.CreateJob(ctx, job("nightly", "contoso", "nas")), app.ErrExists, "use job edit")
	refused("job on an unknown connection", s.CreateJob(ctx, job("n2", "nope", "nas")), app.ErrNotFound, `no connection named "nope"`)
	bad := job("n3", "contoso", "nas")
	bad.Idle = "ten minutes"
	refused("invalid definition", s.CreateJob(ctx, bad), app.ErrInvalid, `job "n3"`)
	edited := job("nightly", "contoso", "plain")
	ok("edit job", s.EditJob(ctx, edited))
	spec, err := s.JobSpec(ctx, "nightly")
	ok("job spec", err)
	if spec.Storage != "plain" {
		t.Fatalf("edit did not take: %+v", spec)
	}
	refused("remove a storage in use", s.RemoveStorage(ctx, "plain"), app.ErrInUse, "used by jobs nightly")
	refused("remove a connection in use", s.RemoveConnection(ctx, "contoso"), app.ErrInUse, "used by jobs nightly")
	refused("start without a daemon", s.StartJob(ctx, "nightly"), app.ErrNoDaemon, "daemon")
	list, err := s.ListJobs(context.Background())
	ok("list jobs", err)
	if len(list) != 1 || list[0].State != app.StateNoDaemon || list[0].Continuity != "continuous" || list[0].Schedule != "no activity period (started by hand)" {
		t.Fatalf("job list without a daemon: %+v", list)
	}

	// With a daemon: start and stop reach it and are recorded; a busy job
	// is neither edited nor deleted.
	j := &jobs{busy: map[string]bool{}, started: map[string]bool{}, stopped: map[string]bool{}}
	s.Jobs = j
	ok("start", s.StartJob(ctx, "nightly"))
	refused("start an unknown job", s.StartJob(ctx, "nope"), app.ErrNotFound, `no job named "nope"`)
	j.busy["nightly"] = true
	refused("edit a busy job", s.EditJob(ctx, edited), app.ErrRunning, "before editing it")
	refused("delete a busy job", s.DeleteJob(ctx, "nightly"), app.ErrRunning, "before deleting it")
	ok("stop", s.StopJob(ctx, "nightly"))
	if !j.started["nightly"] || !j.stopped["nightly"] {
		t.Fatalf("job control not reached: %+v", j)
	}
	list, err = s.ListJobs(context.Background())
	ok("list jobs", err)
	if list[0].State != string(domain.JobActive) || list[0].Cycles != 2 || list[0].ItemsStored != 40 || list[0].NextCycle == nil || list[0].LastCycle != nil {
		t.Fatalf("job list with a daemon: %+v", list[0])
	}
	j.busy["nightly"] = false
	ok("delete", s.DeleteJob(ctx, "nightly"))
	ok("remove storage", s.RemoveStorage(ctx, "nas"))
	ok("remove connection", s.RemoveConnection(ctx, "contoso"))
	if _, has := sec["contoso"]; has {
		t.Fatal("the connection's secret outlived it")
	}
	if _, has := sec[app.StorageSecretName("nas")]; has {
		t.Fatal("the storage's password outlived it")
	}
	conns, err := s.Connections(ctx)
	ok("connections", err)
	stors, err := s.ListStorages(ctx)
	ok("storages", err)
	if len(conns) != 0 || len(stors) != 1 || stors[0].Name != "plain" {
		t.Fatalf("left: %+v %+v", conns, stors)
	}

	// The log holds each allowed change once, by its actor, and no secret.
	c, err := projections.LoadConfig(lg)
	ok("load config", err)
	var types []string
	for _, ch := range c.History {
		types = append(types, ch.Type)
		if ch.Actor != "tester" {
			t.Fatalf("change %s by %q", ch.Type, ch.Actor)
		}
		for _, secret := range []string{"client-secret-1", "storage-pw"} {
			if strings.Contains(string(ch.Definition), secret) {
				t.Fatalf("change %s holds a secret", ch.Type)
			}
		}
	}
	want := "connection_added connection_edited connection_edited storage_added storage_added job_created job_edited job_started job_stopped job_deleted storage_removed connection_removed"
	if strings.Join(types, " ") != want {
		t.Fatalf("recorded\n %s\nwant\n %s", strings.Join(types, " "), want)
	}
}

func TestOpenConnectionAndStorage(t *testing.T) {
	ctx := context.Background()
	s, _, sec := newService(t)
	if err := s.AddConnection(ctx, "exch", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc"}, credential.New("pw")); err != nil {
		t.Fatal(err)
	}
	spec, secret, err := s.OpenConnection("exch")
	if err != nil || secret.Reveal() != "pw" || spec.Identity() != domain.SourceIdentity("ews", "https://mail.contoso.test/EWS/Exchange.asmx") {
		t.Fatalf("open: %+v %v", spec, err)
	}
	if _, _, err := s.OpenConnection("nope"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("unknown connection: %v", err)
	}
	delete(sec, "exch")
	if _, _, err := s.OpenConnection("exch"); err == nil || !strings.Contains(err.Error(), "not in the secret store") {
		t.Fatalf("lost secret: %v", err)
	}
	if _, err := s.AddStorage(ctx, app.AddStorage{Name: "vault", Path: "/v", Password: []byte("pw2")}); err != nil {
		t.Fatal(err)
	}
	st, pw, err := s.OpenStorage("vault")
	if err != nil || string(pw) != "pw2" || st.Path != "/v" || !st.Encrypted {
		t.Fatalf("open storage: %+v %q %v", st, pw, err)
	}
	if _, _, err := s.OpenStorage("nope"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("unknown storage: %v", err)
	}
}

func TestAlerts(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	if _, _, on, err := s.Alerts(); on || err != nil {
		t.Fatalf("alerts on before set: %v", err)
	}
	set := domain.AlertSettings{Host: "smtp.contoso.test", Port: 587, From: "mv@contoso.test", To: []string{"ops@contoso.test"}, TLS: "mandatory", On: []string{domain.AlertBadNews}, Username: "mv"}
	if err := s.SetAlerts(ctx, set, credential.Secret{}); !errors.Is(err, app.ErrInvalid) {
		t.Fatalf("a login without a password: %v", err)
	}
	bad := set
	bad.Host = ""
	if err := s.SetAlerts(ctx, bad, credential.New("smtp-pw")); !errors.Is(err, app.ErrInvalid) {
		t.Fatalf("no host: %v", err)
	}
	if err := s.SetAlerts(ctx, set, credential.New("smtp-pw")); err != nil {
		t.Fatal(err)
	}
	got, pw, on, err := s.Alerts()
	if err != nil || !on || pw.Reveal() != "smtp-pw" || got.Host != set.Host {
		t.Fatalf("alerts: %+v %v %v", got, on, err)
	}
	if err := s.AlertsOff(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, on, _ := s.Alerts(); on {
		t.Fatal("alerts still on")
	}
}
