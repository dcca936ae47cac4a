// Command mailvault backs up Exchange mailboxes into storage the customer owns.
package main

import (
	// Job schedules name time zones; a server without a zone database
	// still knows them.
	"sync"
	"syscall"
	"time"
	_ "time/tzdata"

	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/s3store"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/daemon"
)

// Exit codes are a contract: 0 finished, 3 finished with warnings, 1 not
// finished (errors), 2 usage or configuration error.
const (
	exitOK       = 0
	exitErrors   = 1
	exitUsage    = 2
	exitWarnings = 3
)

// exitCodeFor is the exit code of a command whose run ended in s.
func exitCodeFor(s domain.RunState) int {
	switch s {
	case domain.StateFinished:
		return exitOK
	case domain.StateWarnings:
		return exitWarnings
	}
	return exitErrors
}

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// defaultMemoryLimit is the soft heap limit when GOMEMLIMIT is not set. The
// embedded database's compactions allocate in bursts; a limit makes the
// garbage collector return that memory before the heap doubles, so a
// million-item mailbox backs up in a few hundred megabytes.
const defaultMemoryLimit = 160 << 20

func main() {
	vault.RegisterRemote(s3store.Kind, s3store.Open)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	root := newRootCmd()
	err := profiled(root.Execute)
	if err == nil {
		os.Exit(exitOK)
	}
	var dh *daemonHolds
	if errors.As(err, &dh) {
		// A command the daemon has no endpoint for (demo).
		fmt.Fprintf(os.Stderr, "mailvault: %v; stop it first, or use another --data\n", dh)
		os.Exit(exitErrors)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "mailvault:", ee.err)
			if hint := advice(ee.err); hint != "" {
				fmt.Fprintln(os.Stderr, "mailvault:", hint)
			}
		}
		os.Exit(ee.code)
	}
	// Anything else cobra returns is a flag or argument problem.
	fmt.Fprintln(os.Stderr, "mailvault:", err)
	os.Exit(exitUsage)
}

// profiled runs fn with a CPU profile written to the file
// MAILVAULT_CPUPROFILE names, and a heap profile rewritten every 10 s to
// the file MAILVAULT_MEMPROFILE names, when they name one: how the
// benchmarks' cost per item and memory are looked into
// (docs/BENCHMARKS.md).
func profiled(fn func() error) error {
	if heap := os.Getenv("MAILVAULT_MEMPROFILE"); heap != "" {
		go func() {
			for range time.Tick(10 * time.Second) {
				if f, err := os.Create(heap); err == nil {
					_ = pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
		}()
	}
	path := os.Getenv("MAILVAULT_CPUPROFILE")
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("MAILVAULT_CPUPROFILE: %w", err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("MAILVAULT_CPUPROFILE: %w", err)
	}
	defer pprof.StopCPUProfile()
	return fn()
}

type globalFlags struct {
	data     string
	logLevel string
	logJSON  bool
	// secretsKeyFile holds the secret store's key, outside the data
	// directory.
	secretsKeyFile string
	secretsWarned  sync.Once
	// In the daemon: its open log and its job control, which every
	// command it runs uses (nil elsewhere).
	held   *eventlog.Log
	daemon *daemon.Daemon
	// vaults are the storages this process has open: one pool per
	// process, since Badger allows one opener per directory.
	vaults *vault.Pool
	// running are the backup runs this process executes now.
	running *app.RunningRuns
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{vaults: &vault.Pool{}, running: &app.RunningRuns{}}
	root := &cobra.Command{
		Use:           "mailvault",
		Short:         "Back up Exchange Online and Exchange Server mailboxes into storage you own",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.data, "data", "./mailvault-data", "data directory (event log and default storage)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	root.PersistentFlags().BoolVar(&g.logJSON, "log-json", false, "write logs as JSON lines")
	root.PersistentFlags().StringVar(&g.secretsKeyFile, "secrets-key-file", "", "file holding the key of the stored secrets, kept outside the data directory (or $"+credential.KeyFileEnv+", $"+credential.KeyEnv+", systemd credential "+credential.KeyCredential+")")
	for _, q := range readQueries {
		cmd := newReadCmd(g, q)
		if q.name() == "quarantine" {
			addQuarantineRetry(g, cmd)
		}
		root.AddCommand(cmd)
	}
	root.AddCommand(newBackupCmd(g), newDemoCmd(g), newSimCmd(g),
		newStorageCmd(g), newConnectionCmd(g), newJobCmd(g), newDaemonCmd(g), newClusterCmd(g),
		newVerifyCmd(g), newRepairCmd(g), newLogCmd(g), newLsCmd(g), newFindCmd(g), newPruneCmd(g), newExportCmd(g), newRestoreCmd(g), newAlertsCmd(g), newVersionCmd())
	refuseUnknownSubcommands(root)
	return root
}

// advice says what to do about damage an error reports.
func advice(err error) string {
	var hinted interface{ Hint() string }
	switch {
	case errors.As(err, &hinted):
		return hinted.Hint() // the daemon's advice, for an operation it ran
	case errors.Is(err, eventlog.ErrDamaged):
		return "the event log cannot be trusted, so nothing more is written to it: 'mailvault repair log' keeps every record that reads and marks the rest (the storages are not affected)"
	case errors.Is(err, eventlog.ErrFull):
		return "nothing was lost: free space on that disk and run the command again; it continues where it stopped"
	case errors.Is(err, vault.ErrIndexDamaged), errors.Is(err, vault.ErrStorageDamaged):
		return "'mailvault verify STORAGE --read-data' shows what is affected; 'mailvault repair STORAGE' rebuilds what the packs hold and names what they do not"
	case errors.Is(err, syscall.EROFS):
		return "that place is read-only to mailvault. Under its systemd unit (docs/mailvault.service) the daemon, which runs storage add, export and restore, " +
			"writes only to its data directory, /srv/mailvault and /srv/mailvault-export: use one of them, or allow another place with 'systemctl edit mailvault' ([Service] ReadWritePaths=DIR)"
	}
	return ""
}
