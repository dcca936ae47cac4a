package tests

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// Compacting a committed history keeps what the retention promises: every
// run's report and the resume state (quarantine, cursors, sync tokens) are
// what they were, the replay says what was removed, and a second pass
// removes nothing. A compaction cut short after its summary leaves the same
// read side, and the next pass finishes it.
func TestCompactedHistoriesReadTheSame(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed histories: %v", err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".jsonl")
		t.Run(name, func(t *testing.T) {
			events := readHistory(t, file)
			lg := historyLog(t, events)
			want := readSideOf(t, lg, events, false)
			runs := backupRuns(events)

			// Inside the retention period nothing is touched.
			res, err := projections.CompactLog(context.Background(), lg, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), "90d", now)
			if err != nil || len(res.Runs) != 0 || res.Kept != len(runs) {
				t.Fatalf("compaction of recent runs: %+v, %v; want all %d kept", res, err, len(runs))
			}

			// Cut short: the first run's summary is written, its detail
			// removal stops at once.
			cut := runs[0]
			seqs, summary := detailOf(t, lg, cut)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := lg.CompactRun(ctx, cut, seqs, summary); err == nil || !strings.Contains(err.Error(), "run it again") {
				t.Fatalf("compaction with a cancelled context: %v", err)
			}
			if got := readSideOf(t, lg, events, false); got != want {
				t.Fatalf("a compaction cut short changed the read side:\n%s\nwant\n%s", got, want)
			}

			res, err = projections.CompactLog(context.Background(), lg, now, "90d", now)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Finished, []string{cut}) || len(res.Runs)+len(res.Finished) != len(runs) || res.Events == 0 {
				t.Fatalf("compaction: %+v, want %v finished and the other runs of %v compacted", res, cut, runs)
			}
			if got := readSideOf(t, lg, events, false); got != want {
				t.Fatalf("compaction changed the read side:\n%s\nwant\n%s", got, want)
			}
			for _, run := range runs {
				if n := countDetail(t, lg, run); n != 0 {
					t.Fatalf("run %s keeps %d detail events after compaction", run, n)
				}
				rp := projections.NewReplay()
				if err := projections.ScanRun(lg, run, func(ev *domain.Event) error { rp.Apply(ev); return nil }); err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				if err := rp.WriteText(&b); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(b.String(), "Compacted 2030-01-01 00:00 (per-request detail kept 90d)") {
					t.Fatalf("replay of compacted run %s does not say so:\n%s", run, b.String())
				}
			}
			again, err := projections.CompactLog(context.Background(), lg, now, "90d", now)
			if err != nil || again.Events != 0 || len(again.Runs)+len(again.Finished) != 0 {
				t.Fatalf("second compaction: %+v, %v; want nothing to do", again, err)
			}
		})
	}
}

func backupRuns(events []domain.Event) []string {
	var runs []string
	for _, ev := range events {
		if ev.Type == domain.RunStarted && !slices.Contains(runs, ev.Run) {
			runs = append(runs, ev.Run)
		}
	}
	return runs
}

// detailOf is what a compaction of run removes, and a summary for it.
func detailOf(t *testing.T, lg *eventlog.Log, run string) ([]uint64, *eventlog.Record) {
	t.Helper()
	var seqs []uint64
	var summary *eventlog.Record
	err := lg.Scan(eventlog.Run(run), 0, func(rec eventlog.Record) error {
		ev, err := projections.Decode(rec)
		if err != nil {
			return err
		}
		if domain.IsRunDetail(&ev) {
			seqs = append(seqs, rec.Seq)
		}
		return nil
	})
	if err != nil || len(seqs) < 2 {
		t.Fatalf("run %s: %d detail events, %v", run, len(seqs), err)
	}
	// The summary a real compaction writes, taken from a copy of the log.
	events := []domain.Event{}
	_ = lg.Scan(eventlog.Run(run), 0, func(rec eventlog.Record) error {
		ev, _ := projections.Decode(rec)
		events = append(events, ev)
		return nil
	})
	cp := historyLog(t, events)
	if _, err := projections.CompactLog(context.Background(), cp, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "90d", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	_ = cp.Scan(eventlog.Run(run), 0, func(rec eventlog.Record) error {
		if rec.Metadata[eventlog.MetaType] == string(domain.RunCompacted) {
			r := rec
			summary = &r
		}
		return nil
	})
	if summary == nil {
		t.Fatalf("no summary for run %s", run)
	}
	return seqs, summary
}

func countDetail(t *testing.T, lg *eventlog.Log, run string) int {
	t.Helper()
	n := 0
	if err := projections.ScanRun(lg, run, func(ev *domain.Event) error {
		if domain.IsRunDetail(ev) {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// The command an administrator runs: after 'log compact', every run's report
// reads the same, the replay says what was compacted, the quarantine and
// the resume state are intact (the next run fetches nothing again), and the
// log gives its space back.
func TestLogCompactFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tenant := writeTenant(t, dir, `mailboxes:
  - address: c@contoso.test
    folders:
      - path: Inbox
        items: 1500
        dirty: [7, 900]
      - path: Archive
        items: 600
`)
	first, res := backup(t, data, tenant)
	mustf(t, res.code == 3 && first.ItemsStored == 2098 && first.ItemsQuarantined == 2, "first backup: exit %d, %+v\n%s", res.code, first, res.stderr)
	runIDs := []string{first.RunID}
	second, res := backup(t, data, tenant)
	mustf(t, second.ItemsStored == 0, "second backup stored %d: %s", second.ItemsStored, res.stderr)
	runIDs = append(runIDs, second.RunID)

	reports := map[string]string{}
	for _, run := range runIDs {
		reports[run] = mailvault(t, "report", run, "--data", data, "--format", "json").stdout
	}
	quarantine := mailvault(t, "quarantine", "--data", data, "--format", "json").stdout
	runs := mailvault(t, "runs", "--data", data, "--format", "json").stdout

	kept := mailvault(t, "log", "compact", "--data", data, "--format", "json")
	mustf(t, kept.code == 0 && strings.Contains(kept.stdout, `"kept": 2`), "compaction with the default retention: exit %d\n%s%s", kept.code, kept.stdout, kept.stderr)

	out := mailvault(t, "log", "compact", "--keep", "0", "--data", data, "--format", "json")
	mustf(t, out.code == 0, "log compact: exit %d\n%s", out.code, out.stderr)
	var got struct {
		Runs       []string `json:"runs"`
		Events     int      `json:"events"`
		SizeBefore int64    `json:"size_before"`
		SizeAfter  int64    `json:"size_after"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &got); err != nil {
		t.Fatalf("log compact --format json: %v\n%s", err, out.stdout)
	}
	mustf(t, len(got.Runs) == 2 && got.Events > 0, "compacted %+v, want both runs", got)
	t.Logf("log compaction: %d events removed, %d -> %d bytes on disk", got.Events, got.SizeBefore, got.SizeAfter)
	mustf(t, got.SizeAfter <= got.SizeBefore, "the log grew: %d -> %d bytes", got.SizeBefore, got.SizeAfter)

	for _, run := range runIDs {
		after := mailvault(t, "report", run, "--data", data, "--format", "json").stdout
		mustf(t, after == reports[run], "report of %s changed by compaction:\n%s\nwant\n%s", run, after, reports[run])
		replay := mailvault(t, "replay", run, "--data", data).stdout
		mustf(t, strings.Contains(replay, "Compacted ") && strings.Contains(replay, "per-request detail kept 0d") && !strings.Contains(replay, "1. Fetch"),
			"replay of compacted run %s:\n%s", run, replay)
	}
	mustf(t, mailvault(t, "quarantine", "--data", data, "--format", "json").stdout == quarantine, "quarantine changed by compaction")
	mustf(t, mailvault(t, "runs", "--data", data, "--format", "json").stdout == runs, "runs changed by compaction")

	third, res := backup(t, data, tenant)
	mustf(t, third.ItemsStored == 0 && third.Requests <= second.Requests, "after compaction the next run stored %d with %d requests (before: %d): %s",
		third.ItemsStored, third.Requests, second.Requests, res.stderr)

	again := mailvault(t, "log", "compact", "--keep", "0", "--data", data)
	mustf(t, again.code == 0 && strings.Contains(again.stdout, "compacted 1 runs"), "second compaction (only the new run): %s%s", again.stdout, again.stderr)
	bad := mailvault(t, "log", "compact", "--keep", "soon", "--data", data)
	mustf(t, bad.code == 2 && strings.Contains(bad.stderr, "--keep"), "a bad --keep: exit %d %s", bad.code, bad.stderr)
}

// The daemon's retention policy: at its first tick (then once a day) it
// compacts the runs older than --log-retention, in the background, while
// it holds the log; the report it serves is unchanged.
func TestDaemonCompactsTheLogByItsRetention(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tenant := writeTenant(t, dir, "mailboxes:\n  - address: d@contoso.test\n    folders:\n      - path: Inbox\n        items: 400\n        dirty: [3]\n")
	first, res := backup(t, data, tenant)
	mustf(t, first.ItemsStored == 399, "backup: %+v %s", first, res.stderr)
	want := mailvault(t, "report", "last", "--data", data, "--format", "json").stdout

	bad := mailvault(t, "daemon", "--data", data, "--log-retention=-3d")
	mustf(t, bad.code == 2 && strings.Contains(bad.stderr, "--log-retention"), "a bad --log-retention: exit %d %s", bad.code, bad.stderr)

	startDaemon(t, data, "--log-retention", "0")
	var replay string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		replay = mailvault(t, "replay", "last", "--data", data).stdout
		if strings.Contains(replay, "Compacted ") {
			break
		}
	}
	mustf(t, strings.Contains(replay, "per-request detail kept 0d"), "the daemon did not compact the run:\n%s", replay)
	got := mailvault(t, "report", "last", "--data", data, "--format", "json").stdout
	mustf(t, got == want, "report changed by the daemon's compaction:\n%s\nwant\n%s", got, want)
}
