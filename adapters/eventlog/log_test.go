package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

func rec(id, run, mbx, fid string) eventlog.Record {
	return eventlog.Record{Topic: "t", UUID: id, Payload: []byte(`{"x":1}`),
		Metadata: map[string]string{eventlog.MetaRun: run, eventlog.MetaMailbox: mbx, eventlog.MetaFolderID: fid}}
}

func seqs(t *testing.T, lg *eventlog.Log, idx eventlog.Index) string {
	t.Helper()
	var out []uint64
	if err := lg.Scan(idx, 0, func(r eventlog.Record) error { out = append(out, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

func TestReopenKeepsTheLogLocksItAndNamesACorruptEntry(t *testing.T) {
	dir := t.TempDir()
	lg, err := eventlog.Open(eventlog.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendIndexed(t, lg) // the index cases themselves are TestLogContract's
	want := seqs(t, lg, eventlog.Run("r1"))
	lg.Close()

	lg, err = eventlog.Open(eventlog.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	if lg.LastSeq() != 6 || seqs(t, lg, eventlog.Run("r1")) != want {
		t.Fatalf("reopened at %d, run r1 %s; want 6 and %s", lg.LastSeq(), seqs(t, lg, eventlog.Run("r1")), want)
	}
	if _, err := eventlog.Open(eventlog.Options{Dir: dir}); !errors.Is(err, eventlog.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	lg.CorruptForTest(3, []byte("garbage"))
	err = lg.Scan(eventlog.All(), 0, func(eventlog.Record) error { return nil })
	var ce *eventlog.CorruptError
	if !errors.As(err, &ce) || ce.Seq != 3 {
		t.Fatalf("scan over a corrupt entry: %v", err)
	}
}

// One append larger than a Badger transaction is split across transactions
// rather than refused: ids keep it idempotent.
func TestAppendLargerThanOneTransaction(t *testing.T) {
	lg, err := eventlog.Open(eventlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	recs := make([]eventlog.Record, 30000)
	for i := range recs {
		recs[i] = rec(fmt.Sprint("big-", i), "r1", "m1", "f1")
	}
	seqs, err := lg.Append(context.Background(), recs)
	if err != nil || len(seqs) != len(recs) || seqs[len(seqs)-1] != uint64(len(recs)) {
		t.Fatalf("append 30,000: %v (%d seqs)", err, len(seqs))
	}
	n := 0
	lg.Scan(eventlog.Run("r1"), 0, func(eventlog.Record) error { n++; return nil })
	if n != len(recs) {
		t.Fatalf("run index sees %d of %d", n, len(recs))
	}
	again, err := lg.Append(context.Background(), recs)
	if err != nil || again[0] != 1 || lg.LastSeq() != uint64(len(recs)) {
		t.Fatalf("re-append was not deduplicated: %v last %d", err, lg.LastSeq())
	}
}

// A process killed right after creating a memtable file leaves an empty one;
// the log must open anyway.
func TestOpenAfterKillLeavesEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.Open(eventlog.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), []eventlog.Record{{Topic: "t", UUID: "a", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A kill leaves no record of a clean close (here: none at all, as a
	// log written before mailvault kept one).
	os.Remove(filepath.Join(dir, "mailvault.sums"))
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = eventlog.Open(eventlog.Options{Dir: dir})
	if err != nil {
		t.Fatalf("open with a torn memtable: %v", err)
	}
	l.Close()
}
