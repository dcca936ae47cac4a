package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

// The log contract (NATS's one store suite over every variant): what the
// pipeline, the projections and the Pub/Sub rely on, run against the log
// on disk and in memory. Persistence across a reopen is the disk's own
// case (TestReopenKeepsTheLogLocksItAndNamesACorruptEntry).
var logVariants = []struct {
	name string
	open func(t *testing.T, hooks ...eventlog.Hook) *eventlog.Log
}{
	{"on disk", func(t *testing.T, hooks ...eventlog.Hook) *eventlog.Log {
		lg, err := eventlog.Open(eventlog.Options{Dir: t.TempDir(), Hooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lg.Close() })
		return lg
	}},
	{"in memory", func(t *testing.T, hooks ...eventlog.Hook) *eventlog.Log {
		lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lg.Close() })
		return lg
	}},
}

// appendIndexed appends the records the index cases read: three runs'
// worth over two mailboxes, and one duplicate id.
func appendIndexed(t *testing.T, lg *eventlog.Log) {
	t.Helper()
	ctx := context.Background()
	lg.Append(ctx, []eventlog.Record{rec("a", "r1", "m1", "f1"), rec("b", "r1", "m1", "f2"), rec("c", "r1", "m2", "f1")})
	lg.Append(ctx, []eventlog.Record{rec("d", "r2", "m1", "f1"), rec("e", "r2", "m1", "")})
	got, err := lg.Append(ctx, []eventlog.Record{rec("a", "r2", "m1", "f1"), rec("f", "r1", "m1", "f1")})
	if err != nil || fmt.Sprint(got) != "[1 6]" {
		t.Fatalf("append with a duplicate id: %v %v, want the first record's seq for it", got, err)
	}
}

func TestLogContract(t *testing.T) {
	for _, v := range logVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Run("appends are idempotent by id and indexed", func(t *testing.T) {
				lg := v.open(t)
				appendIndexed(t, lg)
				for _, c := range []struct {
					idx  eventlog.Index
					want string
				}{
					{eventlog.All(), "[1 2 3 4 5 6]"},
					{eventlog.Run("r1"), "[1 2 3 6]"},
					{eventlog.Run("r2"), "[4 5]"},
					{eventlog.Mailbox("m1"), "[1 2 4 5 6]"},
					{eventlog.Folder("m1", "f1"), "[1 4 6]"},
					{eventlog.Topic("t"), "[1 2 3 4 5 6]"},
					{eventlog.Run("nope"), "[]"},
				} {
					if got := seqs(t, lg, c.idx); got != c.want {
						t.Errorf("scan %+v = %s, want %s", c.idx, got, c.want)
					}
				}
				if lg.LastSeq() != 6 {
					t.Errorf("last seq %d, want 6", lg.LastSeq())
				}
				if has, err := lg.Has("t", "d"); err != nil || !has {
					t.Errorf("Has(t, d) = %v, %v", has, err)
				}
				if has, _ := lg.Has("other-topic", "d"); has {
					t.Error("ids are per topic: Has(other-topic, d) = true")
				}
				if r, err := lg.Get(4); err != nil || r.UUID != "d" || r.Metadata[eventlog.MetaRun] != "r2" {
					t.Errorf("Get(4) = %+v, %v", r, err)
				}
			})

			t.Run("a scan continues after a sequence number", func(t *testing.T) {
				lg := v.open(t)
				appendIndexed(t, lg)
				var got []uint64
				lg.Scan(eventlog.All(), 4, func(r eventlog.Record) error { got = append(got, r.Seq); return nil })
				if fmt.Sprint(got) != "[5 6]" {
					t.Fatalf("scan after 4 = %v, want [5 6]", got)
				}
			})

			t.Run("hooks keep projections in the appending transaction", func(t *testing.T) {
				count := func(tx eventlog.Tx, r *eventlog.Record) error {
					key := []byte("count/" + r.Metadata[eventlog.MetaRun])
					b, err := tx.Get(key)
					if err != nil {
						return err
					}
					return tx.Set(key, append(append([]byte(nil), b...), 'x'))
				}
				refuse := func(_ eventlog.Tx, r *eventlog.Record) error {
					if r.UUID == "bad" {
						return errors.New("refused by the projection")
					}
					return nil
				}
				lg := v.open(t, count, refuse)
				appendIndexed(t, lg)
				for run, want := range map[string]string{"r1": "xxxx", "r2": "xx"} {
					if b, err := lg.ReadProjection([]byte("count/" + run)); err != nil || string(b) != want {
						t.Errorf("projection of %s = %q, %v; want %q (one mark per record, none for the duplicate)", run, b, err, want)
					}
				}
				// A record its projection refuses is not appended, and
				// neither is its projection's change.
				if _, err := lg.Append(context.Background(), []eventlog.Record{rec("bad", "r3", "m1", "f1")}); err == nil {
					t.Fatal("a record the hook refused was appended")
				}
				if b, _ := lg.ReadProjection([]byte("count/r3")); len(b) != 0 || lg.LastSeq() != 6 {
					t.Fatalf("after a refused append: projection %q, last seq %d", b, lg.LastSeq())
				}
			})
		})
	}
}
