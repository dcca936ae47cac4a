package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/internal/app"
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

// runOptions are what a backup run needs from the command line.
type runOptions struct {
	source      pipeline.Source
	sourceName  string
	storageDir  string        // NAME or DIR from --storage; empty: DATA/storage
	access      storageAccess // the flags; validateRun reads key from them
	key         app.StorageKey
	cfg         pipeline.Config
	progress    string
	format      string
	timeFilter  string
	out, errOut io.Writer
}

// runBackup runs one backup into the data directory, shows progress, prints
// the report and maps how the run ended to the exit code.
func runBackup(ctx context.Context, g *globalFlags, o runOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return withService(g, func(s *app.Service) error {
		run := app.BackupRun{Source: o.source, SourceName: o.sourceName, Config: o.cfg,
			Watch: func(live func() *projections.Report) func() {
				return startProgress(o.progress, o.errOut, func() progressState {
					r := live()
					return progressState{done: int64(r.ItemsStored + r.ItemsUnchanged + r.ItemsQuarantined), total: int64(r.ItemsScanned), bytes: r.BytesStored,
						detail: fmt.Sprintf("folders %d/%d  quarantined %d  throttled %d  parked %d  skipped %d", r.FoldersCompleted+r.FoldersSkipped, r.FoldersTotal,
							r.ItemsQuarantined, r.ThrottledRequests, r.Parked(), r.FoldersSkipped)}
				})
			}}
		if o.storageDir != "" {
			run.Storage = &app.StorageRef{Storage: o.storageDir, Key: o.key}
		}
		rep, runErr := s.Backup(ctx, run)
		if rep != nil {
			if err := writeReport(o.out, s, rep, o.format); err != nil {
				return &exitError{code: exitErrors, err: err}
			}
		}
		if runErr != nil {
			return runErr
		}
		if code := exitCodeFor(rep.State); code != exitOK {
			return &exitError{code: code}
		}
		return nil
	})
}

// runReporter writes what is kept about a backup run outside the log: the
// run's CSV file, and the alert mail.
type runReporter struct {
	g   *globalFlags
	lg  *eventlog.Log
	log zerolog.Logger
}

func (r runReporter) RunEnded(ctx context.Context, rep *projections.Report, interrupted bool) {
	if err := writeRunLog(r.g.data, r.lg, rep.RunID); err != nil {
		r.log.Error().Err(err).Str("run", rep.RunID).Msg("write the run's CSV log")
	}
	if !interrupted {
		alertRun(ctx, r.g, r.lg, r.log, rep)
	}
}

func writeReport(w io.Writer, s *app.Service, r *projections.Report, format string) error {
	switch format {
	case "json":
		return r.WriteJSON(w)
	case "csv":
		return s.RunCSV(context.Background(), r.RunID, w)
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
