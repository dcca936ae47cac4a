package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailvault/mailvault/adapters/cluster"
	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/adapters/promexport"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/daemon"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// releaseLog closes a log opened for one command, not the daemon's.
func releaseLog(g *globalFlags, lg *eventlog.Log) {
	if lg != g.held {
		lg.Close()
	}
}

// daemonEndpoint is what a running daemon leaves in the data directory.
type daemonEndpoint struct {
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
	// TLSPin: the daemon serves TLS with the certificate of this SHA-256,
	// which local commands accept and no other.
	TLSPin string `json:"tls_sha256,omitempty"`
}

// daemonHolds says a daemon has the data directory: the command asks the
// daemon (its typed API) instead.
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

// nameOrPath makes a storage argument absolute when it is a path (it has a
// separator, or a storage is in a directory of that name here); a storage
// name stays as it is. An
// operation's input holds it so, since the daemon may run it elsewhere.
func nameOrPath(v string) string {
	if strings.ContainsAny(v, `/\`) {
		if a, err := filepath.Abs(v); err == nil {
			return a
		}
	}
	if vault.Exists(v) { // as resolveStorage decides: a storage here wins over a name
		if a, err := filepath.Abs(v); err == nil {
			return a
		}
	}
	return v
}

func newDaemonCmd(g *globalFlags) *cobra.Command {
	var listen, retention, tlsCert, tlsKey string
	var hosts []string
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "daemon [--listen 127.0.0.1:7070] [--tls-cert F --tls-key F] [--host NAME] [--log-retention 90d|forever]",
		Short: "Run the backup jobs on their schedules, with a local API for the other commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger()
			if err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usageErr("--tls-cert and --tls-key go together")
			}
			if err := daemon.CheckListen(listen, tlsCert != ""); err != nil {
				return usageErr("--listen: %v", err)
			}
			var cert *tls.Certificate
			if tlsCert != "" {
				c, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return usageErr("--tls-cert/--tls-key: %v", err)
				}
				cert = &c
			}
			compaction := &logCompaction{g: g, log: logger.With().Str("component", "log-compaction").Logger()}
			if compaction.keep, err = parseDetailRetention(retention); err != nil {
				return usageErr("--log-retention: %v", err)
			}
			lg, err := openLogObserved(g, promexport.ObserveCommit)
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
			log := logger.With().Str("component", "daemon").Logger()
			daily := &dailySummary{g: g, lg: lg, log: log}
			runCycle := cycleRunner(g, lg)
			var cl *cluster.Cluster
			if cf.urls != "" {
				if cl, err = cf.connect(cmd.Context()); err != nil {
					return err
				}
				defer cl.Close()
				runCycle = clusterCycleRunner(g, lg, cl)
			}
			d := daemon.New(daemon.Config{Log: lg, Reports: metrics.Report, Histories: metrics.JobHistories, RunCycle: runCycle, NewRun: app.NewRunID,
				EveryTick: func(ctx context.Context, now time.Time, c *projections.Config) {
					daily.maybeSend(ctx, now, c)
					compaction.maybeRun(ctx, now, lg)
				}, Logger: log})
			// Commands the daemon runs (its API, operations, cycles) use
			// its open log and its job control: Badger lets one process
			// open the log, and this is it.
			g.held, g.daemon = lg, d
			ep, _ := json.Marshal(daemonEndpoint{Addr: daemon.LocalAddr(ln.Addr()), PID: os.Getpid(), TLSPin: daemon.CertPin(cert)})
			if err := os.WriteFile(filepath.Join(g.data, "daemon.json"), ep, 0o600); err != nil {
				return &exitError{code: exitErrors, err: err}
			}
			defer os.Remove(filepath.Join(g.data, "daemon.json"))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			handler := daemon.HostGuard(daemon.AllowedHosts(listen, cert, hosts), api(ctx, g, lg, d, metrics, token, cert != nil))
			srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
			if cert != nil {
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
				go srv.ServeTLS(ln, "", "")
			} else {
				go srv.Serve(ln)
			}
			log.Info().Str("listen", ln.Addr().String()).Msg("daemon running")
			fmt.Fprintf(cmd.OutOrStdout(), "mailvault daemon: listening on %s, data %s\n", ln.Addr(), abs)
			if err := d.Restore(); err != nil {
				log.Error().Err(err).Msg("read the jobs' configuration and history")
			}
			if cl != nil {
				w := &clusterWorker{g: g, lg: lg, c: cl, name: cf.name, slots: max(1, cf.workers), log: logger.With().Str("component", "cluster-worker").Logger()}
				tasks, err := w.start(ctx)
				if err != nil {
					return &exitError{code: exitErrors, err: err}
				}
				defer w.wg.Wait()
				defer tasks.Close()
				log.Info().Str("cluster", cluster.Redacted(cf.urls)).Str("worker", cf.name).Dur("ack_wait", cl.AckWait()).Msg("cluster worker running")
			}
			// At the end, cycles stop at a checkpoint: they see their
			// context end and finish what is in flight; give them 10 s.
			if !d.Run(ctx, time.Second, 10*time.Second) {
				log.Warn().Msg("cycles did not stop within 10 s; leaving them to resume next start")
			}
			compaction.wait()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "address of the API and dashboard: loopback, or any with --tls-cert and --tls-key")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; its chain after it); needed beyond loopback")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "the certificate's private key (PEM)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "a name browsers reach the daemon by, accepted in the Host header besides loopback's and the certificate's (repeatable)")
	cf.register(cmd.Flags(), true)
	cmd.Flags().StringVar(&retention, "log-retention", domain.DefaultDetailRetention.String(),
		"keep backup runs' per-request detail in the event log this long, then compact it once a day (as 90d, 12w, 1y; 0: none; forever: never compact)")
	return cmd
}

// logCompaction is the daemon's retention policy for the event log: once a
// day, in the background, runs older than the retention period are reduced
// to their summaries (see 'mailvault log compact').
type logCompaction struct {
	g    *globalFlags
	keep *domain.Period // nil: keep everything
	log  zerolog.Logger
	last time.Time
	wg   sync.WaitGroup
	busy atomic.Bool
}

func (c *logCompaction) maybeRun(ctx context.Context, now time.Time, lg *eventlog.Log) {
	if c.keep == nil || now.Sub(c.last) < 24*time.Hour || !c.busy.CompareAndSwap(false, true) {
		return
	}
	c.last = now
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.busy.Store(false)
		res, err := newService(c.g, lg).CompactLog(ctx, *c.keep, now)
		if err != nil {
			c.log.Warn().Err(err).Msg("compaction of the event log did not finish; the next one continues it")
			return
		}
		if res.Events > 0 {
			c.log.Info().Int("runs", len(res.Runs)).Int("events_removed", res.Events).Int64("bytes_before", res.SizeBefore).
				Int64("bytes_after", res.SizeAfter).Str("retention", res.Retention).Msg("event log compacted")
		}
	}()
}

// wait lets a compaction under way reach a checkpoint before the log closes.
func (c *logCompaction) wait() { c.wg.Wait() }

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

// api is the daemon's HTTP surface: the application's typed API, the
// operations, the metrics and the dashboard.
func api(ctx context.Context, g *globalFlags, lg *eventlog.Log, d *daemon.Daemon, metrics *projections.Metrics, token string, secure bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promexport.Handler(promexport.Collector{Snapshot: metrics.Snapshot, LogSize: lg.Size, JobsRunning: d.Running, Jobs: metrics.JobHistories}))
	daemon.RegisterAPI(mux, newService(g, lg))
	serveOperations(mux, ctx, g)
	web := dashboard.New(dashboardBackend{svc: newService(g, lg), lg: lg, metrics: metrics, restores: newConsoleRestores(ctx)}, token)
	web.Secure = secure
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" {
			web.ServeHTTP(w, r) // the dashboard: its own login and session cookie
			return
		}
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailvault"`)
			http.Error(w, "the request needs the daemon's API token (DATA/daemon.token)", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cycleRunner runs a daemon job's cycle through the application: the
// job's connection and storage as configured, the backup the backup
// command runs.
func cycleRunner(g *globalFlags, lg *eventlog.Log) daemon.CycleRunner {
	return func(ctx context.Context, name string, job domain.Job, run string) (domain.RunState, error) {
		rep, err := newService(g, lg).RunJobCycle(ctx, name, job, run)
		if err != nil {
			return domain.StateNotFinished, err
		}
		return rep.State, nil
	}
}

// clusterCycleRunner runs a job's cycle over the cluster: this daemon
// coordinates it (a task per mailbox), the cluster's workers back the
// mailboxes up.
func clusterCycleRunner(g *globalFlags, lg *eventlog.Log, c *cluster.Cluster) daemon.CycleRunner {
	return func(ctx context.Context, name string, job domain.Job, _ string) (domain.RunState, error) {
		rep, err := coordinate(ctx, newService(g, lg), c, name, job)
		if err != nil {
			return domain.StateNotFinished, err
		}
		return domain.RunState(rep.State), nil
	}
}

// dailySummary mails the last 24 hours' runs once a day, at the time the
// alert settings name. Whether today's went out is in the log, so a restart
// does not send it twice.
type dailySummary struct {
	g   *globalFlags
	lg  *eventlog.Log
	log zerolog.Logger
	// tried is when the summary was last attempted.
	tried time.Time
}

// maybeSend runs at every tick with the configuration the tick read; the
// SMTP password is read only when a summary is due.
func (d *dailySummary) maybeSend(ctx context.Context, now time.Time, c *projections.Config) {
	settings, ok, err := app.AlertSettingsIn(c)
	if err != nil || !ok {
		return
	}
	day, due := settings.DailyDue(now)
	if !due {
		return
	}
	if sent, err := d.lg.Has(domain.TopicOps, domain.DeriveID("alert", "daily", day)); err != nil || sent {
		return
	}
	if now.Sub(d.tried) < 15*time.Minute {
		return // a failed send is tried again a quarter of an hour later, not every tick
	}
	d.tried = now
	m, ok, err := loadMailer(newService(d.g, d.lg))
	if err != nil || !ok {
		return
	}
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
