package tests

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A dirty item the server repairs keeps its change key, so change tracking
// never lists it again and the daily retry never sees it: "quarantine
// retry" makes the job's next cycle list its folder in full and fetch it
// alone. Only that folder is listed again, only that item is fetched, and
// the retry is asked once (the cycle after it lists from the delta again).
func TestQuarantineRetryNow(t *testing.T) {
	t.Parallel() // waits on the daemon's cycles more than it computes
	sim := startGraphSim(t, `seed: 23
mailboxes:
  - address: kim@contoso.test
    folders:
      - path: Inbox
        items: 60
        size: {min: 1KB, max: 2KB}
        dirty: [7]
        dirty_mode: item
      - path: Archive
        items: 20
        size: {min: 1KB, max: 2KB}
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "nightly", "--mailbox", "kim@contoso.test", "--idle", "00:00:01")
	startDaemon(t, data)
	// finished are the job's cycles that ended, with their reports.
	finished := func() []graphReport {
		t.Helper()
		var out []graphReport
		for _, r := range listRuns(t, data) {
			if !strings.HasPrefix(r.State, "finished") {
				continue
			}
			var rep graphReport
			res := run("report", r.RunID, "--format", "json")
			mustf(t, json.Unmarshal([]byte(res.stdout), &rep) == nil, "report: %s %s", res.stdout, res.stderr)
			out = append(out, rep)
		}
		return out
	}
	// waitCycles waits until n cycles have ended; the deadline only ends
	// a hung test.
	waitCycles := func(n int) []graphReport {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			if runs := finished(); len(runs) >= n {
				return runs
			}
			mustf(t, time.Now().Before(deadline), "%d cycles did not end: %s", n, run("job", "list").stdout)
			time.Sleep(200 * time.Millisecond)
		}
	}
	type quarantinedItem struct {
		ItemID string `json:"item_id"`
	}
	quarantined := func() []quarantinedItem {
		var q []quarantinedItem
		res := run("quarantine", "--format", "json")
		mustf(t, json.Unmarshal([]byte(res.stdout), &q) == nil, "quarantine: %s %s", res.stdout, res.stderr)
		return q
	}

	mustf(t, run("job", "start", "nightly").code == 0, "job start")
	runs := waitCycles(1)
	mustf(t, runs[0].ItemsStored == 79 && runs[0].ItemsQuarantined == 1, "first cycle: %+v", runs[0])
	q := quarantined()
	mustf(t, len(q) == 1, "quarantined: %+v", q)

	// Repaired on the server: the next cycles do not see it.
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "kim@contoso.test", "folder": "Inbox", "repair": []int{7}})
	seen := len(waitCycles(1))
	runs = waitCycles(seen + 2)
	for _, r := range runs[seen:] {
		mustf(t, r.ItemsStored == 0 && r.Requests == 0, "a cycle without a retry fetched: %+v", r)
	}
	mustf(t, len(quarantined()) == 1, "without a retry the repaired item was released")

	// Counted before the retry is asked for: the cycle that takes it may
	// start and finish before the command's answer is read.
	asked := len(finished())
	res := run("quarantine", "retry", "nightly", q[0].ItemID)
	mustf(t, res.code == 0 && strings.Contains(res.stdout, "1 quarantined items will be tried again at the job's next cycle."), "quarantine retry: %d %s %s", res.code, res.stdout, res.stderr)
	deadline := time.Now().Add(90 * time.Second)
	for len(quarantined()) > 0 {
		mustf(t, time.Now().Before(deadline), "the retried item is still quarantined")
		time.Sleep(200 * time.Millisecond)
	}
	runs = finished()
	runs = waitCycles(len(runs) + 1) // one more cycle after the release
	stored := 0
	for _, r := range runs[asked:] {
		stored += r.ItemsStored
		switch {
		case r.ItemsStored == 1:
			// The Inbox listed in full (60 scanned), the Archive from its
			// delta (nothing); one fetch, of the item alone.
			mustf(t, r.State == "finished" && r.Requests == 1 && r.ItemsScanned == 60, "the retry's cycle: %+v", r)
		case r.ItemsScanned > 0:
			mustf(t, r.ItemsScanned == 60 && r.Requests == 0, "a cycle around the retry: %+v", r)
		}
	}
	last := runs[len(runs)-1]
	mustf(t, stored == 1 && last.ItemsScanned == 0 && last.Requests == 0, "after the retry: stored %d; the last cycle %+v", stored, last)
	mustf(t, storedCount(t, filepath.Join(dir, "store")) == 80, "the storage holds %d items, want 80", storedCount(t, filepath.Join(dir, "store")))
	res = run("quarantine", "retry", "nightly", "no-such-item")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "not quarantined by job nightly"), "a retry of an unknown item: %d %s", res.code, res.stderr)
}
