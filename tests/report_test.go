package tests

import (
	csvpkg "encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The report printed at the end of a run is the live projection, folded as
// events were appended; 'mailvault report' rebuilds it from the log. They must
// be identical.
func TestLiveReportEqualsRebuiltReport(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, `seed: 9
mailboxes:
  - address: gina@contoso.test
    folders:
      - path: Inbox
        items: 1300
        dirty: [5, 700, 1299]
      - path: Calendar
        kind: calendar
        items: 900
        throttle: {items: 400, window: 1h}
      - path: Flaky
        items: 1000
        transient: {every: 2}
        size: {min: 1KB, max: 1KB}
`)
	data := filepath.Join(dir, "data")
	res := mailvault(t, "backup", "--tenant", tenant, "--data", data, "--progress", "none", "--format", "json")
	mustf(t, res.code == 3, "exit %d %s", res.code, res.stderr)
	rebuilt := mailvault(t, "report", "last", "--data", data, "--format", "json")
	var live, again map[string]any
	mustf(t, json.Unmarshal([]byte(res.stdout), &live) == nil && json.Unmarshal([]byte(rebuilt.stdout), &again) == nil, "not JSON")
	mustf(t, reflect.DeepEqual(live, again), "live report:\n%s\nrebuilt:\n%s", res.stdout, rebuilt.stdout)
	for _, key := range []string{"run_id", "state", "items_scanned", "items_stored", "items_quarantined", "requests",
		"requests_by_outcome", "throttled_requests", "folders_skipped", "duration_s", "items_per_s", "stall_source_s", "stall_target_s", "quarantined"} {
		_, ok := live[key]
		mustf(t, ok, "report lacks %q", key)
	}
	byOutcome := live["requests_by_outcome"].(map[string]any)
	mustf(t, byOutcome["error"] != nil && byOutcome["throttled"] != nil && byOutcome["failed"] != nil, "outcomes %v", byOutcome)
	// The CSV log: one row per event that matters, the same from the file
	// the run wrote, from report --format csv, and from replaying the log
	// again, byte for byte.
	csv1 := mailvault(t, "report", "last", "--data", data, "--format", "csv")
	csv2 := mailvault(t, "report", "last", "--data", data, "--format", "csv")
	mustf(t, csv1.code == 0 && csv1.stdout == csv2.stdout, "two replays of the log differ")
	file, err := os.ReadFile(filepath.Join(data, "logs", live["run_id"].(string)+".csv"))
	mustf(t, err == nil && string(file) == csv1.stdout, "the run's CSV log file differs from report --format csv: %v", err)
	rows, err := csvpkg.NewReader(strings.NewReader(csv1.stdout)).ReadAll()
	mustf(t, err == nil && len(rows) > 3, "CSV: %v", err)
	mustf(t, strings.Join(rows[0], ",") == "timestamp,job,run,mailbox,folder,worker,event,detail", "header %v", rows[0])
	var fetches, quarantined, workers int
	for _, r := range rows[1:] {
		mustf(t, len(r) == 8 && r[2] == live["run_id"], "row %v", r)
		if strings.Contains(r[7], "Fetch ") {
			fetches++
			if r[5] != "0" {
				workers++
			}
		}
		if r[6] == "item_quarantined" {
			quarantined++
		}
	}
	mustf(t, fetches == int(live["requests"].(float64)) && workers == fetches, "%d fetch rows (%d with a worker) for %v requests", fetches, workers, live["requests"])
	mustf(t, quarantined >= int(live["items_quarantined"].(float64)), "quarantine rows %d", quarantined)
	mustf(t, rows[len(rows)-1][6] == "run_finished", "last row %v", rows[len(rows)-1])
}

// A quarantined item is retried alone once it is due, and returns to normal
// when the server serves it again.
func TestQuarantineRetryReleasesAHealedItem(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, seedTenant)
	data := filepath.Join(dir, "data")
	_, res := backup(t, data, tenant)
	mustf(t, res.code == 3, "first run %d", res.code)

	// Not due yet: left out, costs nothing.
	r, _ := backup(t, data, tenant)
	mustf(t, r.Requests == 1 && r.ItemsQuarantined == 1, "second run %+v", r)

	// The item healed on the server; with a zero retry interval it is due.
	healed := strings.Replace(seedTenant, "        dirty: [2]\n", "", 1)
	os.WriteFile(tenant, []byte(healed), 0o600)
	r, res = backup(t, data, tenant, "--quarantine-retry", "0s")
	mustf(t, res.code == 0, "third run exit %d: %s", res.code, res.stderr)
	mustf(t, r.Requests == 2 && r.ItemsStored == 1 && r.ItemsQuarantined == 0, "third run %+v", r)
	q := mailvault(t, "quarantine", "--data", data, "--format", "json")
	mustf(t, strings.TrimSpace(q.stdout) == "[]", "quarantine not empty: %s", q.stdout)
	replay := mailvault(t, "replay", "last", "--data", data).stdout
	mustf(t, strings.Contains(replay, "Fetch item #2 – success") && strings.Contains(replay, "Item #2 released from quarantine"), "replay:\n%s", replay)
}

// Ctrl-C stops at a checkpoint: the run is recorded as not finished with each
// open folder's cursor, and the next run continues without storing twice.
func TestInterruptStopsAtACheckpoint(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, "latency: 5ms\nmailboxes:\n  - address: h@contoso.test\n    folders:\n      - path: Inbox\n        items: 3000\n        size: {min: 1KB, max: 1KB}\n")
	data := filepath.Join(dir, "data")
	cmd := exec.Command(binary, "backup", "--tenant", tenant, "--data", data, "--progress", "none", "--batch-size", "20", "--format", "json")
	out := &strings.Builder{}
	cmd.Stdout = out
	mustf(t, cmd.Start() == nil, "start")
	// Interrupt once items are being stored: the run is mid-folder.
	deadline := time.Now().Add(30 * time.Second)
	for countFiles(t, filepath.Join(data, "storage", "data"), "") == 0 {
		mustf(t, time.Now().Before(deadline), "the backup stored nothing in 30 s")
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	ee, _ := err.(*exec.ExitError)
	mustf(t, ee != nil && ee.ExitCode() == 1, "interrupted run: %v", err)
	var first report
	mustf(t, json.Unmarshal([]byte(out.String()), &first) == nil, "report %s", out.String())
	mustf(t, first.State == "not finished" && first.FoldersSkipped == 1, "interrupted report %+v", first)
	replay := mailvault(t, "replay", "last", "--data", data).stdout
	mustf(t, strings.Contains(replay, "Folder skipped: interrupted"), "replay:\n%s", replay)

	second, res := backup(t, data, tenant, "--batch-size", "20")
	mustf(t, res.code == 0, "second run %d %s", res.code, res.stderr)
	mustf(t, first.ItemsStored+second.ItemsStored == 3000, "stored %d + %d", first.ItemsStored, second.ItemsStored)
	mustf(t, second.ItemsScanned == 3000-first.ItemsStored, "second run rescanned %d items, first stored %d", second.ItemsScanned, first.ItemsStored)
}
