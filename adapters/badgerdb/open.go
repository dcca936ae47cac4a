// Package badgerdb opens Badger databases the way every mailvault store
// needs: surviving the leftovers of a killed process, and telling a
// directory held by another process apart from a broken one.
package badgerdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("in use by another process")

// Open opens the database of bo. A memtable file left torn by a kill is
// removed and the open retried once.
func Open(bo badger.Options) (*badger.DB, error) {
	db, err := badger.Open(bo)
	if err != nil && !bo.InMemory && strings.Contains(err.Error(), "Create a new file") {
		// Only reached with the directory lock taken and released by this
		// process, so no other process is creating a memtable right now.
		if derr := dropTornMemtables(bo.Dir); derr != nil {
			return nil, derr
		}
		db, err = badger.Open(bo)
	}
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") || strings.Contains(err.Error(), "resource temporarily unavailable") {
			return nil, fmt.Errorf("open %s: %w", bo.Dir, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", bo.Dir, err)
	}
	return db, nil
}

// dropTornMemtables removes memtable files shorter than their header. A
// process killed between creating a memtable file and sizing it leaves one
// behind; it holds no entry, but Badger refuses to open the directory while
// it exists ("Create a new file").
func dropTornMemtables(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read database directory: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() >= 20 { // vlogHeaderSize
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove torn memtable %s: %w", e.Name(), err)
		}
	}
	return nil
}
