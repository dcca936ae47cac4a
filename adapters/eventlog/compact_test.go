package eventlog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

// Compaction removes exactly the records it is given from every index, puts
// the summary in the first one's place, refuses what would touch another
// run, and a run compacted twice is refused rather than summarised again.
func TestCompactRunRemovesFromEveryIndex(t *testing.T) {
	ctx := context.Background()
	lg, err := eventlog.Open(eventlog.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	recs := []eventlog.Record{
		rec("a", "r1", "", ""), rec("b", "r1", "m", "f1"), rec("c", "r2", "m", "f1"),
		rec("d", "r1", "m", "f1"), rec("e", "r1", "m", "f2"), rec("f", "r1", "", ""),
	}
	if _, err := lg.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := lg.CompactRun(ctx, "r1", []uint64{2, 3}, &eventlog.Record{Topic: "t", UUID: "sum", Payload: []byte(`{}`),
		Metadata: map[string]string{eventlog.MetaRun: "r1"}}); err == nil || !strings.Contains(err.Error(), "belongs to run") {
		t.Fatalf("compaction over another run's record: %v", err)
	}
	// The summary went in before the refusal; what a second call may do
	// is finish removing (no second summary).
	if err := lg.CompactRun(ctx, "r1", []uint64{2, 4}, &eventlog.Record{Topic: "t", UUID: "sum2", Payload: []byte(`{}`),
		Metadata: map[string]string{eventlog.MetaRun: "r1"}}); err == nil || !strings.Contains(err.Error(), "has a summary already") {
		t.Fatalf("second summary: %v", err)
	}
	if err := lg.CompactRun(ctx, "r1", []uint64{4, 5}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idx  eventlog.Index
		want string
	}{
		{eventlog.Run("r1"), "[1 2 6]"},
		{eventlog.Run("r2"), "[3]"},
		{eventlog.Folder("m", "f1"), "[3]"},
		{eventlog.Mailbox("m"), "[3]"},
		{eventlog.Topic("t"), "[1 2 3 6]"},
		{eventlog.All(), "[1 2 3 6]"},
	} {
		if got := seqs(t, lg, c.idx); got != c.want {
			t.Errorf("%+v: %s, want %s", c.idx, got, c.want)
		}
	}
	got, err := lg.Get(2)
	if err != nil || got.UUID != "sum" {
		t.Fatalf("entry 2 is %+v, %v; want the summary", got, err)
	}
	for id, want := range map[string]bool{"sum": true, "b": false, "d": false, "a": true, "c": true} {
		if has, err := lg.Has("t", id); err != nil || has != want {
			t.Errorf("Has(%s) = %v, %v; want %v", id, has, err, want)
		}
	}
	if s, done, found, err := lg.RunCompaction("r1"); err != nil || !found || !done || s != 2 {
		t.Fatalf("compaction mark: %d %v %v %v", s, done, found, err)
	}
	if _, _, found, _ := lg.RunCompaction("r2"); found {
		t.Fatal("r2 is marked compacted")
	}
}
