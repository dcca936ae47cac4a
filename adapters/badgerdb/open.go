// Package badgerdb opens Badger databases the way every mailvault store
// needs: refusing damaged files before Badger reads them (Badger panics on
// some, and silently drops data on others), surviving the leftovers of a
// killed process, and telling a directory held by another process apart
// from a broken one.
package badgerdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("in use by another process")

// ErrDamaged marks a database whose files do not check out.
var ErrDamaged = errors.New("damaged")

// DamagedError names the file of a database that is damaged and how.
type DamagedError struct {
	Dir     string
	File    string // "" when the damage is not one file's
	Problem string
}

func (e *DamagedError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%s is damaged: %s", e.Dir, e.Problem)
	}
	return fmt.Sprintf("%s is damaged: %s %s", e.Dir, e.File, e.Problem)
}

func (e *DamagedError) Unwrap() error { return ErrDamaged }

// DB is an open Badger database that records the checksums of its files
// when it is closed cleanly, so that the next open can tell damage from a
// clean state before Badger touches anything.
type DB struct {
	*badger.DB
	dir      string
	readOnly bool
	prev     *sums // the checksums found at open, reused for unchanged files

	stopReclaim chan struct{} // nil in memory
	reclaimDone chan struct{}
}

// reclaimEvery is how often a database's file mappings are paged out.
const reclaimEvery = 500 * time.Millisecond

// Open checks the files of bo.Dir and opens the database. Damage (a file
// that is not byte for byte what the last clean close left, a table whose
// footer does not check out, a missing manifest) is a *DamagedError and
// nothing is changed. Badger checks every value it reads from its value
// log, so damage there is an error when it is read, never a silently
// shorter database. (Badger's own check of tables on open is not used: it
// panics, in a goroutine, on a damaged block.) A directory without a
// checksum record (one written before mailvault kept them) is checked as
// after a kill.
func Open(bo badger.Options) (*DB, error) { return open(bo, false) }

// OpenStrict is Open for databases that have always had a checksum record:
// a missing one is damage.
func OpenStrict(bo badger.Options) (*DB, error) { return open(bo, true) }

func open(bo badger.Options, strict bool) (*DB, error) {
	bo = bo.WithVerifyValueChecksum(true)
	if bo.InMemory {
		db, err := badger.Open(bo)
		if err != nil {
			return nil, err
		}
		return &DB{DB: db, dir: bo.Dir, readOnly: bo.ReadOnly}, nil
	}
	// Another process holding the database changes its files while they
	// are checked (a compaction deletes a table the MANIFEST read a moment
	// before named): its lock is looked at first, so that a busy database
	// is reported in use, never damaged.
	if heldElsewhere(bo.Dir) {
		return nil, fmt.Errorf("open %s: %w", bo.Dir, ErrLocked)
	}
	prev, err := check(bo.Dir, true, false, len(bo.EncryptionKey) > 0, strict)
	if err != nil {
		if heldElsewhere(bo.Dir) {
			return nil, fmt.Errorf("open %s: %w", bo.Dir, ErrLocked)
		}
		return nil, err
	}
	if !bo.ReadOnly {
		// A writer changes the files: the checksums stop describing them
		// the moment Badger opens, and a kill from then on must leave a
		// record that says so.
		if err := os.MkdirAll(bo.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("open %s: %w", bo.Dir, err)
		}
		if err := writeOpenMark(bo.Dir, prev); err != nil {
			return nil, fmt.Errorf("open %s: %w", bo.Dir, err)
		}
	}
	db, err := badger.Open(bo)
	if err != nil && !bo.ReadOnly && strings.Contains(err.Error(), "Create a new file") {
		// Only reached with the directory lock taken and released by this
		// process, so no other process is creating a memtable right now.
		if derr := dropTornMemtables(bo.Dir); derr != nil {
			return nil, derr
		}
		db, err = badger.Open(bo)
	}
	if err != nil {
		locked := strings.Contains(err.Error(), "Cannot acquire directory lock") || strings.Contains(err.Error(), "resource temporarily unavailable")
		if locked {
			if !bo.ReadOnly {
				// Nothing was touched: the holder's record stands. (A
				// writer holding it has marked it open already; a reader
				// holding it left the last clean close's.)
				_ = restoreSums(bo.Dir, prev)
			}
			return nil, fmt.Errorf("open %s: %w", bo.Dir, ErrLocked)
		}
		if errors.Is(err, badger.ErrTruncateNeeded) && bo.ReadOnly {
			return nil, fmt.Errorf("open %s: %w", bo.Dir, ErrNotClosedCleanly)
		}
		return nil, &DamagedError{Dir: bo.Dir, Problem: "Badger cannot open it: " + firstLine(err.Error())}
	}
	d := &DB{DB: db, dir: bo.Dir, readOnly: bo.ReadOnly, prev: prev, stopReclaim: make(chan struct{}), reclaimDone: make(chan struct{})}
	go reclaimMapped(bo.Dir, reclaimEvery, d.stopReclaim, d.reclaimDone)
	return d, nil
}

// ErrNotClosedCleanly means a read-only open found work a writer left
// unfinished (a killed process): only a writer can open it.
var ErrNotClosedCleanly = errors.New("not closed cleanly: the last writer was killed")

// Close closes the database and, for a writer, records the checksums of
// its files.
func (d *DB) Close() error {
	err := d.DB.Close() // flushes the memtable: keep paging out meanwhile
	if d.stopReclaim != nil {
		close(d.stopReclaim)
		<-d.reclaimDone
		d.stopReclaim = nil
	}
	if err != nil {
		return err
	}
	if d.readOnly || d.dir == "" || d.DB.Opts().InMemory {
		return nil
	}
	return writeSums(d.dir, d.prev)
}

// Dir is the database's directory.
func (d *DB) Dir() string { return d.dir }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
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

// Reserve is the free space a database of these options must keep. Badger
// writes its memtables and value log through memory-mapped files that it
// sizes sparsely in advance, and a write into such a mapping on a full disk
// kills the process (SIGBUS) instead of returning an error: a writer stops
// while the mappings it may still fill, and room for a compaction, fit.
func Reserve(bo badger.Options) int64 {
	return 2*bo.ValueLogFileSize + 2*int64(bo.NumMemtables)*bo.MemTableSize + 16<<20
}

// heldElsewhere reports whether another process holds the database's
// directory lock (Badger's flock on the directory; a writer holds it
// exclusively, so even a shared probe is refused).
func heldElsewhere(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
