package badgerdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func testOptions(dir string, key []byte) badger.Options {
	o := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(4 << 20).WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).WithIndexCacheSize(8 << 20).WithBaseTableSize(1 << 20).WithValueLogFileSize(8 << 20).
		WithValueThreshold(256)
	if key != nil {
		o = o.WithEncryptionKey(key)
	}
	return o
}

const testKeys = 20000

// fill writes testKeys keys, half with values in the value log, and closes
// the database cleanly.
func fill(t testing.TB, dir string, key []byte) {
	t.Helper()
	db, err := Open(testOptions(dir, key))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < testKeys; i += 500 {
		err := db.Update(func(txn *badger.Txn) error {
			for j := i; j < i+500; j++ {
				size := 100
				if j%2 == 0 {
					size = 400 // above the threshold: in the value log
				}
				if err := txn.Set(fmt.Appendf(nil, "k%08d", j), make([]byte, size)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// readAll opens the database and reads every key and value.
func readAll(dir string, key []byte, readOnly bool) (int, error) {
	db, err := Open(testOptions(dir, key).WithReadOnly(readOnly))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	n := 0
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if _, err := it.Item().ValueCopy(nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Every single-file fault after a clean close is refused before Badger
// reads the file, or leaves every key readable: never a panic, never a
// silently shorter database.
func TestSingleFileFaultsAreRefusedBeforeBadgerOpens(t *testing.T) {
	faults := []string{"delete", "truncate", "flip-first", "flip-middle", "flip-last"}
	encryptions := []bool{false, true}
	if raceEnabled {
		faults, encryptions = []string{"truncate", "flip-middle"}, []bool{true}
	}
	for _, enc := range encryptions {
		var key []byte
		if enc {
			key = make([]byte, 32)
		}
		master := t.TempDir()
		fill(t, master, key)
		entries, _ := os.ReadDir(master)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, name := range names {
			for _, fault := range faults {
				t.Run(fmt.Sprintf("encrypted=%v/%s/%s", enc, name, fault), func(t *testing.T) {
					dir := t.TempDir()
					copyDir(t, master, dir)
					p := filepath.Join(dir, name)
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					switch fault {
					case "delete":
						os.Remove(p)
					case "truncate":
						os.WriteFile(p, b[:len(b)/2], 0o600)
					default:
						if len(b) == 0 {
							t.Skip("empty file")
						}
						i := map[string]int{"flip-first": 0, "flip-middle": len(b) / 2, "flip-last": len(b) - 1}[fault]
						b[i] ^= 0x40
						os.WriteFile(p, b, 0o600)
					}
					_, err = Check(dir, true, enc)
					var de *DamagedError
					if !errors.As(err, &de) || de.File != name {
						t.Fatalf("deep check: %v, want the damage of %s named", err, name)
					}
					for _, ro := range []bool{true, false} {
						n, err := readAll(dir, key, ro)
						if err == nil && n != testKeys {
							t.Fatalf("read-only=%v: opened and read %d of %d keys without an error", ro, n, testKeys)
						}
						if err != nil && !errors.Is(err, ErrDamaged) {
							t.Fatalf("read-only=%v: %v is not ErrDamaged", ro, err)
						}
					}
				})
			}
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		p := filepath.Join(to, e.Name())
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, info.ModTime(), info.ModTime())
	}
}

// A clean reopen passes the check, a read-only open changes no file, and a
// writer records fresh checksums at close.
func TestCleanReopenAndReadOnlyLeavesFilesAlone(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, nil)
	before := snapshot(t, dir)
	n, err := readAll(dir, nil, true)
	if err != nil || n != testKeys {
		t.Fatalf("read-only: %d %v", n, err)
	}
	if after := snapshot(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a read-only open changed files:\n%v\n%v", before, after)
	}
	if n, err := readAll(dir, nil, false); err != nil || n != testKeys {
		t.Fatalf("read-write: %d %v", n, err)
	}
	if _, err := Check(dir, true, false); err != nil {
		t.Fatalf("after a writer's clean close: %v", err)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		info, _ := e.Info()
		out[e.Name()] = fmt.Sprintf("%d %d %x", len(b), info.ModTime().UnixNano(), b[:min(len(b), 0)])
		sum, _ := fileCRC(filepath.Join(dir, e.Name()))
		out[e.Name()] += fmt.Sprint(" ", sum)
	}
	return out
}

// A writer that never closes (a kill) leaves its record marked open: the
// next open checks the files' structure only and succeeds, and a strict
// open refuses a directory whose record was deleted.
func TestOpenMarkAfterAKillAndMissingRecord(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, nil)
	db, err := Open(testOptions(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("after"), []byte("x")) })
	db.DB.Close() // Badger closes; mailvault's record is not rewritten, as after a kill
	s, err := readSums(dir)
	if err != nil || s == nil || !s.Open {
		t.Fatalf("record after a kill: %+v %v", s, err)
	}
	if _, err := Check(dir, true, false); err != nil {
		t.Fatalf("check after a kill: %v", err)
	}
	if n, err := readAll(dir, nil, false); err != nil || n != testKeys+1 {
		t.Fatalf("reopen after a kill: %d %v", n, err)
	}
	os.Remove(filepath.Join(dir, sumsFile))
	if _, err := OpenStrict(testOptions(dir, nil)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("strict open without a record: %v", err)
	}
	if n, err := readAll(dir, nil, false); err != nil || n != testKeys+1 {
		t.Fatalf("lenient open without a record (an older database): %d %v", n, err)
	}
}

// A writer killed while writing a table leaves it half written and not
// named by the MANIFEST: the next open ignores it (Badger deletes it) and
// loses nothing. A table the MANIFEST names that is gone is damage.
func TestUnfinishedTableOfAKilledWriter(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, nil)
	db, err := Open(testOptions(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	db.DB.Close() // as after a kill: the record stays marked open
	orphan := filepath.Join(dir, "099999.sst")
	if err := os.WriteFile(orphan, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(dir, true, false); err != nil {
		t.Fatalf("check with an unfinished table: %v", err)
	}
	if n, err := readAll(dir, nil, false); err != nil || n != testKeys {
		t.Fatalf("open with an unfinished table: %d %v", n, err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("the unfinished table is still there: %v", err)
	}

	db, err = Open(testOptions(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	db.DB.Close()
	var named string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".sst" {
			named = e.Name()
		}
	}
	if named == "" {
		t.Fatal("the database has no table")
	}
	os.Remove(filepath.Join(dir, named))
	var de *DamagedError
	if _, err := Check(dir, false, false); !errors.As(err, &de) || de.File != named {
		t.Fatalf("a named table removed: %v", err)
	}
}

// What checking a database's files before opening costs, per MB of files.
func BenchmarkCheckBeforeOpen(b *testing.B) {
	dir := b.TempDir()
	fill(b, dir, nil)
	var size int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		size += info.Size()
	}
	b.SetBytes(size)
	for range b.N {
		if _, err := Check(dir, true, false); err != nil {
			b.Fatal(err)
		}
	}
}

// A database another process holds is reported in use, whatever its
// files look like from outside at that moment: its holder compacts, and a
// table the MANIFEST named a moment before may be gone. (Before, the check
// ran first and called such a database damaged.)
func TestHeldDatabaseIsInUseNotDamaged(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, nil)
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table written")
	}
	if err := os.Remove(tables[0]); err != nil { // as a holder's compaction does
		t.Fatal(err)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		if _, err := OpenStrict(testOptions(dir, nil).WithReadOnly(readOnly)); !errors.Is(err, ErrLocked) {
			t.Fatalf("read-only %v: %v, want ErrLocked", readOnly, err)
		}
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	var de *DamagedError
	if _, err := OpenStrict(testOptions(dir, nil)); !errors.As(err, &de) {
		t.Fatalf("released: %v, want the missing table reported", err)
	}
}
