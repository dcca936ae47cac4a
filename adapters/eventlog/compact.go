package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/mailvault/mailvault/adapters/badgerdb"
)

// Compaction of a run: its detail records go, a summary record takes the
// place of the first of them. The log does not decide what is detail; the
// caller does, and passes the sequence numbers.
//
// Order, so that a kill at any point leaves a readable log: first one
// transaction writes the summary over the first removed record and marks
// the run "compaction begun" (x/<run>, the summary's seq and a 0); then the
// other records go in bounded transactions; last the mark says "done" (1).
// A reader meeting the summary ignores detail records that a kill left
// after it, and CompactRun called again on a begun run removes them.

const (
	compactBegun byte = 0
	compactDone  byte = 1
	// removeBatch bounds the records removed in one transaction (each has
	// four or five keys: well inside Badger's limit on a transaction).
	removeBatch = 500
)

func compactKey(run string) []byte { return []byte("x/" + run) }

// RunCompaction reports whether run was compacted: the summary's seq, and
// whether the compaction finished.
func (l *Log) RunCompaction(run string) (summary uint64, done, found bool, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(compactKey(run))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) != 9 {
			return &CorruptError{Key: compactKey(run), Err: fmt.Errorf("compaction mark of %d bytes", len(v))}
		}
		summary, done, found = binary.BigEndian.Uint64(v[:8]), v[8] == compactDone, true
		return nil
	})
	return summary, done, found, err
}

// RunSpan is the first and last seq of run's records (0, 0 when the log
// has none).
func (l *Log) RunSpan(run string) (first, last uint64, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		first, last, err = runSpan(txn, run)
		return err
	})
	return first, last, err
}

// CompactRun removes the records of run at seqs (ascending). With a
// summary, the summary is written under the first of them in the same
// transaction that removes it; without one the run must have been
// compacted before, and what a cut-short compaction left is removed.
func (l *Log) CompactRun(ctx context.Context, run string, seqs []uint64, summary *Record) error {
	if l.readOnly {
		return errors.New("compact: the event log is open read-only")
	}
	if err := l.Damaged(); err != nil {
		return err
	}
	if l.dir != "" {
		if err := checkSpace(l.dir, l.reserve); err != nil {
			return err
		}
	}
	sumSeq, _, found, err := l.RunCompaction(run)
	if err != nil {
		return err
	}
	if summary != nil {
		if found {
			return fmt.Errorf("compact run %s: it has a summary already (entry %d)", run, sumSeq)
		}
		if len(seqs) == 0 {
			return fmt.Errorf("compact run %s: nothing to replace by its summary", run)
		}
		sumSeq = seqs[0]
		if err := l.db.Update(func(txn *badger.Txn) error {
			if err := removeRecord(txn, run, sumSeq); err != nil {
				return err
			}
			rec := *summary
			rec.Seq = sumSeq
			if rec.Metadata[MetaRun] != run {
				return fmt.Errorf("summary of run %s carries run %q", run, rec.Metadata[MetaRun])
			}
			val, err := encodeRecord(&rec)
			if err != nil {
				return err
			}
			sets := [][2][]byte{
				{eventKey(sumSeq), val},
				{idKey(rec.Topic, rec.UUID), seqBytes(sumSeq)},
				{indexKey("t/", []string{rec.Topic}, sumSeq), nil},
				{compactKey(run), append(seqBytes(sumSeq), compactBegun)},
			}
			if mbx := rec.Metadata[MetaMailbox]; mbx != "" {
				sets = append(sets, [2][]byte{indexKey("f/", []string{mbx, rec.Metadata[MetaFolderID]}, sumSeq), nil})
			}
			for _, kv := range sets {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("compact run %s: write its summary: %w", run, l.noteCorrupt(err))
		}
		seqs = seqs[1:]
	} else if !found {
		return fmt.Errorf("compact run %s: no summary to keep", run)
	}
	for len(seqs) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("compact run %s: %w (run it again to finish: what is removed is counted in the summary)", run, err)
		}
		n := min(len(seqs), removeBatch)
		if err := l.db.Update(func(txn *badger.Txn) error {
			for _, s := range seqs[:n] {
				if s == sumSeq {
					continue
				}
				if err := removeRecord(txn, run, s); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("compact run %s: %w", run, l.noteCorrupt(err))
		}
		seqs = seqs[n:]
	}
	if err := l.db.Update(func(txn *badger.Txn) error {
		return txn.Set(compactKey(run), append(seqBytes(sumSeq), compactDone))
	}); err != nil {
		return fmt.Errorf("compact run %s: %w", run, err)
	}
	return nil
}

// removeRecord deletes the record at seq and its index entries. It must be
// one of run's (a caller's mistake must not cost another run its records).
func removeRecord(txn *badger.Txn, run string, seq uint64) error {
	ek := eventKey(seq)
	item, err := txn.Get(ek)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil // removed by an earlier, interrupted compaction
	}
	if err != nil {
		return err
	}
	rec, err := readRecord(item, ek)
	if err != nil {
		return err
	}
	if rec.Metadata[MetaRun] != run {
		return fmt.Errorf("entry %d belongs to run %q, not %s: left in place", seq, rec.Metadata[MetaRun], run)
	}
	keys := [][]byte{ek, indexKey("t/", []string{rec.Topic}, seq)}
	// The id index points here only if this record was the one written
	// under its id.
	uk := idKey(rec.Topic, rec.UUID)
	if it, err := txn.Get(uk); err == nil {
		if v, err := it.ValueCopy(nil); err == nil && len(v) == 8 && binary.BigEndian.Uint64(v) == seq {
			keys = append(keys, uk)
		}
	}
	if mbx := rec.Metadata[MetaMailbox]; mbx != "" {
		keys = append(keys, indexKey("f/", []string{mbx, rec.Metadata[MetaFolderID]}, seq))
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ReclaimSpace gives the disk space of removed records back: it compacts
// the index tree (which drops removed keys and counts the values they
// leave behind) and rewrites value-log files that are mostly garbage. It
// returns the log's size before and after, as Badger counts it.
func (l *Log) ReclaimSpace() (before, after int64, err error) {
	if l.readOnly {
		return 0, 0, errors.New("reclaim: the event log is open read-only")
	}
	before = l.diskSize()
	if err := l.db.Flatten(1); err != nil {
		return before, before, fmt.Errorf("reclaim: compact the index: %w", err)
	}
	for {
		err := l.db.RunValueLogGC(0.3)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			return before, l.diskSize(), fmt.Errorf("reclaim: rewrite the value log: %w", err)
		}
	}
	return before, l.diskSize(), nil
}

// diskSize is what the log's files take on disk now (Badger's own figures
// are refreshed once a minute).
func (l *Log) diskSize() int64 {
	if l.dir == "" {
		lsm, vlog := l.db.Size()
		return lsm + vlog
	}
	return badgerdb.DiskUsage(l.dir)
}
