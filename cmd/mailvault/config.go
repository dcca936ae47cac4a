package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
)

// connectionSpec is a connection's recorded definition: the application's.
type connectionSpec = app.ConnectionSpec

func actor() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// secretStore is the data directory's secret store, under the key from
// outside the directory when one is given (--secrets-key-file,
// $MAILVAULT_SECRETS_KEY_FILE, $MAILVAULT_SECRETS_KEY or the systemd
// credential mailvault-secrets-key). A key that cannot be read fails every
// use of a secret with the reason, not the commands that need none.
func secretStore(g *globalFlags) app.Secrets {
	key, err := credential.FindKey(g.secretsKeyFile, os.Getenv)
	if err != nil {
		return unavailableSecrets{err}
	}
	st := credential.NewStore(filepath.Join(g.data, "secrets"), key)
	// Once per process: the daemon opens the store for every operation.
	g.secretsWarned.Do(func() {
		warn(st.KeyFileWarning())
		if key.Given() && insideDir(key.From(), g.data) {
			warn(fmt.Errorf("the secrets key %s is inside the data directory %s: a copy of the directory decrypts the secrets; keep it elsewhere", key.From(), g.data))
		}
	})
	return st
}

// insideDir tells whether path (a file; a variable's name is none) lies
// under dir.
func insideDir(path, dir string) bool {
	if !filepath.IsAbs(path) && !strings.ContainsRune(path, filepath.Separator) {
		return false // an environment variable's name
	}
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// unavailableSecrets stands for a secret store whose key could not be read.
type unavailableSecrets struct{ err error }

func (u unavailableSecrets) Put(string, credential.Secret) error   { return u.err }
func (u unavailableSecrets) Get(string) (credential.Secret, error) { return credential.Secret{}, u.err }
func (u unavailableSecrets) Delete(string) error                   { return u.err }

// loadSecret reads a secret from its file or environment variable, warning
// when the file can be read by other users.
func loadSecret(what, file, envVar string) (credential.Secret, error) {
	s, err := credential.Load(what, file, envVar)
	if err == nil && file != "" {
		warn(credential.ModeWarning(file))
	}
	return s, err
}

// warn tells the user about a problem that does not stop the command.
func warn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
}

// connectionTestInput is the connection test operation's input.
type connectionTestInput struct {
	Name          string `json:"name"`
	Mailbox       string `json:"mailbox,omitempty"`
	PublicFolders bool   `json:"public_folders,omitempty"`
}

var connectionTestOperation = operation("connection-test", func(ctx context.Context, g *globalFlags, in connectionTestInput, w, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		checks, err := s.TestConnection(ctx, in.Name, in.Mailbox, in.PublicFolders)
		if err != nil {
			return err
		}
		failed := false
		for _, c := range checks {
			switch {
			case c.Err == nil:
				fmt.Fprintf(w, "ok      %s\n", c.What)
			case c.Optional:
				fmt.Fprintf(w, "warning %s: %v (needs %s)\n", c.What, c.Err, c.Permission)
			case c.Permission != "":
				failed = true
				fmt.Fprintf(w, "FAILED  %s: %v (needs the application permission %s, with admin consent)\n", c.What, c.Err, c.Permission)
			default:
				failed = true
				fmt.Fprintf(w, "FAILED  %s: %v\n", c.What, c.Err)
			}
		}
		if failed {
			return &exitError{code: exitErrors, err: fmt.Errorf("connection %s is not ready for backups", in.Name)}
		}
		return nil
	})
})

func newConnectionCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "connection", Short: "Named server connections (Graph or EWS); secrets are stored encrypted"}
	var typ string
	var gf graphFlags
	var ef ewsFlags
	add := &cobra.Command{Use: "add NAME --type graph|ews ...", Short: "Add a connection", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var spec connectionSpec
			var secret credential.Secret
			var err error
			switch typ {
			case "graph":
				spec, secret, err = gf.spec()
			case "ews":
				spec, secret, err = ef.spec(gf.caCert)
			default:
				return appExit(g, connectionSpec{Type: typ}.Validate(args[0]))
			}
			if err != nil {
				return err
			}
			return withApp(g, func(s application) error { return s.AddConnection(cmd.Context(), args[0], spec, secret) })
		}}
	add.Flags().StringVar(&typ, "type", "", "graph (Exchange Online) or ews (Exchange Server)")
	gf.register(add)
	ef.register(add)
	var etyp string
	var egf graphFlags
	var eef ewsFlags
	editCmd := &cobra.Command{Use: "edit NAME --type graph|ews ...", Short: "Replace a connection's settings (the same flags as add; without a secret flag the stored secret stays)",
		Long: `Replace a connection's settings with the ones given (the same flags as add). Without
--client-secret-file/--client-secret-env (graph) or --password-file/--password-env (ews)
the stored secret stays. Jobs using the connection read the new settings at their next
cycle; another tenant or EWS endpoint is another server to them: their next backup lists
everything again (nothing is stored twice).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var spec connectionSpec
			var secret credential.Secret
			var err error
			switch {
			case etyp == "graph" && egf.givesSecret():
				spec, secret, err = egf.spec()
			case etyp == "graph":
				spec, err = egf.settings() // the stored secret stays
			case etyp == "ews" && eef.givesSecret():
				spec, secret, err = eef.spec(egf.caCert)
			case etyp == "ews":
				spec, err = eef.settings(egf.caCert)
			default:
				return appExit(g, connectionSpec{Type: etyp}.Validate(args[0]))
			}
			if err != nil {
				return err
			}
			return withApp(g, func(s application) error { return s.EditConnection(cmd.Context(), args[0], spec, secret) })
		}}
	editCmd.Flags().StringVar(&etyp, "type", "", "graph (Exchange Online) or ews (Exchange Server)")
	egf.register(editCmd)
	eef.register(editCmd)
	var listFormat string
	list := &cobra.Command{Use: "list", Short: "List connections (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(listFormat, listFormats...); err != nil {
				return err
			}
			return withApp(g, func(s application) error {
				type connectionRow struct {
					Name     string `json:"name"`
					Type     string `json:"type"`
					TenantID string `json:"tenant_id,omitempty"`
					EWSURL   string `json:"ews_url,omitempty"`
					Username string `json:"username,omitempty"`
					Secret   string `json:"secret"`
				}
				conns, err := s.Connections(cmd.Context())
				if err != nil {
					return err
				}
				var rows []connectionRow
				for _, c := range conns {
					rows = append(rows, connectionRow{Name: c.Name, Type: c.Type, TenantID: c.TenantID, EWSURL: c.EWSURL, Username: c.Username, Secret: "stored encrypted"})
				}
				return writeList(cmd.OutOrStdout(), listFormat, rows, []string{"NAME", "TYPE", "TARGET", "SECRET"}, func(r connectionRow) []string {
					target := r.TenantID
					if r.Type == "ews" {
						target = r.EWSURL + " as " + r.Username
					}
					return []string{r.Name, r.Type, target, r.Secret}
				})
			})
		}}
	list.Flags().StringVar(&listFormat, "format", "text", "output format: text or json")
	remove := &cobra.Command{Use: "remove NAME", Short: "Remove a connection and its stored secret", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(g, func(s application) error { return s.RemoveConnection(cmd.Context(), args[0]) })
		}}
	var tin connectionTestInput
	test := &cobra.Command{Use: "test NAME [--mailbox ADDR]", Short: "Check a connection's credentials and permissions against the server", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tin.Name = args[0]
			return connectionTestOperation(cmd, g, tin)
		}}
	test.Flags().StringVar(&tin.Mailbox, "mailbox", "", "mailbox to test with (graph: default the first user)")
	test.Flags().BoolVar(&tin.PublicFolders, "public-folders", false, "also test access to the public folders (ews)")
	cmd.AddCommand(add, editCmd, list, remove, test)
	return cmd
}

// jobFlags set a job's fields from the command line; only flags given
// change a spec, so job edit NAME --idle 00:05:00 changes the idle time only.
type jobFlags struct {
	connection, storage          string
	mailboxes, excludes, publics []string
	allMailboxes, oneTime        bool
	idle, pattern, from, to      string
	weekdays                     []string
	monthDays                    []int
	periods                      []string
	startDate, endDate, zone     string
	timeFilter                   string
	keepContacts                 bool
	excludeFolders               []string
	archives                     bool
}

func (f *jobFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.connection, "connection", "", "connection name")
	fl.StringVar(&f.storage, "storage", "", "storage name")
	fl.StringArrayVar(&f.mailboxes, "mailbox", nil, "mailbox to back up (repeatable)")
	fl.BoolVar(&f.allMailboxes, "all-mailboxes", false, "every mailbox of the connection")
	fl.StringArrayVar(&f.excludes, "exclude-mailbox", nil, "with --all-mailboxes, leave this one out (repeatable)")
	fl.StringArrayVar(&f.publics, "public-folder", nil, "public folder path, PATH/** with subfolders (repeatable)")
	fl.BoolVar(&f.archives, "archives", false, "also back up each mailbox's archive, as ADDRESS (archive)")
	fl.BoolVar(&f.oneTime, "one-time", false, "one cycle per activity period instead of continuous cycles")
	fl.StringVar(&f.idle, "idle", "", "idle time between cycles, hh:mm:ss (default 00:01:00)")
	fl.StringVar(&f.pattern, "pattern", "", "activity pattern: custom, daily, weekly, monthly (default: none, started by hand)")
	fl.StringVar(&f.from, "from", "", "start of the daily window, hh:mm (default all day)")
	fl.StringVar(&f.to, "to", "", "end of the daily window, hh:mm")
	fl.StringSliceVar(&f.weekdays, "weekdays", nil, "days of the week for --pattern weekly (mon,wed,...)")
	fl.IntSliceVar(&f.monthDays, "month-days", nil, "days of the month for --pattern monthly (1,15,...)")
	fl.StringArrayVar(&f.periods, "period", nil, `custom period "YYYY-MM-DD hh:mm/YYYY-MM-DD hh:mm" (repeatable)`)
	fl.StringVar(&f.startDate, "start-date", "", "first day of activity, YYYY-MM-DD")
	fl.StringVar(&f.endDate, "end-date", "", "last day of activity, YYYY-MM-DD (default no end date)")
	fl.StringVar(&f.zone, "time-zone", "", "time zone of the schedule, e.g. Europe/Berlin (default UTC)")
	fl.StringVar(&f.timeFilter, "time-filter", "", "all, older:N:UNIT or not_older:N:UNIT")
	fl.BoolVar(&f.keepContacts, "keep-contacts", false, "keep every contact whatever its age")
	fl.StringArrayVar(&f.excludeFolders, "exclude-folder", nil, "special folder to leave out, by well-known name (repeatable)")
}

func (f *jobFlags) apply(cmd *cobra.Command, s *jobspec.Spec) error {
	ch := cmd.Flags().Changed
	set := func(name string, fn func()) {
		if ch(name) {
			fn()
		}
	}
	set("connection", func() { s.Connection = f.connection })
	set("storage", func() { s.Storage = f.storage })
	set("mailbox", func() { s.Mailboxes = f.mailboxes })
	set("all-mailboxes", func() { s.AllMailboxes = f.allMailboxes })
	set("exclude-mailbox", func() { s.ExcludeMailboxes = f.excludes })
	set("public-folder", func() { s.PublicFolders = f.publics })
	set("archives", func() { s.Archives = f.archives })
	set("one-time", func() {
		s.Continuity = "continuous"
		if f.oneTime {
			s.Continuity, s.Idle = "one-time", ""
		}
	})
	set("idle", func() { s.Idle = f.idle })
	set("exclude-folder", func() { s.ExcludeFolders = f.excludeFolders })
	scheduleFlags := []string{"pattern", "from", "to", "weekdays", "month-days", "period", "start-date", "end-date", "time-zone"}
	for _, n := range scheduleFlags {
		if ch(n) && s.Schedule == nil {
			s.Schedule = &jobspec.Schedule{TimeZone: "UTC"}
		}
	}
	if sc := s.Schedule; sc != nil {
		set("pattern", func() { sc.Pattern = f.pattern })
		set("from", func() { sc.From = f.from })
		set("to", func() { sc.To = f.to })
		set("weekdays", func() { sc.Weekdays = f.weekdays })
		set("month-days", func() { sc.MonthDays = f.monthDays })
		set("start-date", func() { sc.StartDate = f.startDate })
		set("end-date", func() { sc.EndDate = f.endDate })
		set("time-zone", func() { sc.TimeZone = f.zone })
		if ch("period") {
			sc.Periods = nil
			for _, p := range f.periods {
				a, b, ok := strings.Cut(p, "/")
				if !ok {
					return usageErr("--period %q: use \"YYYY-MM-DD hh:mm/YYYY-MM-DD hh:mm\"", p)
				}
				sc.Periods = append(sc.Periods, jobspec.Period{Start: strings.TrimSpace(a), End: strings.TrimSpace(b)})
			}
		}
		if sc.Pattern == "" {
			return usageErr("schedule flags need --pattern custom, daily, weekly or monthly")
		}
		if sc.Pattern != domain.PatternCustom && sc.StartDate == "" {
			sc.StartDate = time.Now().UTC().Format(time.DateOnly)
		}
	}
	if ch("time-filter") || ch("keep-contacts") {
		if s.TimeFilter == nil {
			s.TimeFilter = &jobspec.Age{Mode: domain.AgeAll}
		}
		if ch("time-filter") {
			parts := strings.Split(f.timeFilter, ":")
			switch {
			case f.timeFilter == domain.AgeAll:
				*s.TimeFilter = jobspec.Age{Mode: domain.AgeAll}
			case len(parts) == 3:
				n, err := strconv.Atoi(parts[1])
				if err != nil {
					return usageErr("--time-filter %q: %q is not a number", f.timeFilter, parts[1])
				}
				s.TimeFilter.Mode, s.TimeFilter.N, s.TimeFilter.Unit = parts[0], n, parts[2]
			default:
				return usageErr("--time-filter %q: use all, older:N:UNIT or not_older:N:UNIT", f.timeFilter)
			}
		}
		set("keep-contacts", func() { s.TimeFilter.KeepContacts = f.keepContacts })
	}
	return nil
}

func newJobCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Backup jobs: define once, the daemon runs them"}
	var file string
	var jf jobFlags
	// save validates a spec, its references and its name, then records it.
	save := func(cmd *cobra.Command, spec jobspec.Spec, editing bool) error {
		return withApp(g, func(s application) error {
			if editing {
				return s.EditJob(cmd.Context(), spec)
			}
			return s.CreateJob(cmd.Context(), spec)
		})
	}
	readSpec := func() (jobspec.Spec, error) {
		var b []byte
		var err error
		if file == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			return jobspec.Spec{}, usageErr("read the job file: %v", err)
		}
		s, err := jobspec.Parse(b)
		if err != nil {
			return s, usageErr("%s:%v", file, err)
		}
		return s, nil
	}
	create := &cobra.Command{Use: "create (NAME --connection C --storage S [flags] | -f job.yaml)", Short: "Define a backup job from flags or a YAML file", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s jobspec.Spec
			switch {
			case file != "" && len(args) > 0:
				return usageErr("give a job name with flags, or -f job.yaml, not both")
			case file != "":
				var err error
				if s, err = readSpec(); err != nil {
					return err
				}
			case len(args) == 1:
				s = jobspec.Spec{Name: args[0], Continuity: "continuous"}
			default:
				return usageErr("job create needs a NAME and flags, or -f job.yaml (see the README)")
			}
			if err := jf.apply(cmd, &s); err != nil {
				return err
			}
			return save(cmd, s, false)
		}}
	create.Flags().StringVarP(&file, "file", "f", "", "job definition (YAML; - for standard input)")
	jf.register(create)
	edit := &cobra.Command{Use: "edit NAME (-f job.yaml | flags)", Short: "Change a job's definition", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s jobspec.Spec
			if file != "" {
				var err error
				if s, err = readSpec(); err != nil {
					return err
				}
				if s.Name != args[0] {
					return usageErr("the file defines job %q, not %q (a job is renamed by delete and create)", s.Name, args[0])
				}
			} else if err := withApp(g, func(svc application) (err error) {
				s, err = svc.JobSpec(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if err := jf.apply(cmd, &s); err != nil {
				return err
			}
			return save(cmd, s, true)
		}}
	edit.Flags().StringVarP(&file, "file", "f", "", "job definition (YAML; - for standard input)")
	edit.Flags().AddFlagSet(create.Flags())
	var format string
	show := &cobra.Command{Use: "show NAME", Short: "Show a job's definition", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, "yaml", "json"); err != nil {
				return err
			}
			return withApp(g, func(svc application) error {
				s, err := svc.JobSpec(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if format == "json" {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(s)
				}
				b, err := s.YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			})
		}}
	show.Flags().StringVar(&format, "format", "yaml", "yaml or json")
	var listFormat string
	list := &cobra.Command{Use: "list", Short: "List jobs, with their state while the daemon runs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(listFormat, listFormats...); err != nil {
				return err
			}
			show := func(jobs []app.Job) error {
				return writeList(cmd.OutOrStdout(), listFormat, jobs,
					[]string{"NAME", "CONTINUITY", "SCHEDULE", "CONNECTION", "STORAGE", "STATE", "CYCLES", "STORED", "SCANNED", "RESTORED", "ITEMS/S", "LAST CYCLE (UTC)", "NEXT CYCLE (UTC)"},
					jobCells)
			}
			return withApp(g, func(s application) error {
				jobs, err := s.ListJobs(cmd.Context())
				if err != nil {
					return err
				}
				return show(jobs)
			})
		}}
	list.Flags().StringVar(&listFormat, "format", "text", "output format: text or json")
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a job (its backups stay in the storage)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(g, func(s application) error { return s.DeleteJob(cmd.Context(), args[0]) })
		}}
	startStop := func(verb string) *cobra.Command {
		return &cobra.Command{Use: verb + " NAME", Short: strings.ToUpper(verb[:1]) + verb[1:] + " a job (the daemon runs it)", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				done := map[string]string{"start": "started", "stop": "stopped"}[verb]
				report := func(err error) error {
					if err == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "job %s %s\n", args[0], done)
					}
					return err
				}
				return withApp(g, func(s application) error {
					do := s.StartJob
					if verb == "stop" {
						do = s.StopJob
					}
					return report(do(cmd.Context(), args[0]))
				})
			}}
	}
	cmd.AddCommand(create, edit, show, list, del, startStop("start"), startStop("stop"))
	return cmd
}

// jobCells is one row of job list.
func jobCells(r app.Job) []string {
	when := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.UTC().Format(time.DateTime)
	}
	if r.State == app.StateNoDaemon {
		return []string{r.Name, r.Continuity, r.Schedule, r.Connection, r.Storage, r.State, "-", "-", "-", strconv.Itoa(r.ItemsRestored), "-", "-", "-"}
	}
	return []string{r.Name, r.Continuity, r.Schedule, r.Connection, r.Storage, r.State, strconv.Itoa(r.Cycles), strconv.Itoa(r.ItemsStored),
		strconv.Itoa(r.ItemsScanned), strconv.Itoa(r.ItemsRestored), fmt.Sprintf("%.1f", r.ItemsPerS), when(r.LastCycle, "never"), when(r.NextCycle, "-")}
}
