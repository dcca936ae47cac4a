package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

func (g *globalFlags) logger() (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(g.logLevel)
	if err != nil {
		return zerolog.Nop(), usageErr("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	// Colour only on a terminal: escape codes in a file or a journal are noise.
	var w io.Writer = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(os.Stderr) || os.Getenv("NO_COLOR") != ""}
	if g.logJSON {
		w = os.Stderr
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("component", "mailvault").Logger(), nil
}

// openLog opens the event log of the data directory with the resume index.
func openLog(g *globalFlags) (*eventlog.Log, error) { return openLogObserved(g, nil) }

// openLogObserved is openLog telling onCommit how long each commit took.
func openLogObserved(g *globalFlags, onCommit func(time.Duration, int)) (*eventlog.Log, error) {
	data := g.data
	dir := filepath.Join(data, "log")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &exitError{code: exitErrors, err: fmt.Errorf("create data directory %s: %w", data, err)}
	}
	if g.held != nil {
		return g.held, nil // inside the daemon
	}
	l, err := eventlog.Open(eventlog.Options{Dir: dir, Hooks: []eventlog.Hook{projections.ResumeHook}, OnCommit: onCommit})
	if errors.Is(err, eventlog.ErrLocked) {
		if dh := findDaemon(data); dh != nil {
			return nil, dh
		}
		return nil, &exitError{code: exitErrors, err: fmt.Errorf("data directory %s is in use by another mailvault process (its event log is locked); wait for it to finish or use another --data", data)}
	}
	if err != nil {
		return nil, &exitError{code: exitErrors, err: fmt.Errorf("data directory %s: %w", data, err)}
	}
	return l, nil
}

// openExistingLog is openLog for read commands: a missing data directory is
// an error, not a reason to create one.
func openExistingLog(g *globalFlags) (*eventlog.Log, error) {
	data := g.data
	if _, err := os.Stat(filepath.Join(data, "log")); err != nil {
		return nil, &exitError{code: exitErrors, err: fmt.Errorf("no mailvault data in %s (run a backup first, or pass --data)", data)}
	}
	lg, err := openLog(g)
	if errors.Is(err, eventlog.ErrFull) {
		// Reading needs no room: open the log read-only.
		if lg, err = eventlog.Open(eventlog.Options{Dir: filepath.Join(data, "log"), ReadOnly: true}); err != nil {
			return nil, &exitError{code: exitErrors, err: fmt.Errorf("data directory %s: %w", data, err)}
		}
	}
	return lg, err
}

func newRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// runOptions are what a backup run needs from the command line.
type runOptions struct {
	source      pipeline.Source
	sourceName  string
	storageDir  string        // NAME or DIR from --storage; empty: DATA/storage
	access      storageAccess // the flags; validateRun reads key from them
	key         storageKey
	storage     *storageRef // set by the daemon, which resolved the job's storage
	cfg         pipeline.Config
	progress    string
	format      string
	timeFilter  string
	out, errOut io.Writer
}

// runBackup runs one backup into the data directory, shows progress, prints
// the report and maps the run state to the exit code.
func runBackup(ctx context.Context, g *globalFlags, o runOptions) error {
	state, err := backup(ctx, g, o)
	if err != nil {
		return err
	}
	if code := exitCodeFor(state); code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// backup runs one backup into the data directory, shows progress, prints
// the report, and says how the run ended: finished, or finished with
// warnings; a run that did not finish is an error saying why.
func backup(ctx context.Context, g *globalFlags, o runOptions) (domain.RunState, error) {
	logger, err := g.logger()
	if err != nil {
		return "", err
	}
	// A named storage is looked up in the configuration, which is in the
	// log: resolve it before the log is held for the run.
	ref := o.storage
	if ref == nil {
		r := storageRef{dir: filepath.Join(g.data, "storage"), create: true}
		if o.storageDir != "" {
			if r, err = resolveStorage(g, o.storageDir, o.key); err != nil {
				return "", err
			}
			r.create = r.password == nil && r.recovery == ""
		}
		ref = &r
	}
	lg, err := openLog(g)
	if err != nil {
		return "", err
	}
	defer releaseLog(g, lg)
	store, err := openStorage(*ref)
	if err != nil {
		return "", err
	}
	defer closeStorage(store)
	clock := pipeline.WallClock{}
	if o.cfg.Run == "" {
		o.cfg.Run = newRunID(clock.Now())
	}
	o.cfg.SourceName = o.sourceName
	// What is stored, each folder's cursor and change-tracking state, and
	// the quarantine belong to this storage and this source.
	o.cfg.StorageID = store.ID()
	o.cfg.Scope = projections.Scope(store.ID(), store.Generation(), o.sourceName)

	live := projections.NewReport(o.cfg.Run)
	var liveMu sync.Mutex
	stopObserving := lg.Observe(func(recs []eventlog.Record) {
		liveMu.Lock()
		defer liveMu.Unlock()
		for _, rec := range recs {
			if rec.Metadata[eventlog.MetaRun] != o.cfg.Run {
				continue
			}
			ev, err := projections.Decode(rec)
			if err == nil {
				live.Apply(&ev)
			}
		}
	})
	defer stopObserving()
	snapshot := func() *projections.Report {
		liveMu.Lock()
		defer liveMu.Unlock()
		return live.Live()
	}
	stopProgress := startProgress(o.progress, o.errOut, func() progressState {
		r := snapshot()
		return progressState{done: int64(r.ItemsStored + r.ItemsUnchanged + r.ItemsQuarantined), total: int64(r.ItemsScanned), bytes: r.BytesStored,
			detail: fmt.Sprintf("folders %d/%d  quarantined %d  throttled %d  parked %d  skipped %d", r.FoldersCompleted+r.FoldersSkipped, r.FoldersTotal,
				r.ItemsQuarantined, r.ThrottledRequests, r.Parked(), r.FoldersSkipped)}
	})

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	deps := pipeline.Deps{
		Publisher: lg.Publisher(),
		Subscriber: func(group string, n int) message.Subscriber {
			return lg.Subscriber(eventlog.SubscriberConfig{ConsumerGroup: group, MaxInFlight: n})
		},
		Source:  o.source,
		Storage: store,
		Resume:  projections.Resume{Log: lg, Scope: o.cfg.Scope},
		Dedup:   lg,
		Clock:   clock,
		Log:     logger,
	}
	state, runErr := pipeline.Run(ctx, deps, o.cfg)
	stopProgress()

	rep := snapshot()
	if err := writeRunLog(g.data, lg, o.cfg.Run); err != nil {
		logger.Error().Err(err).Str("run", o.cfg.Run).Msg("write the run's CSV log")
	}
	if err := writeReport(o.out, lg, rep, o.format); err != nil {
		return "", &exitError{code: exitErrors, err: err}
	}
	if !errors.Is(runErr, pipeline.ErrInterrupted) {
		alertRun(ctx, g, lg, logger, rep)
	}
	switch {
	case runErr != nil && !errors.Is(runErr, pipeline.ErrInterrupted):
		return "", &exitError{code: exitErrors, err: fmt.Errorf("run %s not finished: %w", o.cfg.Run, runErr)}
	case runErr != nil:
		return "", &exitError{code: exitErrors, err: fmt.Errorf("run %s interrupted; the next run continues where it stopped", o.cfg.Run)}
	case state == domain.StateNotFinished:
		return "", &exitError{code: exitErrors, err: fmt.Errorf("run %s not finished: %s", o.cfg.Run, strings.Join(append(rep.Errors, "see 'mailvault report "+o.cfg.Run+"'"), "; "))}
	}
	return state, nil
}

func writeReport(w io.Writer, lg *eventlog.Log, r *projections.Report, format string) error {
	switch format {
	case "json":
		return r.WriteJSON(w)
	case "csv":
		return projections.WriteRunCSV(w, lg, r.RunID)
	default:
		return r.WriteText(w)
	}
}

// writeRunLog writes DATA/logs/RUN.csv, the run's CSV log, from the log;
// replaced atomically, so a reader never sees half of it.
func writeRunLog(data string, lg *eventlog.Log, run string) error {
	dir := filepath.Join(data, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := projections.WriteRunCSV(tmp, lg, run); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, run+".csv"))
}

// listFormats are the formats of every list command.
var listFormats = []string{"text", "json"}

// writeList prints a list command's rows: a table with a header for
// people, or a JSON array (never null) of the items for scripts.
func writeList[T any](w io.Writer, format string, items []T, header []string, row func(T) []string) error {
	if format == "json" {
		if items == nil {
			items = []T{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(items)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, it := range items {
		fmt.Fprintln(tw, strings.Join(row(it), "\t"))
	}
	return tw.Flush()
}

func checkFormat(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return usageErr("--format %q: use %s", format, strings.Join(allowed, ", "))
}
