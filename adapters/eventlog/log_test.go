package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
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

// A large record (a batch's stored items) is kept compressed and reads
// back as written, across a reopen; a compressed record that is damaged,
// in its bytes or in what they expand to, is named, never guessed at.
func TestLargeRecordsAreCompressedAndChecked(t *testing.T) {
	dir := t.TempDir()
	lg, err := eventlog.Open(eventlog.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	payload = append(payload, `{"stored":[`...)
	for i := range 500 {
		if i > 0 {
			payload = append(payload, ',')
		}
		payload = fmt.Appendf(payload, `{"p":%d,"i":"AAMkAGI2THVSAAA%06d","h":"%064x","s":%d}`, i+1, i, i*7919, 1000+i)
	}
	payload = append(payload, `]}`...)
	r := rec("big", "r1", "m", "f")
	r.Payload = payload
	if _, err := lg.Append(context.Background(), []eventlog.Record{r, rec("small", "r1", "m", "f")}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	lg, err = eventlog.Open(eventlog.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	got, err := lg.Get(1)
	if err != nil || got.UUID != "big" || string(got.Payload) != string(payload) || got.Metadata[eventlog.MetaRun] != "r1" {
		t.Fatalf("read back: %s, %d bytes, %v", got.UUID, len(got.Payload), err)
	}
	if size := lg.Size(); size <= 0 {
		t.Fatalf("size %d", size)
	}

	for name, raw := range map[string][]byte{
		"checksum":   {0x02, 0, 0, 0, 0, 0x28, 0xb5, 0x2f, 0xfd},
		"decompress": append([]byte{0x02, 0xab, 0x6e, 0x3b, 0x8e}, []byte("not zstd at all")...),
	} {
		if name == "decompress" {
			sum := crc32.Checksum(raw[5:], crc32.MakeTable(crc32.Castagnoli))
			raw[1], raw[2], raw[3], raw[4] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
		}
		if err := lg.CorruptForTest(1, raw); err != nil {
			t.Fatal(err)
		}
		_, err := lg.Get(1)
		var ce *eventlog.CorruptError
		if !errors.As(err, &ce) || ce.Seq != 1 {
			t.Fatalf("%s: %v, want the record named as corrupt", name, err)
		}
	}
}
