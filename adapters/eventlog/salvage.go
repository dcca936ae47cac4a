package eventlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mailvault/mailvault/adapters/badgerdb"
	"github.com/mailvault/mailvault/domain"
)

// TypeRecordDamaged is the type of those placeholders.
const TypeRecordDamaged = "record_damaged"

// SalvageResult says what a salvage kept and what it could not.
type SalvageResult struct {
	Records int      `json:"records"`
	Damaged []uint64 `json:"damaged"` // sequence numbers whose records were lost
	// From is how the records were read: "index" (through Badger) or
	// "value log files" (Badger's own index was unusable).
	From   string `json:"from"`
	OldDir string `json:"old_dir"`
}

// Salvage rebuilds a damaged log: every record that reads and matches its
// checksum is copied, under its own sequence number, into a new log (the
// projections rebuilt by hooks as the records go in); each record that does
// not is replaced by a placeholder on domain.TopicDamaged. When Badger cannot open
// the old log at all, the records are read from its value-log files
// directly. The old log is kept beside the new one (OldDir). The log must
// not be open.
func Salvage(dir string, hooks []Hook) (SalvageResult, error) {
	var res SalvageResult
	if err := badgerdb.ProbeLock(dir); errors.Is(err, badgerdb.ErrLocked) {
		return res, fmt.Errorf("salvage %s: %w", dir, ErrLocked)
	} else if err != nil {
		return res, fmt.Errorf("salvage %s: %w", dir, err)
	}
	newDir := filepath.Clean(dir) + ".salvage"
	if err := os.RemoveAll(newDir); err != nil {
		return res, err
	}
	out, err := Open(Options{Dir: newDir, Hooks: hooks})
	if err != nil {
		return res, fmt.Errorf("create the new log: %w", err)
	}
	var batch []Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := out.append(context.Background(), &appendReq{recs: batch, reply: make(chan appendResult, 1), keepSeq: true})
		batch = batch[:0]
		return err
	}
	add := func(rec Record) error {
		res.Records++
		batch = append(batch, rec)
		if len(batch) >= 500 {
			return flush()
		}
		return nil
	}
	lost := func(seq uint64, why string) error {
		res.Damaged = append(res.Damaged, seq)
		payload, _ := json.Marshal(map[string]any{"type": TypeRecordDamaged, "schema": 1, "seq": seq, "reason": why})
		return add(Record{Seq: seq, Topic: domain.TopicDamaged, UUID: "damaged-" + strconv.FormatUint(seq, 10),
			Metadata: map[string]string{MetaType: TypeRecordDamaged}, Payload: payload})
	}
	if usableIndex(dir) {
		res.From = "index"
		err = salvageThroughBadger(dir, add, lost)
	} else {
		res.From = "value log files"
		err = salvageFromValueLog(dir, add, lost)
	}
	if err == nil {
		err = flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	base := filepath.Clean(dir) + ".damaged-" + time.Now().UTC().Format("20060102T150405")
	res.OldDir = base
	for n := 2; ; n++ {
		if _, err := os.Stat(res.OldDir); errors.Is(err, os.ErrNotExist) {
			break
		}
		res.OldDir = fmt.Sprintf("%s-%d", base, n)
	}
	if err := os.Rename(dir, res.OldDir); err != nil {
		return res, fmt.Errorf("set the damaged log aside: %w", err)
	}
	if err := os.Rename(newDir, dir); err != nil {
		return res, fmt.Errorf("put the salvaged log in place (it is in %s): %w", newDir, err)
	}
	_ = os.Remove(damageMark(dir))
	return res, nil
}

// usableIndex tells whether Badger can be trusted to open the log: damage
// confined to value-log files (whose values Badger checks as it reads
// them), or none, is fine; a damaged table or manifest makes Badger panic or
// open empty.
func usableIndex(dir string) bool {
	_, err := badgerdb.Check(dir, true, false)
	var de *badgerdb.DamagedError
	if err == nil {
		return true
	}
	if !errors.As(err, &de) {
		return false
	}
	return strings.HasSuffix(de.File, ".vlog") || de.File == "DISCARD" || strings.HasPrefix(de.File, "mailvault.sums")
}

func salvageThroughBadger(dir string, add func(Record) error, lost func(uint64, string) error) error {
	bo := badgerOptions(Options{Dir: dir}).WithVerifyValueChecksum(true)
	db, err := badger.Open(bo.WithReadOnly(true))
	if errors.Is(err, badger.ErrTruncateNeeded) {
		db, err = badger.Open(bo)
	}
	if err != nil && strings.Contains(err.Error(), "lock") {
		return fmt.Errorf("salvage %s: %w", dir, ErrLocked)
	}
	if err != nil {
		return salvageFromValueLog(dir, add, lost)
	}
	defer db.Close()
	return db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("e/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) != 10 {
				continue
			}
			seq := binary.BigEndian.Uint64(k[2:])
			rec, err := readRecord(it.Item(), k)
			if err != nil {
				var ce *CorruptError
				why := err.Error()
				if errors.As(err, &ce) {
					why = ce.Cause().Error()
				}
				if err := lost(seq, why); err != nil {
					return err
				}
				continue
			}
			if err := add(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// Badger's value-log entry format (value.go, structs.go): a 20-byte file
// header, then entries of meta, user meta, uvarint key length, value
// length and expiry, key (with an 8-byte version suffix), value, and a
// CRC-32C of all of it. Memtable files (.mem) have the same format.
const (
	vlogHeaderSize  = 20
	bitDelete       = 1 << 0
	bitValuePointer = 1 << 1
)

type found struct {
	file    string
	off     int64
	n       int
	version uint64
	deleted bool
}

// salvageFromValueLog reads every record straight from the log's value-log
// and memtable files, the newest version of each, when Badger's own index
// of them is unusable.
func salvageFromValueLog(dir string, add func(Record) error, lost func(uint64, string) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".vlog") || strings.HasSuffix(e.Name(), ".mem") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	latest := map[uint64]found{}
	for _, path := range files {
		if err := scanValueLog(path, func(key []byte, meta byte, off int64, n int) {
			if len(key) != 18 || string(key[:2]) != "e/" || meta&bitValuePointer != 0 {
				return
			}
			seq := binary.BigEndian.Uint64(key[2:10])
			version := binary.BigEndian.Uint64(key[10:])
			if cur, ok := latest[seq]; !ok || version >= cur.version {
				latest[seq] = found{file: path, off: off, n: n, version: version, deleted: meta&bitDelete != 0}
			}
		}); err != nil {
			return err
		}
	}
	seqs := make([]uint64, 0, len(latest))
	for s := range latest {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	prev := uint64(0)
	for _, seq := range seqs {
		for gap := prev + 1; gap < seq; gap++ {
			if err := lost(gap, "not found in the value log files"); err != nil {
				return err
			}
		}
		prev = seq
		f := latest[seq]
		if f.deleted {
			continue
		}
		val := make([]byte, f.n)
		rec, err := func() (Record, error) {
			fh, err := os.Open(f.file)
			if err != nil {
				return Record{}, err
			}
			defer fh.Close()
			if _, err := fh.ReadAt(val, f.off); err != nil {
				return Record{}, err
			}
			return decodeRecord(eventKey(seq), val)
		}()
		if err != nil {
			if err := lost(seq, err.Error()); err != nil {
				return err
			}
			continue
		}
		if err := add(rec); err != nil {
			return err
		}
	}
	return nil
}

// scanValueLog calls fn with each whole entry of a value-log file: its key,
// meta byte, and where its value lies. It stops at the first entry that is
// cut short or does not match its checksum.
func scanValueLog(path string, fn func(key []byte, meta byte, valueOff int64, valueLen int)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	if _, err := r.Discard(vlogHeaderSize); err != nil {
		return nil
	}
	off := int64(vlogHeaderSize)
	for {
		h := crc32.New(castagnoli)
		tee := io.TeeReader(r, h)
		var head [2]byte
		if _, err := io.ReadFull(tee, head[:]); err != nil {
			return nil
		}
		br := byteReader{tee}
		klen, err1 := binary.ReadUvarint(br)
		vlen, err2 := binary.ReadUvarint(br)
		exp, err3 := binary.ReadUvarint(br)
		if err1 != nil || err2 != nil || err3 != nil || klen == 0 || klen > 1<<16 || vlen > 1<<30 {
			return nil
		}
		hlen := int64(2 + uvarintLen(klen) + uvarintLen(vlen) + uvarintLen(exp))
		kv := make([]byte, klen+vlen)
		if _, err := io.ReadFull(tee, kv); err != nil {
			return nil
		}
		var sum [4]byte
		if _, err := io.ReadFull(r, sum[:]); err != nil || binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
			return nil
		}
		fn(kv[:klen], head[0], off+hlen+int64(klen), int(vlen))
		off += hlen + int64(klen+vlen) + 4
	}
}

// byteReader reads single bytes for ReadUvarint.
type byteReader struct{ io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var one [1]byte
	_, err := io.ReadFull(b.Reader, one[:])
	return one[0], err
}

func uvarintLen(x uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], x)
}
