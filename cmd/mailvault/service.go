package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/connect"
	"github.com/mailvault/mailvault/internal/daemon"
)

// withService runs fn with the application over the data directory's log:
// inside the daemon, with the daemon's job control.
func withService(g *globalFlags, fn func(s *app.Service) error) error {
	return withServiceOn(g, openLog, fn)
}

// withServiceOn is withService over a log opened by open: read queries
// open an existing log, read-only when its disk is full.
func withServiceOn(g *globalFlags, open func(*globalFlags) (*eventlog.Log, error), fn func(s *app.Service) error) error {
	if _, err := g.logger(); err != nil {
		return err
	}
	lg, err := open(g)
	if err != nil {
		return err
	}
	defer releaseLog(g, lg)
	return appExit(g, fn(newService(g, lg)))
}

// newService is the application over the data directory's log, wired to
// this process's adapters.
func newService(g *globalFlags, lg *eventlog.Log) *app.Service {
	logger, _ := g.logger()
	s := &app.Service{Log: lg, Secrets: secretStore(g), Storages: vaultStorages{}, Actor: actor(),
		Vaults: g.vaults, Running: g.running, Connector: connect.Connector{Log: logger}, DefaultStorage: filepath.Join(g.data, "storage"), Logger: logger,
		Reporter: runReporter{g: g, lg: lg, log: logger}}
	if g.daemon != nil {
		s.Jobs = g.daemon
	}
	return s
}

// appExit gives the application's typed errors their exit codes: a refused
// configuration change is a usage error (2), anything else did not finish (1).
func appExit(g *globalFlags, err error) error {
	var ce *domain.ConfigError
	var ee *exitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return err
	case errors.As(err, &ce):
		return &exitError{code: exitUsage, err: err}
	case errors.Is(err, app.ErrNoDaemon):
		return &exitError{code: exitErrors, err: fmt.Errorf("this needs the mailvault daemon: start it with mailvault daemon --data %s", g.data)}
	}
	return &exitError{code: exitErrors, err: err}
}

// vaultStorages provisions storages in directories: the application's
// Storages port over the vault.
type vaultStorages struct{}

func (vaultStorages) Provision(dir string, password []byte, opts app.StorageOptions) (bool, string, error) {
	var v *vault.Vault
	var recovery string
	var err error
	if opts.Remote != nil && !vault.Exists(dir) {
		held, err := vault.RemoteHoldsStorage(*opts.Remote)
		if err != nil {
			return false, "", err
		}
		if held {
			// Another machine's storage (or this one's, its directory
			// lost): attached, its index built from the packs.
			if err := vault.Attach(dir, *opts.Remote); err != nil {
				return false, "", err
			}
		}
	}
	if vault.Exists(dir) {
		if v, err = vault.Open(dir, password); err != nil {
			return false, "", err
		}
	} else if v, recovery, err = vault.Create(dir, vault.CreateOptions{Password: password, NoCompression: opts.NoCompression, Retention: opts.Retention, Remote: opts.Remote}); err != nil {
		return false, "", err
	}
	defer v.Close()
	return v.Encrypted(), recovery, nil
}

// application is what the configuration and job commands ask of
// mailvault: the application in this process, or, while a daemon holds the
// data directory, the same application in the daemon over its typed API.
type application interface {
	AddConnection(ctx context.Context, name string, spec app.ConnectionSpec, secret credential.Secret) error
	EditConnection(ctx context.Context, name string, spec app.ConnectionSpec, secret credential.Secret) error
	RemoveConnection(ctx context.Context, name string) error
	Connections(ctx context.Context) ([]app.Connection, error)
	AddStorage(ctx context.Context, in app.AddStorage) (recoveryKey string, err error)
	RemoveStorage(ctx context.Context, name string) error
	ListStorages(ctx context.Context) ([]app.Storage, error)
	CreateJob(ctx context.Context, spec jobspec.Spec) error
	EditJob(ctx context.Context, spec jobspec.Spec) error
	DeleteJob(ctx context.Context, name string) error
	JobSpec(ctx context.Context, name string) (jobspec.Spec, error)
	ListJobs(ctx context.Context) ([]app.Job, error)
	StartJob(ctx context.Context, name string) error
	StopJob(ctx context.Context, name string) error
	SetAlerts(ctx context.Context, settings domain.AlertSettings, password credential.Secret) error
	AlertsOff(ctx context.Context) error
	AlertSettings(ctx context.Context) (domain.AlertSettings, bool, error)
}

var (
	_ application = (*app.Service)(nil)
	_ application = daemon.Client{}
)

// withApp runs fn with the application: here, or in the daemon that holds
// the data directory.
func withApp(g *globalFlags, fn func(application) error) error {
	err := withService(g, func(s *app.Service) error { return fn(s) })
	var dh *daemonHolds
	if errors.As(err, &dh) {
		return appExit(g, fn(daemon.Client{Addr: dh.ep.Addr, Token: dh.token, TLSPin: dh.ep.TLSPin}))
	}
	return err
}
