// Package eventlog is mailvault's append-only event log on Badger: one global
// sequence, indexes by topic, run, mailbox and folder, deduplication by record
// id, inline projections written in the same transaction as the records that
// change them, and a watermill Publisher/Subscriber on top (pubsub.go).
//
// Key layout (all sequence numbers big-endian, so keys sort in log order):
//
//	e/<seq>                      record (JSON)
//	u/<topic>\x00<uuid>          seq of the record with that id (dedup)
//	t/<topic>\x00<seq>           topic index
//	r/<run>                      run index: first and last seq of the run
//	f/<mailbox>\x00<folder>\x00<seq> folder index (folder "" for mailbox-level
//	                             records); the mailbox index is its prefix
//	c/<group>\x00<topic>         consumer cursor
//	p/...                        projections (owned by hooks)
package eventlog

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/dgraph-io/badger/v4"

	"github.com/mailvault/mailvault/adapters/badgerdb"
)

// Metadata keys the log indexes records by.
const (
	MetaRun      = "run"
	MetaMailbox  = "mailbox"
	MetaFolderID = "folder_id"
	MetaType     = "type"
)

var (
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("event log is closed")
	// ErrLocked means another process holds the data directory.
	ErrLocked = errors.New("data directory is in use by another mailvault process")
	// ErrDamaged means the log cannot be trusted: a record, or one of its
	// files, is damaged. Nothing more is appended to it until it is
	// repaired (see Salvage).
	ErrDamaged = errors.New("the event log is damaged")
	// ErrFull means the disk holding the log is too full to append safely.
	ErrFull = errors.New("the disk holding the event log is full")
	// ErrReadOnly is returned by appends to a log opened for reading.
	ErrReadOnly = errors.New("the event log is open for reading only")
)

// CorruptError names a log record that cannot be read or does not match its
// checksum.
type CorruptError struct {
	Key []byte
	Seq uint64
	Err error
}

func (e *CorruptError) Error() string {
	if e.Seq > 0 {
		return fmt.Sprintf("event log record %d is corrupt: %v", e.Seq, e.Err)
	}
	return fmt.Sprintf("event log entry %q is corrupt: %v", e.Key, e.Err)
}

func (e *CorruptError) Unwrap() error { return ErrDamaged }

// Cause is what is wrong with the record.
func (e *CorruptError) Cause() error { return e.Err }

// Record is one entry of the log: a watermill message with its place in the
// global sequence.
type Record struct {
	Seq      uint64
	Topic    string
	UUID     string
	Metadata map[string]string
	Payload  []byte
}

// A stored record is a JSON header line, a newline, and the payload bytes as
// published: mailvault's events are JSON, so the entry reads as two JSON
// documents, and payloads that are not JSON (watermill allows any bytes) need
// no escaping.
type recordHeader struct {
	Seq      uint64            `json:"seq"`
	Topic    string            `json:"topic"`
	UUID     string            `json:"uuid"`
	Metadata map[string]string `json:"meta,omitempty"`
}

// Tx is the view of an append transaction a projection hook gets. Keys are
// relative to the projection prefix p/.
type Tx interface {
	Get(key []byte) ([]byte, error) // nil, nil when absent
	Set(key, value []byte) error
	Delete(key []byte) error
}

// Hook maintains a projection: it is called for every new record inside the
// transaction that appends it, so the projection is never behind or ahead of
// the log.
type Hook func(tx Tx, rec *Record) error

// Options configure Open.
type Options struct {
	Dir      string
	InMemory bool
	Hooks    []Hook
	// SyncWrites makes every commit durable against power loss, not only
	// against a killed process.
	SyncWrites bool
	// OnCommit, when set, is told how long each commit of appends took and
	// how many records it wrote (for metrics).
	OnCommit func(d time.Duration, records int)
	// ReadOnly opens the log for reading: nothing in it changes, and it
	// opens on a full disk.
	ReadOnly bool
}

// Log is the event log. It is safe for concurrent use.
type Log struct {
	db      *badgerdb.DB
	dir     string
	reserve int64 // free space appends keep on the log's disk
	// valueThreshold is the value size from which Badger keeps a value in
	// its value log, not in the transaction's memtable entry.
	valueThreshold int
	space          badgerdb.SpaceGauge
	readOnly       bool
	hooks          []Hook
	onCommit       func(time.Duration, int)

	damagedMu sync.Mutex
	damaged   error // set once the log is known damaged: appends refuse

	appends chan *appendReq
	done    chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	last      uint64
	changed   chan struct{} // closed and replaced on every commit
	closed    bool
	observers map[int]func([]Record)
	obsSeq    int

	consumersMu sync.Mutex
	consumers   map[string]*consumer
}

type appendReq struct {
	recs  []Record
	reply chan appendResult
	// keepSeq writes records under the sequence numbers they carry (a
	// salvage copying a log), leaving gaps where those leave them.
	keepSeq bool
}

type appendResult struct {
	seqs []uint64
	err  error
}

// badgerOptions are the log's database options: sized for a small daemon.
func badgerOptions(opts Options) badger.Options {
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(nil).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		// Sized for a small daemon, not a database server: memory must stay
		// bounded while a million-item mailbox streams through.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		// Key-value separation: event bodies go to the value log once and
		// stay there (the log is append-only, nothing to collect); the LSM
		// tree holds keys and small projection values only, so compactions
		// move little data and need little memory.
		WithValueThreshold(compressAbove).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		// One appender writes; there is nothing to detect conflicts against.
		WithDetectConflicts(false)
	if opts.InMemory {
		// No value log in memory: every value stays in the LSM tree.
		bo = bo.WithDir("").WithValueDir("").WithValueThreshold(1 << 20)
	}
	return bo
}

// Open opens or creates the log.
func Open(opts Options) (*Log, error) {
	bo := badgerOptions(opts)
	reserve := badgerdb.Reserve(bo)
	if !opts.InMemory && !opts.ReadOnly {
		if err := checkSpace(opts.Dir, reserve); err != nil {
			return nil, err
		}
	}
	db, err := badgerdb.Open(bo.WithReadOnly(opts.ReadOnly))
	if errors.Is(err, badgerdb.ErrLocked) {
		return nil, fmt.Errorf("open %s: %w", opts.Dir, ErrLocked)
	}
	if errors.Is(err, badgerdb.ErrDamaged) {
		return nil, fmt.Errorf("open event log: %w: %v", ErrDamaged, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	l := &Log{
		db:             db,
		dir:            opts.Dir,
		reserve:        reserve,
		valueThreshold: int(bo.ValueThreshold),
		space:          badgerdb.SpaceGauge{Dir: opts.Dir, Recheck: 8 << 20},
		readOnly:       opts.ReadOnly,
		hooks:          opts.Hooks,
		onCommit:       opts.OnCommit,
		appends:        make(chan *appendReq, 256),
		done:           make(chan struct{}),
		changed:        make(chan struct{}),
		consumers:      map[string]*consumer{},
	}
	if l.last, err = l.findLast(); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.InMemory {
		if b, err := os.ReadFile(damageMark(opts.Dir)); err == nil {
			l.damaged = fmt.Errorf("%w: %s", ErrDamaged, strings.TrimSpace(string(b)))
		}
	}
	l.wg.Add(1)
	go l.appender()
	return l, nil
}

// Close stops the appender and closes the database. Subscribers must be
// closed first.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	l.wg.Wait()
	return l.db.Close()
}

func seqBytes(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}

func eventKey(seq uint64) []byte { return append([]byte("e/"), seqBytes(seq)...) }

func indexKey(prefix string, parts []string, seq uint64) []byte {
	k := []byte(prefix)
	for _, p := range parts {
		k = append(k, p...)
		k = append(k, 0)
	}
	return append(k, seqBytes(seq)...)
}

func (l *Log) findLast() (uint64, error) {
	var last uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte("e/")})
		defer it.Close()
		it.Seek([]byte("e/\xff"))
		if it.Valid() {
			k := it.Item().Key()
			if len(k) != 10 {
				return &CorruptError{Key: append([]byte(nil), k...), Err: errors.New("malformed key")}
			}
			last = binary.BigEndian.Uint64(k[2:])
		}
		return nil
	})
	return last, err
}

// LastSeq is the sequence number of the newest record.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Changed returns a channel closed at the next commit after the call.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Observe registers fn to be called, in sequence order, with the records of
// every commit, until stop is called. It runs on the appender goroutine and
// must be quick.
func (l *Log) Observe(fn func([]Record)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.observers == nil {
		l.observers = map[int]func([]Record){}
	}
	l.obsSeq++
	id := l.obsSeq
	l.observers[id] = fn
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.observers, id)
	}
}

// Append writes recs atomically, in order, each under topic rec.Topic. A
// record whose UUID is already in the log is not written again; its existing
// sequence number is returned. This makes re-processing after a crash safe.
func (l *Log) Append(ctx context.Context, recs []Record) ([]uint64, error) {
	return l.append(ctx, &appendReq{recs: recs, reply: make(chan appendResult, 1)})
}

func (l *Log) append(ctx context.Context, req *appendReq) ([]uint64, error) {
	recs := req.recs
	if len(recs) == 0 {
		return nil, nil
	}
	if l.readOnly {
		return nil, ErrReadOnly
	}
	if err := l.Damaged(); err != nil {
		return nil, err
	}
	select {
	case l.appends <- req:
	case <-l.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-req.reply:
		return res.seqs, res.err
	case <-l.done:
		// The appender drains pending requests before stopping.
		res := <-req.reply
		return res.seqs, res.err
	}
}

// appender is the single writer: it allocates sequence numbers and commits, so
// a record with seq n is never visible before seq n-1 (tailers cannot skip).
// Concurrent appends are grouped into one transaction.
func (l *Log) appender() {
	defer l.wg.Done()
	for {
		var first *appendReq
		select {
		case first = <-l.appends:
		case <-l.done:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-l.appends:
					l.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
		group := []*appendReq{first}
		n := len(first.recs)
	drain:
		// About five keys a record: 2,048 records stay well inside Badger's
		// per-transaction limits at this memtable size.
		for n < 2048 {
			select {
			case r := <-l.appends:
				group = append(group, r)
				n += len(r.recs)
			default:
				break drain
			}
		}
		l.commit(group)
	}
}

func (l *Log) commit(group []*appendReq) {
	// Each request is atomic on its own; a group shares a transaction only
	// for speed. If the group fails as a whole, retry requests one by one so
	// that one bad request does not fail its neighbours.
	t0 := time.Now()
	var committed []Record
	var results []appendResult
	err := l.Damaged()
	if err == nil && l.dir != "" {
		var need int64
		for _, r := range group {
			for _, rec := range r.recs {
				need += int64(len(rec.Payload))
			}
		}
		// Badger writes each record to its value log and memtable, and
		// later to tables: count three times its size.
		if free, ok := l.space.Free(3*need, l.reserve); ok && free < l.reserve {
			err = spaceError(l.dir, free, l.reserve)
		}
	}
	if err != nil {
		for _, r := range group {
			r.reply <- appendResult{err: err}
		}
		return
	}
	committed, results, err = l.tryCommit(group)
	if l.onCommit != nil && err == nil {
		n := 0
		for _, r := range group {
			n += len(r.recs)
		}
		l.onCommit(time.Since(t0), n)
	}
	if err != nil && len(group) > 1 {
		for _, r := range group {
			l.commit([]*appendReq{r})
		}
		return
	}
	if err == nil && len(committed) > 0 {
		l.mu.Lock()
		ch := l.changed
		l.changed = make(chan struct{})
		obs := make([]func([]Record), 0, len(l.observers))
		for _, fn := range l.observers {
			obs = append(obs, fn)
		}
		l.mu.Unlock()
		// Observers see a commit before its appender is answered, so anyone
		// who learns of a record from Append or a tailer finds it observed.
		for _, fn := range obs {
			fn(committed)
		}
		close(ch)
	}
	for i, r := range group {
		if err != nil {
			r.reply <- appendResult{err: err}
		} else {
			r.reply <- results[i]
		}
	}
}

type hookTx struct{ txn *badger.Txn }

func pkey(k []byte) []byte { return append([]byte("p/"), k...) }

func (h hookTx) Get(key []byte) ([]byte, error) {
	it, err := h.txn.Get(pkey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}
func (h hookTx) Set(key, value []byte) error { return h.txn.Set(pkey(key), value) }
func (h hookTx) Delete(key []byte) error     { return h.txn.Delete(pkey(key)) }

// Limits of one append transaction, well inside Badger's (15 % of the 8 MB
// memtable, 1.26 MB, and a count of entries derived from it). Records are never split
// across transactions; a request larger than this spans several, which the
// id deduplication makes safe to retry.
const (
	txnMaxEntries = 8000
	txnMaxBytes   = 1 << 20
)

// appendTxn is the transaction being filled, with its running size. It is
// also the Tx projection hooks write through, so their keys are counted.
type appendTxn struct {
	l        *Log
	txn      *badger.Txn
	entries  int
	bytes    int
	runSpans map[string][2]uint64
}

func (a *appendTxn) Get(key []byte) ([]byte, error) { return hookTx{a.txn}.Get(key) }
func (a *appendTxn) Set(key, value []byte) error    { return a.set(pkey(key), value) }
func (a *appendTxn) Delete(key []byte) error {
	a.entries++
	a.bytes += len(key) + 20
	return a.txn.Delete(pkey(key))
}

func (a *appendTxn) set(key, value []byte) error {
	a.entries++
	// What Badger counts against the transaction: the key, its version,
	// and the value where it stays inline (a pointer to the value log
	// otherwise), plus a few bytes of its own.
	v := len(value)
	if v >= a.l.valueThreshold {
		v = 12
	}
	a.bytes += len(key) + v + 20
	if err := a.txn.Set(key, value); err != nil {
		return conciseErr{err}
	}
	return nil
}

func (a *appendTxn) full() bool { return a.entries >= txnMaxEntries || a.bytes >= txnMaxBytes }

// commit writes the run spans, commits, and moves the log's last sequence
// number, so that a later failure cannot make the next append reuse it.
func (a *appendTxn) commit(last uint64) error {
	// A run is written by one process at a time, so its records form a
	// span of the sequence: one key per run and commit instead of one per
	// record. Readers filter by run, so interleaved runs stay correct.
	for run, span := range a.runSpans {
		key := []byte("r/" + run)
		first := span[0]
		if it, err := a.txn.Get(key); err == nil {
			v, err := it.ValueCopy(nil)
			if err != nil || len(v) != 16 {
				return &CorruptError{Key: key, Err: fmt.Errorf("run index entry: %v", err)}
			}
			first = binary.BigEndian.Uint64(v[:8])
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("append: %w", err)
		}
		if err := a.set(key, append(seqBytes(first), seqBytes(span[1])...)); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := a.txn.Commit(); err != nil {
		return fmt.Errorf("append: commit: %w", err)
	}
	a.l.mu.Lock()
	if last > a.l.last {
		a.l.last = last
	}
	a.l.mu.Unlock()
	return nil
}

func (l *Log) newAppendTxn() *appendTxn {
	return &appendTxn{l: l, txn: l.db.NewTransaction(true), runSpans: map[string][2]uint64{}}
}

func (l *Log) tryCommit(group []*appendReq) ([]Record, []appendResult, error) {
	l.mu.Lock()
	next := l.last + 1
	l.mu.Unlock()
	var committed []Record
	results := make([]appendResult, len(group))
	at := l.newAppendTxn()
	defer func() { at.txn.Discard() }()
	seen := map[string]uint64{}
	for gi, req := range group {
		seqs := make([]uint64, len(req.recs))
		for i := range req.recs {
			rec := req.recs[i]
			if rec.UUID == "" {
				return nil, nil, errors.New("append: record without id")
			}
			ukey := idKey(rec.Topic, rec.UUID)
			if s, ok := seen[string(ukey)]; ok {
				seqs[i] = s
				continue
			}
			if it, err := at.txn.Get(ukey); err == nil {
				v, err := it.ValueCopy(nil)
				if err != nil || len(v) != 8 {
					return nil, nil, fmt.Errorf("append: read id index for %s: %v", rec.UUID, err)
				}
				seqs[i] = binary.BigEndian.Uint64(v)
				seen[string(ukey)] = seqs[i]
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return nil, nil, fmt.Errorf("append: %w", err)
			}
			if at.full() {
				if err := at.commit(next - 1); err != nil {
					return nil, nil, err
				}
				at.txn.Discard()
				at = l.newAppendTxn()
			}
			if req.keepSeq && rec.Seq > next {
				next = rec.Seq
			}
			rec.Seq = next
			next++
			val, err := encodeRecord(&rec)
			if err != nil {
				return nil, nil, err
			}
			sets := [][2][]byte{
				{eventKey(rec.Seq), val},
				{ukey, seqBytes(rec.Seq)},
				{indexKey("t/", []string{rec.Topic}, rec.Seq), nil},
			}
			if run := rec.Metadata[MetaRun]; run != "" {
				r := at.runSpans[run]
				if r[0] == 0 {
					r[0] = rec.Seq
				}
				r[1] = rec.Seq
				at.runSpans[run] = r
			}
			if mbx := rec.Metadata[MetaMailbox]; mbx != "" {
				sets = append(sets, [2][]byte{indexKey("f/", []string{mbx, rec.Metadata[MetaFolderID]}, rec.Seq), nil})
			}
			for _, kv := range sets {
				if err := at.set(kv[0], kv[1]); err != nil {
					return nil, nil, fmt.Errorf("append record %s (%d bytes): %w", rec.UUID, len(val), err)
				}
			}
			for _, h := range l.hooks {
				if err := h(at, &rec); err != nil {
					return nil, nil, fmt.Errorf("append: projection: %w", err)
				}
			}
			seqs[i] = rec.Seq
			seen[string(ukey)] = rec.Seq
			committed = append(committed, rec)
		}
		results[gi] = appendResult{seqs: seqs}
	}
	if err := at.commit(next - 1); err != nil {
		return nil, nil, err
	}
	return committed, results, nil
}

// recordMark starts a record that carries its checksum: the mark, the
// CRC-32C of everything after it, then the record. (Records written before
// checksums start with '{'.)
const recordMark = 0x01

// recordMarkZstd starts a record stored compressed: the mark, the CRC-32C
// of the compressed bytes, then the record (header and payload) in zstd.
// Large records (a fetched batch's stored items) are mostly ids and hashes
// repeated in the same shape, and shrink several times; small ones are
// kept as they are.
const recordMarkZstd = 0x02

// recordMarkS2Dict starts a record stored compressed against the built-in
// dictionary of event records (recordDictionary): the mark, the CRC-32C of
// the compressed bytes, then the record in S2 (the Snappy extension of
// klauspost/compress) with that dictionary. Most records are a few hundred
// bytes of JSON whose keys and shapes repeat from one to the next: alone
// they hardly compress, against the dictionary four times or more. S2
// rather than zstd: with a dictionary both shrink such a record about as
// much, and S2 does it in under a microsecond where zstd's per-frame setup
// costs five. Records up to compressDictBelow bytes are written this way
// since the dictionary was added; the older marks stay readable.
const recordMarkS2Dict = 0x03

// compressDictBelow: larger records (a batch's stored items) are mostly
// their own repetitions and compress better with zstd alone.
const compressDictBelow = 2048

// recordDictionary is a raw dictionary of typical records (header and
// payload of each kind of event). Its bytes are part of the log's format:
// a record written against them needs exactly them to be read, so they
// never change (a test holds their hash); a better one would be a new
// mark beside this one.
//
//go:embed records.zdict
var recordDictionary []byte

// compressAbove is the record size from which a record is compressed,
// and the least it is compressed to: the log's value threshold, so that
// every record lives in the value log, where Salvage finds it when
// Badger's own index is gone.
const compressAbove = 64

// maxRecordSize bounds what a compressed record may expand to.
const maxRecordSize = 64 << 20

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// Both are safe for concurrent use through EncodeAll and DecodeAll.
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxRecordSize))
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	// Safe for concurrent use.
	s2Dict = s2.MakeDict(recordDictionary, nil)
)

func encodeRecord(rec *Record) ([]byte, error) {
	out := make([]byte, 5, 133+len(rec.Payload))
	out[0] = recordMark
	out = append(out, `{"seq":`...)
	out = strconv.AppendUint(out, rec.Seq, 10)
	out = append(out, `,"topic":`...)
	out = appendJSONString(out, rec.Topic)
	out = append(out, `,"uuid":`...)
	out = appendJSONString(out, rec.UUID)
	if len(rec.Metadata) > 0 {
		keys := make([]string, 0, len(rec.Metadata))
		for k := range rec.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out = append(out, `,"meta":{`...)
		for i, k := range keys {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendJSONString(out, k)
			out = append(out, ':')
			out = appendJSONString(out, rec.Metadata[k])
		}
		out = append(out, '}')
	}
	out = append(out, "}\n"...)
	out = append(out, rec.Payload...)
	switch {
	case len(out) > compressDictBelow:
		z := zstdEncoder.EncodeAll(out[5:], make([]byte, 5, 5+len(out)/3))
		if len(z) < len(out) {
			out = z
			out[0] = recordMarkZstd
		}
	case len(out) > compressAbove:
		z := append(make([]byte, 5, 5+s2.MaxEncodedLen(len(out))), s2Dict.Encode(nil, out[5:])...)
		if len(z) < len(out) && len(z) > compressAbove {
			out = z
			out[0] = recordMarkS2Dict
		}
	}
	binary.BigEndian.PutUint32(out[1:5], crc32.Checksum(out[5:], castagnoli))
	return out, nil
}

// appendJSONString appends s as a JSON string; plain ASCII, the usual case,
// is copied as is, anything else goes through encoding/json.
func appendJSONString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

func decodeRecord(key, val []byte) (Record, error) {
	seq := uint64(0)
	if len(key) == 10 {
		seq = binary.BigEndian.Uint64(key[2:])
	}
	corrupt := func(err error) (Record, error) {
		return Record{}, &CorruptError{Key: append([]byte(nil), key...), Seq: seq, Err: err}
	}
	if len(val) > 0 && (val[0] == recordMark || val[0] == recordMarkZstd || val[0] == recordMarkS2Dict) {
		if len(val) < 5 || crc32.Checksum(val[5:], castagnoli) != binary.BigEndian.Uint32(val[1:5]) {
			return corrupt(errors.New("its checksum does not match its content"))
		}
		switch val[0] {
		case recordMarkZstd:
			plain, err := zstdDecoder.DecodeAll(val[5:], nil)
			if err != nil {
				return corrupt(fmt.Errorf("it does not decompress: %w", err))
			}
			val = plain
		case recordMarkS2Dict:
			if n, err := s2.DecodedLen(val[5:]); err != nil || n > maxRecordSize {
				return corrupt(fmt.Errorf("it does not decompress: length %d, %v", n, err))
			}
			plain, err := s2Dict.Decode(nil, val[5:])
			if err != nil {
				return corrupt(fmt.Errorf("it does not decompress: %w", err))
			}
			val = plain
		default:
			val = val[5:]
		}
	}
	nl := bytes.IndexByte(val, '\n')
	if nl < 0 {
		return corrupt(errors.New("no record header"))
	}
	var h recordHeader
	if err := json.Unmarshal(val[:nl], &h); err != nil {
		return corrupt(err)
	}
	if h.Seq != seq || h.UUID == "" {
		return corrupt(fmt.Errorf("header names seq %d id %q", h.Seq, h.UUID))
	}
	return Record{Seq: h.Seq, Topic: h.Topic, UUID: h.UUID, Metadata: h.Metadata, Payload: append([]byte(nil), val[nl+1:]...)}, nil
}

// idKey is the dedup key: ids are unique per topic, as message ids are per
// stream in JetStream.
func idKey(topic, uuid string) []byte {
	return append(append(append([]byte("u/"), topic...), 0), uuid...)
}

// Has reports whether a record with this id is in the topic.
func (l *Log) Has(topic, uuid string) (bool, error) {
	err := l.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(idKey(topic, uuid))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get reads the record with sequence number seq.
func (l *Log) Get(seq uint64) (Record, error) {
	var rec Record
	err := l.db.View(func(txn *badger.Txn) error {
		k := eventKey(seq)
		it, err := txn.Get(k)
		if err != nil {
			return fmt.Errorf("read event %d: %w", seq, err)
		}
		rec, err = readRecord(it, k)
		return err
	})
	return rec, l.noteCorrupt(err)
}

// readRecord reads and decodes the record of an item; a value Badger
// cannot read (its checksum in the value log) is a CorruptError too.
func readRecord(item *badger.Item, key []byte) (Record, error) {
	var rec Record
	err := item.Value(func(v []byte) error {
		var err error
		rec, err = decodeRecord(key, v)
		return err
	})
	var ce *CorruptError
	if err != nil && !errors.As(err, &ce) {
		seq := uint64(0)
		if len(key) == 10 {
			seq = binary.BigEndian.Uint64(key[2:])
		}
		err = &CorruptError{Key: append([]byte(nil), key...), Seq: seq, Err: conciseErr{err}}
	}
	return rec, err
}

// noteCorrupt remembers that a read found the log damaged: from then on
// this process appends nothing, and a mark beside the log tells every
// later one, until the log is repaired.
func (l *Log) noteCorrupt(err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		l.markDamaged(ce.Error())
	}
	return err
}

func (l *Log) markDamaged(reason string) {
	l.damagedMu.Lock()
	defer l.damagedMu.Unlock()
	if l.damaged != nil {
		return
	}
	l.damaged = fmt.Errorf("%w: %s", ErrDamaged, reason)
	if l.dir != "" {
		_ = os.WriteFile(damageMark(l.dir), []byte(reason+"\n"), 0o600)
	}
}

// Damaged returns why the log cannot be trusted, or nil.
func (l *Log) Damaged() error {
	l.damagedMu.Lock()
	defer l.damagedMu.Unlock()
	return l.damaged
}

// damageMark is the file beside a damaged log that says why it is.
func damageMark(dir string) string { return filepath.Clean(dir) + ".damaged" }

// checkSpace refuses appends while the log's disk has less than reserve
// free: Badger fills memory-mapped files sized in advance, and a write into
// one on a full disk kills the process instead of failing.
func checkSpace(dir string, reserve int64) error {
	free, ok := badgerdb.FreeBytes(dir)
	if !ok || free >= reserve {
		return nil
	}
	return spaceError(dir, free, reserve)
}

func spaceError(dir string, free, reserve int64) error {
	return fmt.Errorf("%w: %s has %.1f MiB free; mailvault keeps %.0f MiB free beside its event log and appends nothing below that (free some space and run again: everything so far is kept)",
		ErrFull, dir, float64(free)/(1<<20), float64(reserve)/(1<<20))
}

// Index selects which records a Scan visits.
type Index struct {
	prefix []byte
	run    string // set for run scans: the span of r/<run>, filtered
	sorted bool   // prefix covers several folders: collect and sort seqs
}

// All is every record, in log order.
func All() Index { return Index{prefix: []byte("e/")} }

// Topic selects the records of one topic.
func Topic(topic string) Index {
	return Index{prefix: indexKey("t/", []string{topic}, 0)[:3+len(topic)]}
}

// Run selects the records of one run.
func Run(run string) Index { return Index{run: run} }

// Mailbox selects the records of one mailbox, across its folders.
func Mailbox(mbx string) Index {
	return Index{prefix: []byte("f/" + mbx + "\x00"), sorted: true}
}

// Folder selects the records of one folder of a mailbox.
func Folder(mbx, folderID string) Index {
	return Index{prefix: indexKey("f/", []string{mbx, folderID}, 0)[:4+len(mbx)+len(folderID)]}
}

// Scan calls fn for each record of idx with seq > after, in order, until fn
// returns an error (ErrStop ends the scan without error).
func (l *Log) Scan(idx Index, after uint64, fn func(Record) error) error {
	err := l.db.View(func(txn *badger.Txn) error {
		switch {
		case idx.run != "":
			return l.scanRun(txn, idx.run, after, fn)
		case bytes.Equal(idx.prefix, []byte("e/")):
			return scanEvents(txn, after+1, ^uint64(0), fn)
		case idx.sorted:
			return scanSorted(txn, idx.prefix, after, fn)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: idx.prefix})
		defer it.Close()
		start := append(append([]byte(nil), idx.prefix...), seqBytes(after+1)...)
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(idx.prefix)+8 {
				continue // a longer key from another index entry sharing the prefix
			}
			if err := emit(txn, binary.BigEndian.Uint64(k[len(idx.prefix):]), fn); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return l.noteCorrupt(err)
}

func emit(txn *badger.Txn, seq uint64, fn func(Record) error) error {
	ek := eventKey(seq)
	item, err := txn.Get(ek)
	if err != nil {
		return &CorruptError{Key: ek, Seq: seq, Err: fmt.Errorf("indexed but unreadable: %w", err)}
	}
	rec, err := readRecord(item, ek)
	if err != nil {
		return err
	}
	return fn(rec)
}

func scanEvents(txn *badger.Txn, from, to uint64, fn func(Record) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("e/"), PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Seek(eventKey(from)); it.Valid(); it.Next() {
		item := it.Item()
		k := item.KeyCopy(nil)
		if len(k) == 10 && binary.BigEndian.Uint64(k[2:]) > to {
			return nil
		}
		rec, err := readRecord(item, k)
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// runSpan reads the run index: the first and last seq of run's records
// (0, 0 when the log has none).
func runSpan(txn *badger.Txn, run string) (first, last uint64, err error) {
	key := []byte("r/" + run)
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil || len(v) != 16 {
		return 0, 0, &CorruptError{Key: key, Err: fmt.Errorf("run index entry: %v", err)}
	}
	return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:]), nil
}

func (l *Log) scanRun(txn *badger.Txn, run string, after uint64, fn func(Record) error) error {
	first, last, err := runSpan(txn, run)
	if err != nil || last == 0 {
		return err
	}
	return scanEvents(txn, max(first, after+1), last, func(rec Record) error {
		if rec.Metadata[MetaRun] != run {
			return nil
		}
		return fn(rec)
	})
}

// scanSorted visits the records under a prefix that spans several index
// keys (a mailbox's folders) in sequence order. It holds the matching
// sequence numbers in memory: 8 bytes a record.
func scanSorted(txn *badger.Txn, prefix []byte, after uint64, fn func(Record) error) error {
	var seqs []uint64
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if s := binary.BigEndian.Uint64(k[len(k)-8:]); s > after {
			seqs = append(seqs, s)
		}
	}
	it.Close()
	slices.Sort(seqs)
	for _, s := range seqs {
		if err := emit(txn, s, fn); err != nil {
			return err
		}
	}
	return nil
}

// ErrStop ends a Scan early without error.
var ErrStop = errors.New("stop scan")

// next returns the first record of idx with seq > after, or ok=false.
func (l *Log) next(idx Index, after uint64) (rec Record, ok bool, err error) {
	err = l.Scan(idx, after, func(r Record) error {
		rec, ok = r, true
		return ErrStop
	})
	return rec, ok, err
}

// ReadProjection reads a projection key (relative to p/); nil when absent.
func (l *Log) ReadProjection(key []byte) ([]byte, error) {
	var out []byte
	err := l.db.View(func(txn *badger.Txn) error {
		v, err := hookTx{txn}.Get(key)
		out = v
		return err
	})
	return out, err
}

// HasProjection says whether any projection key starts with prefix,
// reading keys only.
func (l *Log) HasProjection(prefix []byte) (bool, error) {
	found := false
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pkey(prefix)})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	})
	return found, err
}

// ScanProjection calls fn for each projection key with the prefix, in order.
func (l *Log) ScanProjection(prefix []byte, fn func(key, value []byte) error) error {
	return l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pkey(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(it.Item().KeyCopy(nil)[2:], v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *Log) readCursor(key []byte) (uint64, error) {
	var seq uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return &CorruptError{Key: append([]byte(nil), key...), Err: errors.New("cursor is not 8 bytes")}
			}
			seq = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return seq, err
}

func (l *Log) writeCursor(key []byte, seq uint64) error {
	return l.db.Update(func(txn *badger.Txn) error { return txn.Set(key, seqBytes(seq)) })
}

// CorruptForTest overwrites the record at seq with raw bytes. It exists so
// that tests can prove a damaged log is reported, not skipped.
func (l *Log) CorruptForTest(seq uint64, raw []byte) error {
	return l.db.Update(func(txn *badger.Txn) error { return txn.Set(eventKey(seq), raw) })
}

// conciseErr keeps Badger's message to its first line: some of its errors
// append a hex dump of the whole value.
type conciseErr struct{ err error }

func (c conciseErr) Error() string {
	msg := c.err.Error()
	if i := strings.IndexAny(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

func (c conciseErr) Unwrap() error { return c.err }

// Size is the bytes the log takes on disk (index and values).
func (l *Log) Size() int64 {
	lsm, vlog := l.db.Size()
	return lsm + vlog
}
