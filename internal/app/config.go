package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// Connection is a configured connection as listed: never its secret.
type Connection struct {
	Name string `json:"name"`
	ConnectionSpec
}

// AddConnection records a connection and keeps its secret encrypted.
func (s *Service) AddConnection(ctx context.Context, name string, spec ConnectionSpec, secret credential.Secret) error {
	if err := spec.Validate(name); err != nil {
		return err
	}
	st, err := s.load()
	if err != nil {
		return err
	}
	if err := st.agg.AddConnection(name); err != nil {
		return err
	}
	if err := s.Secrets.Put(name, secret); err != nil {
		return fmt.Errorf("keep the connection's secret: %w", err)
	}
	return s.record(ctx, domain.ConnectionAdded, name, spec)
}

// EditConnection replaces a connection's settings; an empty secret keeps
// the stored one. Jobs using it read the new settings at their next
// cycle; another tenant or EWS endpoint is another server to them (their
// backups through it start again in full, deduplicated).
func (s *Service) EditConnection(ctx context.Context, name string, spec ConnectionSpec, secret credential.Secret) error {
	if err := spec.Validate(name); err != nil {
		return err
	}
	st, err := s.load()
	if err != nil {
		return err
	}
	if err := st.agg.HasConnection(name); err != nil {
		return err
	}
	if !secret.Empty() {
		if err := s.Secrets.Put(name, secret); err != nil {
			return fmt.Errorf("keep the connection's secret: %w", err)
		}
	}
	return s.record(ctx, domain.ConnectionEdited, name, spec)
}

// RemoveConnection removes a connection no job uses, and its secret.
func (s *Service) RemoveConnection(ctx context.Context, name string) error {
	st, err := s.load()
	if err != nil {
		return err
	}
	if err := st.agg.RemoveConnection(name); err != nil {
		return err
	}
	// Recorded first: a secret left behind by a failure is harmless and
	// overwritten by the next add; a connection without its secret is not.
	if err := s.record(ctx, domain.ConnectionRemoved, name, nil); err != nil {
		return err
	}
	if err := s.Secrets.Delete(name); err != nil {
		return fmt.Errorf("connection %s is removed, but deleting its secret failed: %w", name, err)
	}
	return nil
}

// Connections lists the connections by name.
func (s *Service) Connections(_ context.Context) ([]Connection, error) {
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	var out []Connection
	for _, n := range projections.Names(st.raw.Connections) {
		c := Connection{Name: n}
		if err := json.Unmarshal(st.raw.Connections[n], &c.ConnectionSpec); err != nil {
			return nil, fmt.Errorf("connection %s: its recorded definition does not read: %w", n, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// OpenConnection is a connection's definition with its secret: what a
// backup, a restore or a connection test opens a client from.
func (s *Service) OpenConnection(name string) (ConnectionSpec, credential.Secret, error) {
	st, err := s.load()
	if err != nil {
		return ConnectionSpec{}, credential.Secret{}, err
	}
	if err := st.agg.HasConnection(name); err != nil {
		return ConnectionSpec{}, credential.Secret{}, err
	}
	var spec ConnectionSpec
	if err := json.Unmarshal(st.raw.Connections[name], &spec); err != nil {
		return spec, credential.Secret{}, fmt.Errorf("connection %s: its recorded definition does not read: %w", name, err)
	}
	secret, err := s.Secrets.Get(name)
	if err != nil {
		return spec, secret, fmt.Errorf("connection %s: its secret is not in the secret store: %w", name, err)
	}
	return spec, secret, nil
}

// Storage is a configured storage as listed.
type Storage struct {
	Name string `json:"name"`
	StorageSpec
}

// AddStorage is the input of the storage add command.
type AddStorage struct {
	Name string
	// Path is absolute: the daemon and the command line must mean the
	// same directory.
	Path string
	// Password nil: an unencrypted storage (the port has asked for
	// that explicitly).
	Password []byte
	Options  StorageOptions
}

// AddStorage creates a storage (or adopts the one in the directory) and
// names it. A password-protected storage's password goes to the secret
// store, so scheduled jobs can open it; a new one's recovery key is
// returned, to be shown once.
func (s *Service) AddStorage(ctx context.Context, in AddStorage) (recoveryKey string, err error) {
	st, err := s.load()
	if err != nil {
		return "", err
	}
	if err := st.agg.AddStorage(in.Name); err != nil {
		return "", err
	}
	encrypted, recovery, err := s.Storages.Provision(in.Path, in.Password, in.Options)
	if err != nil {
		return "", err
	}
	if encrypted {
		if err := s.Secrets.Put(StorageSecretName(in.Name), credential.New(string(in.Password))); err != nil {
			return "", fmt.Errorf("keep the storage password: %w", err)
		}
	}
	if err := s.record(ctx, domain.StorageAdded, in.Name, StorageSpec{Path: in.Path, Encrypted: encrypted}); err != nil {
		return "", err
	}
	return recovery, nil
}

// RemoveStorage forgets a storage's name (its data stays on disk) when no
// job backs up into it.
func (s *Service) RemoveStorage(ctx context.Context, name string) error {
	st, err := s.load()
	if err != nil {
		return err
	}
	if err := st.agg.RemoveStorage(name); err != nil {
		return err
	}
	_ = s.Secrets.Delete(StorageSecretName(name)) // an unencrypted storage has none
	return s.record(ctx, domain.StorageRemoved, name, nil)
}

// ListStorages lists the storages by name.
func (s *Service) ListStorages(_ context.Context) ([]Storage, error) {
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	var out []Storage
	for _, n := range projections.Names(st.raw.Storages) {
		v := Storage{Name: n}
		if err := json.Unmarshal(st.raw.Storages[n], &v.StorageSpec); err != nil {
			return nil, fmt.Errorf("storage %s: its recorded definition does not read: %w", n, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// OpenStorage is a named storage's definition with its password (nil for
// an unencrypted one).
func (s *Service) OpenStorage(name string) (StorageSpec, []byte, error) {
	st, err := s.load()
	if err != nil {
		return StorageSpec{}, nil, err
	}
	if err := st.agg.HasStorage(name); err != nil {
		return StorageSpec{}, nil, err
	}
	var spec StorageSpec
	if err := json.Unmarshal(st.raw.Storages[name], &spec); err != nil {
		return spec, nil, fmt.Errorf("storage %s: its recorded definition does not read: %w", name, err)
	}
	if !spec.Encrypted {
		return spec, nil, nil
	}
	pw, err := s.Secrets.Get(StorageSecretName(name))
	if err != nil {
		return spec, nil, fmt.Errorf("storage %s: its password is not in the secret store: %w", name, err)
	}
	return spec, []byte(pw.Reveal()), nil
}
