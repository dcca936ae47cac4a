package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
)

// StorageKey unlocks a storage given by path: read by the caller (from its
// files or its environment), so an operation the daemon runs gets the key,
// never a file name to read.
type StorageKey struct {
	Password    []byte `json:"password,omitempty"`
	RecoveryKey string `json:"recovery_key,omitempty"`
}

// StorageRef is the storage an operation works on: a name from AddStorage
// (its password is in the secret store) or a directory, with what unlocks
// it.
type StorageRef struct {
	Storage string     `json:"storage"`
	Key     StorageKey `json:"key"`
}

// byName says whether ref is a storage's name rather than its directory:
// a name has no slashes and is not a storage directory here.
func byName(ref string) bool { return !strings.ContainsAny(ref, `/\`) && !vault.Exists(ref) }

// resolve turns a storage's name or directory into what opens it.
func (s *Service) resolve(ref StorageRef) (vault.Ref, error) {
	r := vault.Ref{Dir: ref.Storage, Password: ref.Key.Password, RecoveryKey: ref.Key.RecoveryKey}
	if !byName(ref.Storage) {
		return r, nil
	}
	spec, pw, err := s.OpenStorage(ref.Storage)
	if errors.Is(err, ErrNotFound) {
		return r, &domain.ConfigError{Kind: "storage", Name: ref.Storage, Err: ErrNotFound,
			Msg: fmt.Sprintf("no storage named %q and no storage in a directory %q (see mailvault storage list)", ref.Storage, ref.Storage)}
	}
	if err != nil && r.Password == nil && r.RecoveryKey == "" {
		return r, fmt.Errorf("%w; give --storage-password-file", err)
	}
	r.Dir = spec.Path
	if r.Password == nil && r.RecoveryKey == "" {
		r.Password = pw
	}
	return r, nil
}

// open opens a resolved storage from the process's pool.
func (s *Service) open(r vault.Ref) (*vault.Vault, error) {
	v, err := s.Vaults.Open(r)
	if errors.Is(err, vault.ErrLocked) {
		return nil, fmt.Errorf("%w: another mailvault process is using this storage; wait for it to finish", err)
	}
	return v, err
}

// withStorage opens the storage ref names for one operation.
func (s *Service) withStorage(ref StorageRef, mode vault.Mode, fn func(v *vault.Vault) error) error {
	r, err := s.resolve(ref)
	if err != nil {
		return err
	}
	r.Mode = mode
	v, err := s.open(r)
	if err != nil {
		return err
	}
	defer s.Vaults.Release(v)
	return fn(v)
}
