package eventlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

func fillLog(t *testing.T, dir string, n int) {
	t.Helper()
	l, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := 1; i <= n; i++ {
		recs = append(recs, Record{Topic: "t", UUID: fmt.Sprint("id-", i), Metadata: map[string]string{MetaRun: "r1"},
			Payload: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 100))})
	}
	if _, err := l.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func allSeqs(l *Log) ([]uint64, error) {
	var out []uint64
	err := l.Scan(All(), 0, func(r Record) error {
		out = append(out, r.Seq)
		return nil
	})
	return out, err
}

// A record whose bytes no longer match their checksum is named by its
// sequence number; the log then refuses appends, in this process and the
// next, until it is salvaged; the salvage keeps every other record under
// its own number and marks the lost one.
func TestDamagedRecordIsNamedAndStopsAppendsUntilSalvaged(t *testing.T) {
	dir := t.TempDir()
	fillLog(t, dir, 50)
	l, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.Get(17)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := encodeRecord(&rec)
	raw[len(raw)-3] ^= 0x20 // one flipped bit inside the payload
	if err := l.CorruptForTest(17, raw); err != nil {
		t.Fatal(err)
	}
	_, err = allSeqs(l)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Seq != 17 || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("scan: %v", err)
	}
	if _, err := l.Append(context.Background(), []Record{{Topic: "t", UUID: "after"}}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("append to a damaged log: %v", err)
	}
	l.Close()
	l, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), []Record{{Topic: "t", UUID: "after"}}); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "record 17") {
		t.Fatalf("append after reopening a damaged log: %v", err)
	}
	l.Close()

	res, err := Salvage(dir, nil)
	if err != nil || len(res.Damaged) != 1 || res.Damaged[0] != 17 || res.Records != 50 || res.From != "index" {
		t.Fatalf("salvage: %+v %v", res, err)
	}
	if _, err := os.Stat(res.OldDir); err != nil {
		t.Fatalf("the damaged log was not kept: %v", err)
	}
	l, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seqs, err := allSeqs(l)
	if err != nil || len(seqs) != 50 || seqs[49] != 50 {
		t.Fatalf("salvaged log: %v %v", seqs, err)
	}
	if r, err := l.Get(17); err != nil || r.Topic != domain.TopicDamaged {
		t.Fatalf("placeholder: %+v %v", r, err)
	}
	if r, err := l.Get(18); err != nil || r.UUID != "id-18" {
		t.Fatalf("record after the damage: %+v %v", r, err)
	}
	if has, _ := l.Has("t", "id-3"); !has {
		t.Fatal("deduplication index not rebuilt")
	}
	if s, err := l.Append(context.Background(), []Record{{Topic: "t", UUID: "after"}}); err != nil || s[0] != 51 {
		t.Fatalf("append after salvage: %v %v", s, err)
	}
}

// Damage to the log's value file after a clean close is refused when the
// log opens, whether the file's time changed or not: never a shorter
// history without a word.
func TestDamagedFilesAreRefused(t *testing.T) {
	for _, keepTime := range []bool{false, true} {
		t.Run(fmt.Sprint("keep-mtime=", keepTime), func(t *testing.T) {
			dir := t.TempDir()
			fillLog(t, dir, 400)
			vlog := filepath.Join(dir, "000001.vlog")
			b, err := os.ReadFile(vlog)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := os.Stat(vlog)
			b[len(b)/2] ^= 0x01
			os.WriteFile(vlog, b, 0o600)
			if keepTime {
				os.Chtimes(vlog, info.ModTime(), info.ModTime())
			}
			// The newest value-log file is read whole on open: a writer's
			// open would otherwise cut it at the damage, silently.
			if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "000001.vlog") {
				t.Fatalf("open: %v", err)
			}
			res, err := Salvage(dir, nil)
			if err != nil || len(res.Damaged) != 1 || res.Records != 400 {
				t.Fatalf("salvage: %+v %v", res, err)
			}
		})
	}
}

// When Badger's own index of the log is gone, the records are read from
// the value-log files.
func TestSalvageFromValueLogWhenTheManifestIsGone(t *testing.T) {
	dir := t.TempDir()
	fillLog(t, dir, 300)
	os.Remove(filepath.Join(dir, "MANIFEST"))
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open without a manifest: %v", err)
	}
	res, err := Salvage(dir, nil)
	if err != nil || res.From != "value log files" || res.Records != 300 || len(res.Damaged) != 0 {
		t.Fatalf("salvage: %+v %v", res, err)
	}
	l, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r, err := l.Get(300); err != nil || r.UUID != "id-300" {
		t.Fatalf("last record: %+v %v", r, err)
	}
}
