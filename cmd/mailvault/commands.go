package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/connect"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// addRunFlags registers the engine settings shared by backup and demo.
func addRunFlags(cmd *cobra.Command, cfg *pipeline.Config, o *runOptions) {
	f := cmd.Flags()
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "items per fetch request")
	f.DurationVar(&cfg.ThrottlePatience, "throttle-patience", cfg.ThrottlePatience, "longest wait for throttled folders before the run ends and they continue next run")
	f.DurationVar(&cfg.QuarantineRetry, "quarantine-retry", cfg.QuarantineRetry, "retry each quarantined item alone at most this often")
	f.IntVar(&cfg.Limits.MaxInFlight, "max-in-flight", cfg.Limits.MaxInFlight, "requests in flight per mailbox")
	f.IntVar(&cfg.Limits.WindowRequests, "window-requests", cfg.Limits.WindowRequests, "requests per mailbox per --window")
	f.DurationVar(&cfg.Limits.Window, "window", cfg.Limits.Window, "length of the request window")
	f.IntVar(&cfg.Limits.AppMaxInFlight, "app-max-in-flight", 0, "requests in flight for the whole app, all mailboxes (0: no app limit)")
	f.IntVar(&cfg.Limits.AppWindowRequests, "app-window-requests", 0, "requests for the whole app per --app-window (0: no app limit)")
	f.DurationVar(&cfg.Limits.AppWindow, "app-window", time.Minute, "length of the app request window")
	f.IntVar(&cfg.FolderParallelism, "folder-parallelism", 0, "requests one folder may have out at once (0: the source's default: 4 for graph, 1 for sim)")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "requests in flight across all mailboxes")
	f.BoolVar(&cfg.Pace, "pace", cfg.Pace, "hold each mailbox's requests, and the app's, to the pace the server grants, found from its throttling (--pace=false: only the limits above)")
	f.StringVar(&o.timeFilter, "time-filter", "all", "back up items by age: all, older:N:UNIT or not_older:N:UNIT (UNIT days, weeks, months, years)")
	f.BoolVar(&cfg.TimeFilter.KeepContacts, "keep-contacts", false, "with --time-filter, keep every contact whatever its age")
	f.StringArrayVar(&cfg.FolderFilter.Exclude, "exclude-folder", nil, "leave out a special folder and its subfolders by well-known name (deleteditems, junkemail, drafts, sentitems, ...; repeatable)")
	f.StringArrayVar(&cfg.ExcludeMailboxes, "exclude-mailbox", nil, "leave out a mailbox (repeatable)")
	f.StringVar(&o.storageDir, "storage", "", "storage NAME (see mailvault storage add) or directory (default DATA/storage, created unencrypted)")
	o.access.register(f)
	f.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, plain lines otherwise), bar, plain, none")
	f.StringVar(&o.format, "format", "text", "report format: text, json, csv")
}

// Bounds of a run's settings.
const (
	maxBatchSize      = 10_000
	maxInFlight       = 1_024
	maxWindowRequests = 100_000_000
)

func validateRun(cfg *pipeline.Config, o *runOptions) error {
	switch {
	case cfg.BatchSize < 1:
		return usageErr("--batch-size must be at least 1")
	case cfg.ThrottlePatience < 0:
		return usageErr("--throttle-patience must not be negative")
	case cfg.QuarantineRetry < 0:
		return usageErr("--quarantine-retry must not be negative")
	case cfg.Limits.MaxInFlight < 1 || cfg.Limits.WindowRequests < 1 || cfg.Limits.Window <= 0:
		return usageErr("--max-in-flight and --window-requests must be at least 1 and --window positive")
	case cfg.Limits.AppMaxInFlight < 0 || cfg.Limits.AppWindowRequests < 0 || cfg.Limits.AppWindow <= 0:
		return usageErr("--app-max-in-flight and --app-window-requests must not be negative and --app-window must be positive")
	case cfg.FolderParallelism < 0:
		return usageErr("--folder-parallelism must not be negative")
	case cfg.Workers < 1:
		return usageErr("--workers must be at least 1")
	}
	// Upper bounds: each of these sizes goroutines, queues or requests, and
	// no server grants more (Graph: 4 concurrent requests per mailbox, EWS:
	// 27 connections per account by default).
	for _, b := range []struct {
		flag  string
		value int
		most  int
	}{
		{"--batch-size", cfg.BatchSize, maxBatchSize},
		{"--max-in-flight", cfg.Limits.MaxInFlight, maxInFlight},
		{"--app-max-in-flight", cfg.Limits.AppMaxInFlight, maxInFlight},
		{"--window-requests", cfg.Limits.WindowRequests, maxWindowRequests},
		{"--app-window-requests", cfg.Limits.AppWindowRequests, maxWindowRequests},
		{"--folder-parallelism", cfg.FolderParallelism, maxInFlight},
		{"--workers", cfg.Workers, maxInFlight},
	} {
		if b.value > b.most {
			return usageErr("%s %d: at most %d", b.flag, b.value, b.most)
		}
	}
	if o.timeFilter != "" && o.timeFilter != domain.AgeAll {
		parts := strings.Split(o.timeFilter, ":")
		if len(parts) != 3 {
			return usageErr("--time-filter %q: use all, older:N:UNIT or not_older:N:UNIT", o.timeFilter)
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			return usageErr("--time-filter %q: %q is not a number", o.timeFilter, parts[1])
		}
		cfg.TimeFilter.Mode, cfg.TimeFilter.N, cfg.TimeFilter.Unit = parts[0], n, parts[2]
	}
	if err := cfg.TimeFilter.Validate(); err != nil {
		return usageErr("--time-filter: %v", err)
	}
	if err := cfg.FolderFilter.Validate(); err != nil {
		return usageErr("--exclude-folder: %v", err)
	}
	if err := checkProgress(o.progress); err != nil {
		return err
	}
	var err error
	if o.key, err = o.access.key(); err != nil {
		return err
	}
	return checkFormat(o.format, "text", "json", "csv")
}

// backupInput is the backup operation's input: the source as the flags
// describe it (a tenant file, or a connection with its secret), the
// engine's settings and the storage.
type backupInput struct {
	Source        string          `json:"source"` // sim | graph | ews
	Tenant        string          `json:"tenant,omitempty"`
	Connection    connectionSpec  `json:"connection"`
	Secret        string          `json:"secret,omitempty"`
	Mailboxes     []string        `json:"mailboxes,omitempty"`
	PublicFolders []string        `json:"public_folders,omitempty"`
	Archives      bool            `json:"archives,omitempty"`
	Config        pipeline.Config `json:"config"`
	Storage       string          `json:"storage,omitempty"`
	Key           app.StorageKey  `json:"key"`
	Progress      string          `json:"progress"`
	Format        string          `json:"format"`
}

var backupOperation = operation("backup", func(ctx context.Context, g *globalFlags, in backupInput, out, errOut io.Writer) error {
	o := runOptions{cfg: in.Config, storageDir: in.Storage, key: in.Key, progress: in.Progress, format: in.Format, out: out, errOut: errOut}
	if in.Source == "sim" {
		if in.Archives {
			return usageErr("--archives reads archive mailboxes over Graph; a tenant file backed up in process has none")
		}
		t, err := simtenant.Load(in.Tenant)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		o.source, o.sourceName = simtenant.NewSource(t, nil), domain.SourceIdentity("sim", in.Tenant)
		return runBackup(ctx, g, o)
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	srv, err := connect.Connector{Log: log}.Open(ctx, "--source "+in.Source, in.Connection, credential.New(in.Secret), app.Scope{Mailboxes: in.Mailboxes, PublicFolders: in.PublicFolders, Archives: in.Archives})
	if err != nil {
		return appExit(g, err)
	}
	defer srv.Close()
	o.source, o.sourceName = srv.Source(), in.Connection.Identity()
	srv.Limit(&o.cfg)
	return runBackup(ctx, g, o)
})

func newBackupCmd(g *globalFlags) *cobra.Command {
	cfg := pipeline.DefaultConfig()
	o := runOptions{}
	var tenant, source string
	var gf graphFlags
	var ef ewsFlags
	cmd := &cobra.Command{
		Use:   "backup (--tenant FILE | --source graph --tenant-id T --client-id C --client-secret-file F | --source ews --ews-url URL --username U --password-file F)",
		Short: "Run one backup",
		Long: `Run one backup of every mailbox of the source into the storage.

Sources: sim (a tenant file served in process, --tenant FILE), graph
(Exchange Online through Microsoft Graph with an Entra app registration) and
ews (Exchange Server on premises, mailboxes and public folders).

Exit codes: 0 finished, 3 finished with warnings (quarantined items or
skipped folders), 1 not finished (errors), 2 usage or configuration error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateRun(&cfg, &o); err != nil {
				return err
			}
			if source == "" {
				source = "sim"
				switch {
				case gf.tenantID != "":
					source = "graph"
				case ef.url != "":
					source = "ews"
				}
			}
			in := backupInput{Source: source, Config: cfg, Storage: o.storageDir, Key: o.key, Format: o.format,
				Progress: progressFor(o.progress, cmd.ErrOrStderr()), Mailboxes: gf.mailboxes, PublicFolders: ef.publicFolders, Archives: gf.archives}
			if in.Storage != "" {
				in.Storage = nameOrPath(in.Storage)
			}
			var secret credential.Secret
			var err error
			switch source {
			case "sim":
				if tenant == "" {
					return usageErr("--tenant FILE is required for --source sim (for Exchange Online use --source graph)")
				}
				in.Tenant, _ = filepath.Abs(tenant)
			case "graph":
				in.Connection, secret, err = gf.spec()
			case "ews":
				in.Connection, secret, err = ef.spec(gf.caCert)
			default:
				return usageErr("--source %q: use sim, graph or ews", source)
			}
			if err != nil {
				return err
			}
			in.Secret = secret.Reveal()
			if in.Connection.CACert != "" {
				in.Connection.CACert, _ = filepath.Abs(in.Connection.CACert)
			}
			return backupOperation(cmd, g, in)
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "source: sim, graph or ews (default sim with --tenant, graph with --tenant-id, ews with --ews-url)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "simulated tenant file (YAML), for --source sim")
	gf.register(cmd)
	ef.register(cmd)
	addRunFlags(cmd, &cfg, &o)
	return cmd
}

func newDemoCmd(g *globalFlags) *cobra.Command {
	cfg := pipeline.DefaultConfig()
	o := runOptions{}
	var seed int64
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Back up a generated tenant over HTTPS through the Graph client (3 mailboxes, ~5,000 items, dirty items, a throttled calendar)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateRun(&cfg, &o); err != nil {
				return err
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			t := simtenant.Demo(seed)
			simDir, err := os.MkdirTemp("", "mailvault-demo-")
			if err != nil {
				return &exitError{code: exitErrors, err: err}
			}
			defer os.RemoveAll(simDir)
			src, sim, err := startDemoGraph(cmd.Context(), log, t, simDir)
			if err != nil {
				return &exitError{code: exitErrors, err: err}
			}
			defer sim.Close()
			o.source, o.sourceName = src, "graph:demo"
			o.cfg, o.out, o.errOut = cfg, cmd.OutOrStdout(), cmd.ErrOrStderr()
			out := cmd.OutOrStdout()
			w := bufio.NewWriter(out)
			w.WriteString("mailvault demo: the Graph simulator serves a tenant of 3 mailboxes (about 5,000 items,\n" +
				"a few dirty items, a throttled calendar) at " + sim.Endpoint.GraphURL + ";\n" +
				"mailvault backs it up over HTTPS through its Graph client into " + g.data + "\n\n")
			w.Flush()
			err = runBackup(cmd.Context(), g, o)
			var ee *exitError
			if err == nil || (errors.As(err, &ee) && ee.code == exitWarnings) {
				self := selfCommand()
				w.WriteString("\nThe dirty items were isolated and quarantined; every clean item is stored.\n" +
					"See every request with:   " + self + " replay last --data " + g.data + "\n" +
					"The report as JSON:       " + self + " report last --data " + g.data + " --format json\n")
				w.Flush()
				return nil
			}
			return err
		},
	}
	cmd.Flags().Int64Var(&seed, "seed", 7, "seed of the generated tenant")
	addRunFlags(cmd, &cfg, &o)
	return cmd
}

// readQuery is a command that reads the data directory's log and prints
// it in one of its formats. All of them are one operation, "read", so they
// run in the daemon as every operation does when it holds the log.
type readQuery struct {
	use, short string
	args       cobra.PositionalArgs
	formats    []string
	run        func(ctx context.Context, w io.Writer, s *app.Service, args []string, format string) error
}

// name is the query's command name.
func (q readQuery) name() string { return strings.Fields(q.use)[0] }

var readQueries = []readQuery{
	{use: "runs", short: "List runs, oldest first", args: cobra.NoArgs, formats: []string{"text", "json"},
		run: func(ctx context.Context, w io.Writer, s *app.Service, _ []string, format string) error {
			runs, restores, err := s.Runs(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return projections.WriteRunsJSON(w, runs) // backups; restores: report restore-... --format json
			}
			if err := projections.WriteRunsText(w, runs); err != nil {
				return err
			}
			if len(restores) > 0 {
				fmt.Fprintln(w, "\nRESTORE RUN\tSTATE\tSTARTED\tCREATED\tREPLACED\tSKIPPED\tFAILED")
				for _, r := range restores {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", r.RunID, r.State, r.Started.UTC().Format("2006-01-02 15:04:05"), r.Created, r.Replaced, r.Skipped, r.Failed)
				}
			}
			return nil
		}},
	{use: "replay RUN", short: "Show what happened in a run, from the log alone (RUN may be 'last')", args: cobra.ExactArgs(1),
		formats: []string{"text", "jsonl"},
		run: func(ctx context.Context, w io.Writer, s *app.Service, args []string, format string) error {
			rp := projections.NewReplay()
			err := s.Replay(ctx, args[0], func(ev *domain.Event) error {
				if format == "jsonl" {
					return projections.WriteJSONL(w, ev)
				}
				rp.Apply(ev)
				return nil
			})
			if err != nil || format == "jsonl" {
				return err
			}
			return rp.WriteText(w)
		}},
	{use: "report RUN", short: "Report on a run, rebuilt from the log (RUN may be 'last')", args: cobra.ExactArgs(1),
		formats: []string{"text", "json", "csv"},
		run: func(ctx context.Context, w io.Writer, s *app.Service, args []string, format string) error {
			if strings.HasPrefix(args[0], "restore-") {
				r, err := s.RestoreReport(ctx, args[0])
				switch {
				case err != nil:
					return err
				case format == "json":
					return r.WriteJSON(w)
				}
				return r.WriteText(w)
			}
			r, err := s.Report(ctx, args[0])
			if err != nil {
				return err
			}
			return writeReport(w, s, r, format)
		}},
	{use: "quarantine", short: "List the quarantined (dirty) items that backups leave out", args: cobra.NoArgs,
		formats: []string{"text", "json"},
		run: func(ctx context.Context, w io.Writer, s *app.Service, _ []string, format string) error {
			items, err := s.Quarantine(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return projections.WriteQuarantineJSON(w, items)
			}
			return projections.WriteQuarantineText(w, items)
		}},
}

// readInput is the read operation's input: which query, its arguments
// (run ids) and the format.
type readInput struct {
	Query  string   `json:"query"`
	Args   []string `json:"args,omitempty"`
	Format string   `json:"format"`
}

var readOperation = operation("read", func(ctx context.Context, g *globalFlags, in readInput, out, _ io.Writer) error {
	i := slices.IndexFunc(readQueries, func(q readQuery) bool { return q.name() == in.Query })
	if i < 0 {
		return usageErr("no query %q", in.Query)
	}
	q := readQueries[i]
	if err := checkFormat(in.Format, q.formats...); err != nil {
		return err
	}
	return withServiceOn(g, openExistingLog, func(s *app.Service) error {
		w := bufio.NewWriter(out)
		defer w.Flush()
		return q.run(ctx, w, s, in.Args, in.Format)
	})
})

// newReadCmd builds a read query's command.
func newReadCmd(g *globalFlags, q readQuery) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   q.use,
		Short: q.short,
		Args:  q.args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, q.formats...); err != nil {
				return err
			}
			return readOperation(cmd, g, readInput{Query: q.name(), Args: args, Format: format})
		},
	}
	cmd.Flags().StringVar(&format, "format", q.formats[0], "output format: "+strings.Join(q.formats, ", "))
	return cmd
}

// selfCommand is how the user can run mailvault again: the binary's name, or
// "go run ./cmd/mailvault" when it was started by go run (a temporary build).
func selfCommand() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./cmd/mailvault"
	}
	return "mailvault"
}
