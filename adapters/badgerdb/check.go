package badgerdb

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"

	"github.com/mailvault/mailvault/internal/atomicfile"
)

// sumsFile records, at every clean close, the size, modification time and
// CRC-32C of each of the database's files. Badger's own checks do not cover
// every file (a truncated manifest opens as an empty database, a truncated
// table panics in a goroutine), so a damaged file must be found before
// Badger opens it.
const sumsFile = "mailvault.sums"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type fileSum struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	CRC     uint32 `json:"crc32c"`
}

type sums struct {
	// Open says a writer has the database open: the files may have
	// changed since, and a kill leaves it set.
	Open  bool               `json:"open,omitempty"`
	Files map[string]fileSum `json:"files"`
	// Checksum is the CRC-32C of Files as JSON: the record checks itself.
	Checksum uint32 `json:"checksum"`
}

func (s *sums) checksum() uint32 {
	b, _ := json.Marshal(struct {
		Open  bool
		Files map[string]fileSum
	}{s.Open, s.Files})
	return crc32.Checksum(b, castagnoli)
}

// ownFile tells the database's files from the lock and mailvault's own.
func ownFile(name string) bool {
	return name != "LOCK" && name != sumsFile && name != sumsFile+".tmp" && !strings.HasPrefix(name, ".")
}

// Check examines a database directory without opening it and returns the
// checksums of its last clean close (nil for a new one; marked Open after a
// kill).
// With them, every file must be present with its recorded size and
// modification time (with deep, its recorded content too) and no other
// file may have appeared. Always, each table's footer must check out (a
// damaged one makes Badger panic), a manifest must exist where tables do
// (without one Badger deletes them), and an encrypted database must have
// its key registry.
func Check(dir string, deep, encrypted bool) (*sums, error) {
	return check(dir, deep, deep, encrypted, true)
}

// check is Check reading every file but the older value logs (deep), or
// those too (values). Opening reads every file but the older value logs:
// their values are checked by Badger as they are read, and they are the
// bulk of the event log. The newest one is read: a writer's open truncates
// it at the first entry that does not check out, silently dropping what
// follows.
func check(dir string, deep, values, encrypted, strict bool) (*sums, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	damaged := func(file, problem string) error { return &DamagedError{Dir: dir, File: file, Problem: problem} }
	files := map[string]fs.FileInfo{}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !ownFile(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		files[e.Name()] = info
		names = append(names, e.Name())
	}
	sort.Strings(names)
	lastVlog := ""
	for _, name := range names {
		if strings.HasSuffix(name, ".vlog") && (len(name) > len(lastVlog) || name > lastVlog) {
			lastVlog = name
		}
	}
	s, err := readSums(dir)
	if err != nil {
		return nil, err
	}
	if s == nil && strict && len(names) > 0 {
		return nil, damaged(sumsFile, "(the checksums of the database's files, kept since it was created) is missing")
	}
	if s != nil && !s.Open {
		for name, want := range s.Files {
			info, ok := files[name]
			switch {
			case !ok:
				return nil, damaged(name, "is missing (it was there when the database was last closed)")
			case info.Size() != want.Size:
				return nil, damaged(name, fmt.Sprintf("is %d bytes, %d when the database was last closed (truncated or overwritten)", info.Size(), want.Size))
			case info.ModTime().UnixNano() != want.ModTime:
				return nil, damaged(name, "was changed after the database was last closed")
			}
			if deep && (values || name == lastVlog || !strings.HasSuffix(name, ".vlog")) {
				sum, err := fileCRC(filepath.Join(dir, name))
				if err != nil {
					return nil, damaged(name, "cannot be read: "+err.Error())
				}
				if sum != want.CRC {
					return nil, damaged(name, "does not match its checksum from the last close (its content changed)")
				}
			}
		}
		for _, name := range names {
			if _, ok := s.Files[name]; !ok {
				return nil, damaged(name, "appeared after the database was last closed")
			}
		}
	}
	var tables []string
	for _, name := range names {
		if strings.HasSuffix(name, ".sst") {
			tables = append(tables, name)
		}
	}
	_, haveManifest := files["MANIFEST"]
	if len(tables) > 0 && !haveManifest {
		return nil, damaged("MANIFEST", fmt.Sprintf("is missing; it names which of the %d tables hold data", len(tables)))
	}
	if haveManifest {
		referenced, err := manifestTables(dir)
		if err != nil {
			return nil, damaged("MANIFEST", "does not read: "+err.Error())
		}
		for id := range referenced {
			name := fmt.Sprintf("%06d.sst", id)
			if _, ok := files[name]; !ok {
				return nil, damaged(name, "is missing (the MANIFEST names it as holding data)")
			}
		}
		for _, name := range tables {
			var id uint64
			_, scanErr := fmt.Sscanf(name, "%06d.sst", &id)
			if _, ok := referenced[id]; scanErr == nil && !ok && (s == nil || s.Open) {
				// A table a killed writer had not finished: the MANIFEST
				// never named it, and Badger deletes it at the next open.
				continue
			}
			if err := checkTable(filepath.Join(dir, name), files[name].Size()); err != nil {
				return nil, damaged(name, err.Error())
			}
		}
		if encrypted && len(tables) > 0 {
			if _, ok := files["KEYREGISTRY"]; !ok {
				return nil, damaged("KEYREGISTRY", "is missing; it holds the keys the tables are encrypted with")
			}
		}
	}
	return s, nil
}

// manifestTables are the ids of the tables Badger's MANIFEST says hold
// data. A change set cut short at the end (a killed writer) is ignored, as
// Badger does.
func manifestTables(dir string) (map[uint64]struct{}, error) {
	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	ids := make(map[uint64]struct{}, len(m.Tables))
	for id := range m.Tables {
		ids[id] = struct{}{}
	}
	return ids, nil
}

func readSums(dir string) (*sums, error) {
	b, err := os.ReadFile(filepath.Join(dir, sumsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, sumsFile), err)
	}
	var s sums
	if err := json.Unmarshal(b, &s); err != nil || s.checksum() != s.Checksum {
		return nil, &DamagedError{Dir: dir, File: sumsFile, Problem: "(the checksums of the database's files) does not check out"}
	}
	if want, err := encodeSums(&s); err != nil || string(want) != string(b) {
		return nil, &DamagedError{Dir: dir, File: sumsFile, Problem: "(the checksums of the database's files) is not as mailvault wrote it"}
	}
	return &s, nil
}

// writeSums records the checksums of the files in dir; files unchanged
// since prev keep their recorded checksum instead of being read again.
func writeSums(dir string, prev *sums) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("record checksums of %s: %w", dir, err)
	}
	s := sums{Files: map[string]fileSum{}}
	for _, e := range entries {
		if e.IsDir() || !ownFile(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("record checksums of %s: %w", dir, err)
		}
		fsum := fileSum{Size: info.Size(), ModTime: info.ModTime().UnixNano()}
		if old, ok := prev.file(e.Name()); ok && old.Size == fsum.Size && old.ModTime == fsum.ModTime {
			fsum.CRC = old.CRC
		} else if fsum.CRC, err = fileCRC(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("record checksums of %s: %w", dir, err)
		}
		s.Files[e.Name()] = fsum
	}
	return saveSums(dir, &s)
}

func saveSums(dir string, s *sums) error {
	s.Checksum = s.checksum()
	b, err := encodeSums(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, sumsFile), b)
}

func encodeSums(s *sums) ([]byte, error) { return json.MarshalIndent(s, "", " ") }

// writeOpenMark records that a writer has the database open, keeping the
// last close's checksums for the files it will not change.
func writeOpenMark(dir string, prev *sums) error {
	s := sums{Open: true, Files: map[string]fileSum{}}
	if prev != nil && prev.Files != nil {
		s.Files = prev.Files
	}
	return saveSums(dir, &s)
}

// restoreSums puts back the record found at open (none: removes it).
func restoreSums(dir string, prev *sums) error {
	if prev == nil {
		return os.Remove(filepath.Join(dir, sumsFile))
	}
	return saveSums(dir, prev)
}

func (s *sums) file(name string) (fileSum, bool) {
	if s == nil {
		return fileSum{}, false
	}
	f, ok := s.Files[name]
	return f, ok
}

func fileCRC(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, f); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// checkTable checks what Badger reads of a table before anything else: the
// footer (checksum length, checksum, index length) and the index's
// checksum. Badger trusts these lengths and panics, in a goroutine no
// caller can recover, when they are wrong.
func checkTable(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	read := func(off int64, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off+n > size {
			return nil, errors.New("is cut short or its footer is damaged")
		}
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("cannot be read: %v", err)
		}
		return b, nil
	}
	pos := size - 4
	b, err := read(pos, 4)
	if err != nil {
		return err
	}
	chkLen := int64(binary.BigEndian.Uint32(b))
	pos -= chkLen
	if b, err = read(pos, chkLen); err != nil {
		return err
	}
	var chk pb.Checksum
	if err := proto.Unmarshal(b, &chk); err != nil || (chk.Algo != pb.Checksum_CRC32C && chk.Algo != pb.Checksum_XXHash64) {
		return errors.New("has a damaged footer (its checksum record does not decode)")
	}
	pos -= 4
	if b, err = read(pos, 4); err != nil {
		return err
	}
	idxLen := int64(binary.BigEndian.Uint32(b))
	pos -= idxLen
	idx, err := read(pos, idxLen)
	if err != nil {
		return err
	}
	if err := y.VerifyChecksum(idx, &chk); err != nil {
		return errors.New("has a damaged index block (checksum mismatch)")
	}
	return nil
}
