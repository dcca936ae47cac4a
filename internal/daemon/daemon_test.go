package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/daemon"
	"github.com/mailvault/mailvault/projections"
)

type secrets map[string]credential.Secret

func (s secrets) Put(name string, v credential.Secret) error { s[name] = v; return nil }
func (s secrets) Get(name string) (credential.Secret, error) { return s[name], nil }
func (s secrets) Delete(name string) error                   { delete(s, name); return nil }

type storages struct{}

func (storages) Provision(string, []byte, app.StorageOptions) (bool, string, error) {
	return false, "", nil
}

// clock is the injected time: it moves only when the test says so.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// cycles is a CycleRunner that records each cycle's run in the log, as a
// backup does, and ends it when the test releases it.
type cycles struct {
	lg      *eventlog.Log
	clock   *clock
	started chan string
	release chan domain.RunState
}

func (c *cycles) run(ctx context.Context, job string, _ domain.Job, run string) (domain.RunState, error) {
	c.append(run, domain.Event{Type: domain.RunStarted, Config: &domain.RunConfig{Job: job}})
	c.started <- job
	var state domain.RunState
	select {
	case state = <-c.release:
	case <-ctx.Done():
		state = domain.StateNotFinished
	}
	c.append(run, domain.Event{Type: domain.ItemStored, Outcome: domain.OutcomeStored, Mailbox: "a@contoso.test", FolderID: "f", ItemID: "i-" + run})
	c.append(run, domain.Event{Type: domain.RunFinished, State: string(state)})
	if state == domain.StateNotFinished {
		return state, errors.New("stopped")
	}
	return state, nil
}

func (c *cycles) append(run string, ev domain.Event) {
	ev.Run, ev.Time, ev.Schema = run, c.clock.Now(), domain.SchemaVersion
	ev.ID = domain.DeriveID(string(ev.Type), run, ev.ItemID)
	b, _ := json.Marshal(ev)
	if _, err := c.lg.Append(context.Background(), []eventlog.Record{{Topic: "mailvault.run." + run + ".outcomes", UUID: ev.ID, Payload: b,
		Metadata: map[string]string{eventlog.MetaRun: run, eventlog.MetaType: string(ev.Type)}}}); err != nil {
		panic(err)
	}
}

type fixture struct {
	lg     *eventlog.Log
	svc    *app.Service
	clock  *clock
	cycles *cycles
	runs   int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: []eventlog.Hook{projections.ResumeHook}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	c := &clock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	f := &fixture{lg: lg, clock: c, cycles: &cycles{lg: lg, clock: c, started: make(chan string, 8), release: make(chan domain.RunState, 8)}}
	f.svc = &app.Service{Log: lg, Secrets: secrets{}, Storages: storages{}, Actor: "tester", Now: c.Now}
	ctx := context.Background()
	must(t, f.svc.AddConnection(ctx, "contoso", app.ConnectionSpec{Type: "graph", TenantID: "T", ClientID: "C"}, credential.New("s")))
	_, err = f.svc.AddStorage(ctx, app.AddStorage{Name: "nas", Path: "/nas"})
	must(t, err)
	return f
}

func (f *fixture) daemon() *daemon.Daemon {
	d := daemon.New(daemon.Config{Log: f.lg, RunCycle: f.cycles.run, Now: f.clock.Now, Logger: zerolog.Nop(),
		NewRun: func(time.Time) string { f.runs++; return fmt.Sprintf("run-%02d", f.runs) }})
	f.svc.Jobs = d
	return d
}

func (f *fixture) job(t *testing.T, spec jobspec.Spec) {
	t.Helper()
	spec.Connection, spec.Storage, spec.Mailboxes = "contoso", "nas", []string{"a@contoso.test"}
	must(t, f.svc.CreateJob(context.Background(), spec))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A continuous job started by hand: it runs at the next tick, not twice at
// once, waits its idle time after a cycle, and its counters grow.
func TestContinuousJobRunsAndIdles(t *testing.T) {
	f := newFixture(t)
	d := f.daemon()
	ctx := context.Background()
	f.job(t, jobspec.Spec{Name: "mail", Continuity: "continuous", Idle: "00:05:00"})
	d.Tick(ctx, f.clock.Now())
	if d.Running() != 0 {
		t.Fatal("a job nobody started runs")
	}
	must(t, f.svc.StartJob(ctx, "mail"))
	d.Tick(ctx, f.clock.Now())
	if job := <-f.cycles.started; job != "mail" {
		t.Fatalf("started %s", job)
	}
	d.Tick(ctx, f.clock.Add(time.Second))
	if st := d.Status("mail"); st.State != domain.JobRunning || !st.Running || st.Run != "run-01" || d.Running() != 1 || !d.Busy("mail") {
		t.Fatalf("while running: %+v", st)
	}
	if err := f.svc.EditJob(ctx, jobspec.Spec{Name: "mail", Connection: "contoso", Storage: "nas", Continuity: "continuous", AllMailboxes: true}); !errors.Is(err, app.ErrRunning) {
		t.Fatalf("edit while running: %v", err)
	}
	f.clock.Add(time.Minute)
	f.cycles.release <- domain.StateFinished
	d.Wait()
	st := d.Status("mail")
	if st.State != domain.JobStateAfter(domain.StateFinished) || st.Cycles != 1 || st.Stored != 1 || !st.LastCycle.Equal(f.clock.Now()) {
		t.Fatalf("after a cycle: %+v", st)
	}
	want := f.clock.Now().Add(5 * time.Minute)
	d.Tick(ctx, f.clock.Add(4*time.Minute))
	if d.Running() != 0 || !d.Status("mail").NextCycle.Equal(want) {
		t.Fatalf("ran within its idle time, or next cycle %v != %v", d.Status("mail").NextCycle, want)
	}
	d.Tick(ctx, f.clock.Add(time.Minute))
	<-f.cycles.started
	f.cycles.release <- domain.StateWarnings
	d.Wait()
	if st := d.Status("mail"); st.Cycles != 2 || st.Stored != 2 || st.State != domain.JobStateAfter(domain.StateWarnings) {
		t.Fatalf("after two cycles: %+v", st)
	}
}

// job stop cancels the running cycle (it stops at a checkpoint) and the
// job stays inactive; a restarted daemon keeps it so.
func TestStopCancelsTheCycle(t *testing.T) {
	f := newFixture(t)
	d := f.daemon()
	ctx := context.Background()
	f.job(t, jobspec.Spec{Name: "mail", Continuity: "continuous"})
	must(t, f.svc.StartJob(ctx, "mail"))
	d.Tick(ctx, f.clock.Now())
	<-f.cycles.started
	must(t, f.svc.StopJob(ctx, "mail"))
	d.Wait()
	if st := d.Status("mail"); st.State != domain.JobInactive || st.Running || d.Busy("mail") {
		t.Fatalf("after stop: %+v", st)
	}
	d.Tick(ctx, f.clock.Add(time.Hour))
	if d.Running() != 0 {
		t.Fatal("a stopped job ran again")
	}
	again := f.daemon()
	must(t, again.Restore())
	if again.Busy("mail") {
		t.Fatal("a restart made a stopped job active")
	}
}

// A one-time job started by hand runs once; its end is recorded, so a
// restarted daemon does not run it again.
func TestOneTimeJobRunsOnce(t *testing.T) {
	f := newFixture(t)
	d := f.daemon()
	ctx := context.Background()
	f.job(t, jobspec.Spec{Name: "once", Continuity: "one-time"})
	must(t, f.svc.StartJob(ctx, "once"))
	d.Tick(ctx, f.clock.Now())
	<-f.cycles.started
	f.cycles.release <- domain.StateFinished
	d.Wait()
	d.Tick(ctx, f.clock.Add(time.Hour))
	if d.Running() != 0 || d.Busy("once") {
		t.Fatal("a one-time job ran twice")
	}
	c, err := projections.LoadConfig(f.lg)
	must(t, err)
	last := c.History[len(c.History)-1]
	if last.Type != domain.JobStopped || !strings.Contains(last.Actor, "one-time job finished") {
		t.Fatalf("the end of the one-time job is not recorded: %+v", last)
	}
	again := f.daemon()
	must(t, again.Restore())
	again.Tick(ctx, f.clock.Add(time.Hour))
	if again.Running() != 0 {
		t.Fatal("a restart ran the one-time job again")
	}
}

// After a restart the jobs' history comes back from the log: cycles,
// items, the last cycle, its outcome, and an active job resumes at once
// when its last cycle was interrupted.
func TestRestartKeepsTheJobsHistory(t *testing.T) {
	f := newFixture(t)
	d := f.daemon()
	ctx := context.Background()
	f.job(t, jobspec.Spec{Name: "mail", Continuity: "continuous", Idle: "01:00:00"})
	must(t, f.svc.StartJob(ctx, "mail"))
	d.Tick(ctx, f.clock.Now())
	<-f.cycles.started
	f.clock.Add(time.Minute)
	f.cycles.release <- domain.StateFinished
	d.Wait()
	ended := f.clock.Now()
	before := d.Status("mail")

	again := f.daemon()
	must(t, again.Restore())
	after := again.Status("mail")
	if after.Cycles != before.Cycles || after.Stored != before.Stored || after.Run != before.Run || !after.LastCycle.Equal(ended) ||
		after.State != domain.JobStateAfter(domain.StateFinished) {
		t.Fatalf("restart lost the history:\n before %+v\n after  %+v", before, after)
	}
	again.Tick(ctx, f.clock.Add(30*time.Minute))
	if again.Running() != 0 {
		t.Fatal("the idle time did not carry over the restart")
	}
	again.Tick(ctx, f.clock.Add(31*time.Minute))
	<-f.cycles.started
	// Killed mid-cycle: the next daemon resumes at once, idle time or not.
	third := f.daemon()
	must(t, third.Restore())
	third.Tick(ctx, f.clock.Add(time.Second))
	<-f.cycles.started
	f.cycles.release <- domain.StateFinished
	f.cycles.release <- domain.StateFinished
	again.Wait()
	third.Wait()
}

// The typed local API and its Go client: the job list, start and stop, and
// the application's typed errors arriving as the same errors.
func TestAPIAndClient(t *testing.T) {
	f := newFixture(t)
	d := f.daemon()
	f.job(t, jobspec.Spec{Name: "mail", Continuity: "continuous"})
	mux := http.NewServeMux()
	daemon.RegisterAPI(mux, f.svc)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := daemon.Client{Addr: strings.TrimPrefix(srv.URL, "http://")}
	ctx := context.Background()
	must(t, c.StartJob(ctx, "mail"))
	if !d.Busy("mail") {
		t.Fatal("start did not reach the daemon")
	}
	jobs, err := c.ListJobs(ctx)
	must(t, err)
	if len(jobs) != 1 || jobs[0].Name != "mail" || jobs[0].State != string(domain.JobActive) || jobs[0].Connection != "contoso" {
		t.Fatalf("jobs: %+v", jobs)
	}
	err = c.StartJob(ctx, "no such/job")
	var ce *domain.ConfigError
	if !errors.Is(err, app.ErrNotFound) || !errors.As(err, &ce) || !strings.Contains(err.Error(), `no job named "no such/job"`) {
		t.Fatalf("unknown job: %v", err)
	}
	must(t, c.StopJob(ctx, "mail"))
	if d.Busy("mail") {
		t.Fatal("stop did not reach the daemon")
	}
	f.svc.Jobs = nil
	if err := c.StopJob(ctx, "mail"); !errors.Is(err, app.ErrNoDaemon) {
		t.Fatalf("no daemon: %v", err)
	}
	srv.Close()
	if _, err := c.ListJobs(ctx); !errors.Is(err, daemon.ErrUnreachable) {
		t.Fatalf("daemon gone: %v", err)
	}
}

// Every configuration command over the API gives the application's result
// or its typed error, as in process: the client is the application.
func TestConfigurationOverTheAPI(t *testing.T) {
	f := newFixture(t)
	f.daemon()
	mux := http.NewServeMux()
	daemon.RegisterAPI(mux, f.svc)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := daemon.Client{Addr: strings.TrimPrefix(srv.URL, "http://")}
	ctx := context.Background()
	must(t, c.AddConnection(ctx, "exch", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc"}, credential.New("pw")))
	if err := c.AddConnection(ctx, "exch", app.ConnectionSpec{Type: "ews", EWSURL: "https://x"}, credential.New("pw")); !errors.Is(err, app.ErrExists) {
		t.Fatalf("duplicate connection: %v", err)
	}
	if err := c.EditConnection(ctx, "nope", app.ConnectionSpec{Type: "ews", EWSURL: "https://x"}, credential.Secret{}); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("edit of an unknown connection: %v", err)
	}
	must(t, c.EditConnection(ctx, "exch", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", Auth: "basic"}, credential.Secret{}))
	conns, err := c.Connections(ctx)
	must(t, err)
	if len(conns) != 2 || conns[1].Name != "exch" || conns[1].Username != "svc" || conns[1].Auth != "basic" {
		t.Fatalf("connections: %+v", conns)
	}
	if _, err := f.svc.Secrets.Get("exch"); err != nil {
		t.Fatal("the secret did not reach the store")
	}
	key, err := c.AddStorage(ctx, app.AddStorage{Name: "tape", Path: "/tape"})
	must(t, err)
	stors, err := c.ListStorages(ctx)
	must(t, err)
	if key != "" || len(stors) != 2 {
		t.Fatalf("storages: %q %+v", key, stors)
	}
	spec := jobspec.Spec{Name: "weekly", Connection: "exch", Storage: "tape", Continuity: "continuous", AllMailboxes: true}
	must(t, c.CreateJob(ctx, spec))
	got, err := c.JobSpec(ctx, "weekly")
	must(t, err)
	if got.Connection != "exch" || !got.AllMailboxes {
		t.Fatalf("job spec: %+v", got)
	}
	spec.Idle = "00:10:00"
	must(t, c.EditJob(ctx, spec))
	if err := c.RemoveStorage(ctx, "tape"); !errors.Is(err, app.ErrInUse) {
		t.Fatalf("a storage in use: %v", err)
	}
	bad := spec
	bad.Idle = "soon"
	if err := c.EditJob(ctx, bad); !errors.Is(err, app.ErrInvalid) {
		t.Fatalf("an invalid job: %v", err)
	}
	if _, err := c.JobSpec(ctx, "nope"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("an unknown job: %v", err)
	}
	must(t, c.DeleteJob(ctx, "weekly"))
	must(t, c.RemoveStorage(ctx, "tape"))
	must(t, c.RemoveConnection(ctx, "exch"))
	settings := domain.AlertSettings{Host: "smtp.contoso.test", Port: 587, From: "mv@contoso.test", To: []string{"ops@contoso.test"}, TLS: "mandatory", On: []string{domain.AlertBadNews}}
	must(t, c.SetAlerts(ctx, settings, credential.Secret{}))
	back, on, err := c.AlertSettings(ctx)
	must(t, err)
	if !on || back.Host != settings.Host {
		t.Fatalf("alerts: %+v %v", back, on)
	}
	must(t, c.AlertsOff(ctx))
	if _, on, _ := c.AlertSettings(ctx); on {
		t.Fatal("alerts still on")
	}
	// A body that does not read is refused as invalid, never half applied.
	resp, err := http.Post(srv.URL+"/v1/jobs", "application/json", strings.NewReader(`{"name": "x", "unknown_key": 1}`))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an unknown key: HTTP %d", resp.StatusCode)
	}
}
