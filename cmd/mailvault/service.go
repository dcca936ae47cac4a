package main

import (
	"errors"
	"fmt"

	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/daemon"
)

// withService runs fn with the application over the data directory's log:
// inside the daemon, with the daemon's job control.
func withService(g *globalFlags, fn func(s *app.Service) error) error {
	lg, err := openLog(g.data)
	if err != nil {
		return err
	}
	defer releaseLog(lg)
	return appExit(g, fn(newService(g, lg)))
}

func newService(g *globalFlags, lg app.Log) *app.Service {
	s := &app.Service{Log: lg, Secrets: secretStore(g), Storages: vaultStorages{}, Actor: actor()}
	shared.Lock()
	if d := shared.d; d != nil {
		s.Jobs = d
	}
	shared.Unlock()
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
	if vault.Exists(dir) {
		if v, err = vault.Open(dir, password); err != nil {
			return false, "", storageErrExit(err)
		}
	} else if v, recovery, err = vault.Create(dir, vault.CreateOptions{Password: password, NoCompression: opts.NoCompression, Retention: opts.Retention}); err != nil {
		return false, "", err
	}
	defer v.Close()
	return v.Encrypted(), recovery, nil
}

// withJobControl runs local in this process, or, when a daemon holds the
// data directory, remote against the daemon's typed API: job control is
// the daemon's.
func withJobControl(g *globalFlags, local func(*app.Service) error, remote func(daemon.Client) error) error {
	err := withService(g, local)
	var dh *daemonHolds
	if errors.As(err, &dh) {
		return appExit(g, remote(daemon.Client{Addr: dh.ep.Addr, Token: dh.token}))
	}
	return err
}
