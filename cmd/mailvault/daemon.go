package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/adapters/promexport"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// The daemon holds the data directory's log (Badger lets one process open
// it): commands given while it runs are forwarded to it over its local API
// and run there, on the open log, by the same code.
var shared struct {
	sync.Mutex
	dir string
	lg  *eventlog.Log
	d   *daemon
}

func sharedLog(data string) *eventlog.Log {
	abs, err := filepath.Abs(data)
	if err != nil {
		return nil
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.lg != nil && shared.dir == abs {
		return shared.lg
	}
	return nil
}

// releaseLog closes a log opened for one command, not the daemon's.
func releaseLog(lg *eventlog.Log) {
	shared.Lock()
	isShared := lg == shared.lg
	shared.Unlock()
	if !isShared {
		lg.Close()
	}
}

// daemonEndpoint is what a running daemon leaves in the data directory.
type daemonEndpoint struct {
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

// daemonHolds says a daemon has the data directory: forward the command.
type daemonHolds struct {
	ep    daemonEndpoint
	token string
}

func (d *daemonHolds) Error() string {
	return "the data directory is held by the mailvault daemon at " + d.ep.Addr
}

func findDaemon(data string) *daemonHolds {
	b, err := os.ReadFile(filepath.Join(data, "daemon.json"))
	if err != nil {
		return nil
	}
	var ep daemonEndpoint
	if json.Unmarshal(b, &ep) != nil || ep.Addr == "" {
		return nil
	}
	tok, err := os.ReadFile(filepath.Join(data, "daemon.token"))
	if err != nil {
		return nil
	}
	return &daemonHolds{ep: ep, token: strings.TrimSpace(string(tok))}
}

// pathFlags name flags whose values are paths: they are made absolute
// before a command is forwarded, since the daemon runs elsewhere.
var pathFlags = map[string]bool{"-f": true, "--file": true, "--path": true, "--client-secret-file": true, "--password-file": true,
	"--ca-cert": true, "--data": true, "--tenant": true, "--out": true, "--storage-password-file": true, "--recovery-key-file": true,
	"--new-password-file": true}

// storageCommands are where a command takes a storage NAME or DIR: the flag
// --storage, and the first argument of these commands.
var storageCommands = map[string]bool{"ls": true, "find": true, "verify": true, "prune": true, "stats": true, "retention": true, "passwd": true}

// nameOrPath makes a storage argument absolute when it is a path (it has a
// separator, or names a directory here); a storage name stays as it is.
func nameOrPath(v string) string {
	if strings.ContainsAny(v, `/\`) {
		if a, err := filepath.Abs(v); err == nil {
			return a
		}
	}
	if fi, err := os.Stat(v); err == nil && fi.IsDir() {
		if a, err := filepath.Abs(v); err == nil {
			return a
		}
	}
	return v
}

func absArgs(args []string) []string {
	out := append([]string(nil), args...)
	storageCmd := false
	for i := 0; i < len(out); i++ {
		name, val, hasVal := strings.Cut(out[i], "=")
		switch {
		case name == "--storage" && hasVal:
			out[i] = name + "=" + nameOrPath(val)
			continue
		case name == "--storage" && i+1 < len(out):
			out[i+1] = nameOrPath(out[i+1])
			i++
			continue
		case !strings.HasPrefix(out[i], "-"):
			if storageCommands[out[i]] && !storageCmd {
				storageCmd = true
				continue
			}
			if storageCmd {
				out[i] = nameOrPath(out[i])
				storageCmd = false
			}
			continue
		}
		if !pathFlags[name] {
			continue
		}
		if hasVal {
			if val != "-" {
				if a, err := filepath.Abs(val); err == nil {
					out[i] = name + "=" + a
				}
			}
			continue
		}
		if i+1 < len(out) && out[i+1] != "-" {
			if a, err := filepath.Abs(out[i+1]); err == nil {
				out[i+1] = a
			}
			i++
		}
	}
	return out
}

type forwarded struct {
	Args   []string `json:"args"`
	Stdin  []byte   `json:"stdin,omitempty"`
	Stdout []byte   `json:"stdout,omitempty"`
	Stderr []byte   `json:"stderr,omitempty"`
	Code   int      `json:"code"`
}

// forward runs the command line in the daemon and returns its exit code.
func forward(dh *daemonHolds, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	req := forwarded{Args: absArgs(args)}
	for _, a := range args {
		if a == "-" { // a file given on standard input
			req.Stdin, _ = io.ReadAll(stdin)
		}
	}
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, "http://"+dh.ep.Addr+"/v1/cli", bytes.NewReader(b))
	hr.Header.Set("Authorization", "Bearer "+dh.token)
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(hr)
	if err != nil {
		fmt.Fprintf(stderr, "mailvault: the data directory is held by the daemon (pid %d), which does not answer at %s: %v\n", dh.ep.PID, dh.ep.Addr, err)
		return exitErrors
	}
	defer resp.Body.Close()
	var out forwarded
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		fmt.Fprintf(stderr, "mailvault: the daemon refused the command (HTTP %d)\n", resp.StatusCode)
		return exitErrors
	}
	stdout.Write(out.Stdout)
	stderr.Write(out.Stderr)
	return out.Code
}

// runCLI runs a command line in process, as main does, and returns its
// output and exit code.
func runCLI(ctx context.Context, args []string, stdin []byte) forwarded {
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(bytes.NewReader(stdin))
	code := exitOK
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(&errb, "mailvault:", ee.err)
			}
			code = ee.code
		} else {
			fmt.Fprintln(&errb, "mailvault:", err)
			code = exitUsage
		}
	}
	return forwarded{Stdout: out.Bytes(), Stderr: errb.Bytes(), Code: code}
}

// jobState is what the daemon knows of one job.
type jobState struct {
	active      bool // started (by hand or on schedule) and not stopped
	stopped     bool // job stop: a cycle ending now leaves the job inactive
	running     bool
	cancel      context.CancelFunc
	lastEnd     time.Time // the last cycle that ended in this daemon, or finished before it started
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

type daemon struct {
	g       *globalFlags
	lg      *eventlog.Log
	log     zerolog.Logger
	token   string
	metrics *projections.Metrics
	// dailyTried is when the daily summary was last attempted.
	dailyTried time.Time

	mu   sync.Mutex
	jobs map[string]*jobState
	wg   sync.WaitGroup
}

func newDaemonCmd(g *globalFlags) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "daemon [--listen 127.0.0.1:7070]",
		Short: "Run the backup jobs on their schedules, with a local API for the other commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger()
			if err != nil {
				return err
			}
			lg, err := openLogObserved(g.data, promexport.ObserveCommit)
			if err != nil {
				return err
			}
			defer lg.Close()
			metrics, stopMetrics, err := startMetrics(lg)
			if err != nil {
				return &exitError{code: exitErrors, err: fmt.Errorf("read the log for metrics: %w", err)}
			}
			defer stopMetrics()
			abs, _ := filepath.Abs(g.data)
			token, err := daemonToken(g.data)
			if err != nil {
				return &exitError{code: exitErrors, err: err}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return &exitError{code: exitErrors, err: fmt.Errorf("listen on %s: %w", listen, err)}
			}
			d := &daemon{g: g, lg: lg, log: logger.With().Str("component", "daemon").Logger(), token: token, jobs: map[string]*jobState{}, metrics: metrics}
			shared.Lock()
			shared.dir, shared.lg, shared.d = abs, lg, d
			shared.Unlock()
			ep, _ := json.Marshal(daemonEndpoint{Addr: ln.Addr().String(), PID: os.Getpid()})
			if err := os.WriteFile(filepath.Join(g.data, "daemon.json"), ep, 0o600); err != nil {
				return &exitError{code: exitErrors, err: err}
			}
			defer os.Remove(filepath.Join(g.data, "daemon.json"))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv := &http.Server{Handler: d.api(ctx), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
			d.log.Info().Str("listen", ln.Addr().String()).Msg("daemon running")
			fmt.Fprintf(cmd.OutOrStdout(), "mailvault daemon: listening on %s, data %s\n", ln.Addr(), abs)
			d.restore()
			d.loop(ctx)
			// Stop at a checkpoint: cycles see their context end and finish
			// what is in flight; give them 10 seconds.
			done := make(chan struct{})
			go func() { d.wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				d.log.Warn().Msg("cycles did not stop within 10 s; leaving them to resume next start")
			}
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "address of the local API (keep it on loopback)")
	return cmd
}

// daemonToken returns the API token, creating it (mode 0600) at first start.
func daemonToken(data string) (string, error) {
	path := filepath.Join(data, "daemon.token")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the API token: %w", err)
	}
	return tok, nil
}

func (d *daemon) api(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promexport.Handler(promexport.Collector{Snapshot: d.metrics.Snapshot, LogSize: d.lg.Size, JobsRunning: d.running}))
	mux.HandleFunc("POST /v1/cli", func(w http.ResponseWriter, r *http.Request) {
		var req forwarded
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if len(req.Args) > 0 && req.Args[0] == "daemon" {
			http.Error(w, "a daemon runs already", http.StatusConflict)
			return
		}
		out := runCLI(ctx, req.Args, req.Stdin)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	web := dashboard.New(dashboardBackend{d: d, ctx: ctx}, d.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" {
			web.ServeHTTP(w, r) // the dashboard: its own login and session cookie
			return
		}
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(d.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailvault"`)
			http.Error(w, "the request needs the daemon's API token (DATA/daemon.token)", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// restore makes active again the jobs that were active when the daemon
// stopped or was killed: their cycles resume from the log.
func (d *daemon) restore() {
	c, err := projections.LoadConfig(d.lg)
	if err != nil {
		d.log.Error().Err(err).Msg("read the configuration")
		return
	}
	history, err := projections.JobHistories(d.lg)
	if err != nil {
		d.log.Error().Err(err).Msg("read the jobs' history")
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
	// Counters and the last cycle carry over a restart: they are the log's.
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
}

func (d *daemon) job(name string) *jobState {
	j := d.jobs[name]
	if j == nil {
		j = &jobState{state: domain.JobInactive}
		d.jobs[name] = j
	}
	return j
}

// loop decides, every second, which jobs run.
func (d *daemon) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		d.tick(ctx, time.Now())
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for _, j := range d.jobs {
				if j.cancel != nil {
					j.cancel()
				}
			}
			d.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

func (d *daemon) tick(ctx context.Context, now time.Time) {
	c, err := projections.LoadConfig(d.lg)
	if err != nil {
		d.log.Error().Err(err).Msg("read the configuration")
		return
	}
	d.dailySummary(ctx, c, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	specs := map[string]jobspec.Spec{}
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
		specs[name], jobs[name] = s, j
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
		d.startCycle(ctx, start.Name, jobs[start.Name], c, start.Until, start.Window)
	}
}

// startCycle runs one backup cycle of a job in the background. Callers hold
// d.mu.
func (d *daemon) startCycle(ctx context.Context, name string, job domain.Job, c *projections.Config, until, window time.Time) {
	st := d.job(name)
	var conn connectionSpec
	var stor storageSpec
	if json.Unmarshal(c.Connections[job.Connection], &conn) != nil || json.Unmarshal(c.Storages[job.Storage], &stor) != nil {
		st.state = domain.JobStateAfter(domain.StateNotFinished)
		return
	}
	secret, err := secretStore(d.g).Get(job.Connection)
	if err != nil {
		d.log.Error().Err(err).Str("job", name).Msg("job cannot start")
		st.state = domain.JobStateAfter(domain.StateNotFinished)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	if !until.IsZero() {
		cctx, cancel = context.WithDeadline(ctx, until)
	}
	st.running, st.cancel, st.windowStart = true, cancel, window
	st.state = domain.JobActive
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer cancel()
		state, err := d.cycle(cctx, name, job, conn, secret, stor)
		d.mu.Lock()
		defer d.mu.Unlock()
		st.running, st.cancel, st.lastEnd = false, nil, time.Now()
		st.cycles++
		switch {
		case st.stopped:
			st.state = domain.JobInactive // stopped by hand: the interrupted cycle resumes at the next start
		case err != nil:
			st.state = domain.JobStateAfter(domain.StateNotFinished)
			d.log.Warn().Err(err).Str("job", name).Msg("cycle ended with an error")
		default:
			st.state = domain.JobStateAfter(state)
		}
		if job.Continuity.OneTime && job.Schedule.Pattern == domain.PatternNone && err == nil && state != domain.StateNotFinished && !st.stopped {
			// A one-time job started by hand has done its cycle: record it
			// now, so that a restart does not run it again.
			st.active = false
			now := time.Now().UTC()
			ch := domain.ConfigChange{Type: domain.JobStopped, ID: domain.DeriveID("config", domain.JobStopped, name, now.Format(time.RFC3339Nano)),
				Time: now, Actor: "mailvault daemon (one-time job finished)", Name: name}
			if err := projections.RecordChange(context.WithoutCancel(ctx), d.lg, ch); err != nil {
				d.log.Error().Err(err).Str("job", name).Msg("record the end of a one-time job")
			}
		}
	}()
}

func (d *daemon) cycle(ctx context.Context, name string, job domain.Job, conn connectionSpec, secret credential.Secret, stor storageSpec) (domain.RunState, error) {
	var src pipeline.Source
	var err error
	var storagePassword []byte
	if stor.Encrypted {
		pw, err := secretStore(d.g).Get(storageSecretName(job.Storage))
		if err != nil {
			return domain.StateNotFinished, fmt.Errorf("storage %s: its password is not in the secret store: %w", job.Storage, err)
		}
		storagePassword = []byte(pw.Reveal())
	}
	cfg := pipeline.DefaultConfig()
	client, err := openConnection(ctx, d.log, job.Connection, conn, secret, connectionScope{mailboxes: job.Mailboxes, publicFolders: job.PublicFolders})
	if err != nil {
		return "", err
	}
	src = client.source()
	client.limit(&cfg)
	cfg.Job, cfg.TimeFilter, cfg.FolderFilter, cfg.ExcludeMailboxes = name, job.TimeFilter, job.FolderFilter, job.ExcludeMailboxes
	cfg.Run = newRunID(time.Now())
	d.mu.Lock()
	d.job(name).currentRun = cfg.Run
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.job(name).currentRun = ""
		d.mu.Unlock()
		if r, err := projections.BuildReport(d.lg, cfg.Run); err == nil {
			d.mu.Lock()
			st := d.job(name)
			st.lastRun, st.stored, st.scanned, st.speed = cfg.Run, st.stored+r.ItemsStored, st.scanned+r.ItemsScanned, r.ItemsPerS
			d.mu.Unlock()
		}
	}()
	o := runOptions{source: src, sourceName: conn.identity(), storage: &storageRef{dir: stor.Path, password: storagePassword}, cfg: cfg, progress: "none", format: "json",
		out: io.Discard, errOut: io.Discard}
	err = runBackup(ctx, d.g, o)
	var ee *exitError
	switch {
	case err == nil:
		return domain.StateFinished, nil
	case errors.As(err, &ee) && ee.code == exitWarnings:
		return domain.StateWarnings, nil
	}
	return domain.StateNotFinished, nil
}

// startJob and stopJob are what job start and job stop do inside the daemon.
func (d *daemon) startJob(ctx context.Context, name string) error {
	d.mu.Lock()
	j := d.job(name)
	j.active, j.stopped = true, false
	d.mu.Unlock()
	return nil
}

func (d *daemon) stopJob(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.job(name)
	j.active, j.stopped = false, true
	if j.cancel != nil {
		j.cancel() // the cycle stops at a checkpoint and resumes at the next start
	}
	j.state = domain.JobInactive
}

// running counts the jobs with a cycle running now.
func (d *daemon) running() int {
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

// dailySummary mails the last 24 hours' runs once a day, at the time the
// alert settings name. Whether today's went out is in the log, so a restart
// does not send it twice.
func (d *daemon) dailySummary(ctx context.Context, c *projections.Config, now time.Time) {
	m, ok, err := loadMailer(d.g, c)
	if err != nil || !ok {
		return
	}
	day, due := m.Settings.DailyDue(now)
	if !due {
		return
	}
	if sent, err := d.lg.Has(OpsTopic, domain.DeriveID("alert", "daily", day)); err != nil || sent {
		return
	}
	if now.Sub(d.dailyTried) < 15*time.Minute {
		return // a failed send is tried again a quarter of an hour later, not every tick
	}
	d.dailyTried = now
	runs, err := projections.ListRuns(d.lg)
	if err != nil {
		return
	}
	var body strings.Builder
	counts := map[string]int{}
	fmt.Fprintf(&body, "mailvault: runs of the last 24 hours (to %s)\n\n", now.Format(time.RFC1123))
	for _, r := range runs {
		started, err := time.Parse("2006-01-02 15:04:05", r.Started)
		if err != nil || now.Sub(started) > 24*time.Hour {
			continue
		}
		counts[r.State]++
		fmt.Fprintf(&body, "%s  %s  stored %d  quarantined %d  folders skipped %d\n", r.RunID, r.State, r.ItemsStored, r.ItemsQuarantined, r.FoldersSkipped)
	}
	subject := fmt.Sprintf("mailvault: daily summary %s: %d finished, %d with warnings, %d not finished", day,
		counts[string(domain.StateFinished)], counts[string(domain.StateWarnings)], counts[string(domain.StateNotFinished)])
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = m.Send(sctx, subject, body.String())
	recordAlert(ctx, d.lg, day, "daily", len(m.Settings.To), err)
	if err != nil {
		d.log.Error().Err(err).Msg("daily summary not sent")
	}
}

// jobLive is a job as the daemon sees it now: the counters of its ended
// cycles plus, while a cycle runs, that cycle's live report. The dashboard
// and job list both show it.
type jobLive struct {
	state                         domain.JobState
	run                           string
	running                       bool
	cycles, stored, scanned       int
	itemsPerS, mbPerS             float64
	currentMailbox, currentFolder string
	lastCycle, nextCycle          time.Time
}

func (d *daemon) jobView(name string) jobLive {
	v := jobLive{state: domain.JobInactive}
	d.mu.Lock()
	st := d.jobs[name]
	var current string
	if st != nil {
		v.state, v.stored, v.scanned, v.itemsPerS, v.run, v.cycles = st.state, st.stored, st.scanned, st.speed, st.lastRun, st.cycles
		if v.state == "" {
			v.state = domain.JobInactive
			if st.active {
				v.state = domain.JobActive
			}
		}
		if st.running {
			v.state, v.running, current = domain.JobRunning, true, st.currentRun
		}
		v.lastCycle, v.nextCycle = st.lastEnd, st.next
		if v.lastCycle.Before(st.historyEnd) {
			v.lastCycle = st.historyEnd
		}
	}
	d.mu.Unlock()
	if current != "" {
		if r := d.metrics.Report(current); r != nil {
			v.stored += r.ItemsStored
			v.scanned += r.ItemsScanned
			v.itemsPerS, v.mbPerS = r.ItemsPerS, r.MBPerS
			v.currentMailbox, v.currentFolder = r.CurrentMailbox, r.CurrentFolder
		}
		v.run = current
	} else if v.run != "" {
		if r := d.metrics.Report(v.run); r != nil {
			v.mbPerS = r.MBPerS
		}
	}
	return v
}
