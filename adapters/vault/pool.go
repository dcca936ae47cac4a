package vault

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
)

// ErrBusy means a storage is open in this process in a way that excludes
// what was asked: repairing a storage something else has open, or writing
// to one open for reading.
var ErrBusy = errors.New("storage is in use in this process")

// Mode is how a command uses a storage.
type Mode int

const (
	// ModeWrite backs up, prunes: a damaged storage is refused.
	ModeWrite Mode = iota
	// ModeRead lists, exports, restores: nothing in the storage changes.
	ModeRead
	// ModeCheck verifies: a damaged index is reported, not refused.
	ModeCheck
	// ModeRepair repairs: alone, writing, whatever the damage.
	ModeRepair
	// ModePrune prunes: writing; a storage in object storage is pruned by
	// one process alone (other processes' locks refuse it, see writers.go).
	ModePrune
)

// Ref is a storage to open.
type Ref struct {
	Dir         string
	Password    []byte
	RecoveryKey string
	// Create makes an unencrypted storage at Dir when none is there (the
	// default storage of plain backups).
	Create bool
	Mode   Mode
}

// Pool shares open storages within a process: Badger allows one opener per
// directory, and a daemon may run two jobs into one storage. One Pool
// serves a process; its zero value is ready.
type Pool struct {
	mu   sync.Mutex
	open map[string]*pooled
}

type pooled struct {
	v    *Vault
	refs int
	mode Mode
}

// Open opens (or shares) the storage of r. A handle open for writing
// serves readers and checks too; one open for reading cannot be shared by
// a writer (Badger allows one writer per directory). Release gives it back.
func (p *Pool) Open(r Ref) (*Vault, error) {
	abs, err := filepath.Abs(r.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", r.Dir, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		p.open = map[string]*pooled{}
	}
	if o, ok := p.open[abs]; ok {
		switch {
		case r.Mode == ModeRepair:
			return nil, fmt.Errorf("storage %s: %w (a job or command has it open): stop it before repairing", r.Dir, ErrBusy)
		case r.Mode == ModePrune && o.v.remote != nil:
			return nil, fmt.Errorf("storage %s: %w (a job or command has it open): prune it when it has finished", r.Dir, ErrBusy)
		case o.mode == ModePrune && o.v.remote != nil:
			return nil, fmt.Errorf("storage %s: %w (being pruned); try again when the prune has finished", r.Dir, ErrBusy)
		case (r.Mode == ModeWrite || r.Mode == ModePrune) && o.mode != ModeWrite && o.mode != ModePrune:
			return nil, fmt.Errorf("storage %s: %w (open for reading by another command); try again when it has finished", r.Dir, ErrBusy)
		}
		if o.v.Encrypted() && r.RecoveryKey == "" {
			// Shared handles still need the right password.
			if err := CheckPassword(abs, r.Password); err != nil {
				return nil, err
			}
		}
		o.refs++
		return o.v, nil
	}
	var v *Vault
	if r.Create && !Exists(abs) {
		v, _, err = Create(abs, CreateOptions{})
	} else {
		v, err = OpenWith(abs, OpenOptions{Password: r.Password, RecoveryKey: r.RecoveryKey,
			ReadOnly: r.Mode == ModeRead || r.Mode == ModeCheck, ForCheck: r.Mode == ModeCheck || r.Mode == ModeRepair, Exclusive: r.Mode == ModePrune})
	}
	if err != nil {
		return nil, err
	}
	mode := r.Mode
	if r.Create {
		mode = ModeWrite
	}
	p.open[abs] = &pooled{v: v, refs: 1, mode: mode}
	return v, nil
}

// Release gives back a storage Open returned; the last release closes it.
func (p *Pool) Release(v *Vault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for dir, o := range p.open {
		if o.v == v {
			if o.refs--; o.refs == 0 {
				delete(p.open, dir)
				v.Close()
			}
			return
		}
	}
}
