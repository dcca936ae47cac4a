package tests

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

type runRow struct {
	RunID       string `json:"run_id"`
	Job         string `json:"job"`
	State       string `json:"state"`
	ItemsStored int    `json:"items_stored"`
}

func listRuns(t *testing.T, data string) []runRow {
	t.Helper()
	res := mailvault(t, "runs", "--data", data, "--format", "json")
	mustf(t, res.code == 0, "runs: exit %d %s", res.code, res.stderr)
	var rows []runRow
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil {
		t.Fatalf("runs JSON: %v\n%s", err, res.stdout)
	}
	return rows
}

// A 4,000-item calendar the server delivers 1,000 items per 10 minutes of:
// with a patience shorter than the server's Retry-After each run stores what
// it can, skips the calendar with its cursor, and the next run continues
// there. The Inbox beside it is not held up. Every run starts its own
// simulator, so the calendar takes several runs however fast the machine is.
func TestThrottledCalendarCompletesOverSeveralRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tenant := writeTenant(t, dir, `seed: 11
mailboxes:
  - address: carol@contoso.test
    folders:
      - path: Calendar
        kind: calendar
        items: 4000
        throttle: {items: 1000, window: 10m}
        size: {min: 1KB, max: 1KB}
      - path: Inbox
        items: 500
        size: {min: 1KB, max: 2KB}
`)
	data := filepath.Join(dir, "data")
	first, res := backup(t, data, tenant, "--throttle-patience", "200ms")
	mustf(t, res.code == 3, "first run exit %d, want 3: %s", res.code, res.stderr)
	mustf(t, first.FoldersSkipped == 1 && first.ThrottledRequests >= 1, "first run: %+v", first)
	replay := mailvault(t, "replay", "last", "--data", data).stdout
	inbox := replay[strings.Index(replay, "carol@contoso.test / Inbox"):]
	mustf(t, strings.Contains(inbox, "Folder completed"), "the Inbox waited for the calendar:\n%s", replay)
	mustf(t, strings.Contains(replay, "The mailbox is throttled on folder 'Calendar'. Skipping this folder – the backup will continue on the next run"), "no skip line:\n%s", replay)

	runs := 1
	for ; runs < 30; runs++ {
		r, res := backup(t, data, tenant, "--throttle-patience", "200ms")
		if r.FoldersSkipped == 0 {
			mustf(t, res.code == 0, "final run exit %d: %s", res.code, res.stderr)
			break
		}
		mustf(t, r.ItemsStored > 0, "run %d made no progress: %+v", runs+1, r)
	}
	mustf(t, runs > 2 && runs < 30, "calendar took %d runs", runs+1)
	total := 0
	for _, row := range listRuns(t, data) {
		total += row.ItemsStored
	}
	mustf(t, total == 4500, "items stored over all runs %d, want 4500", total)
	mustf(t, storedCount(t, filepath.Join(data, "storage")) == 4500, "storage holds %d items", storedCount(t, filepath.Join(data, "storage")))
}

// With enough patience the run waits out the Retry-After, works on the other
// folder meanwhile, and finishes in one run.
func TestThrottledFolderParksAndResumesWithinARun(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	dir := t.TempDir()
	tenant := writeTenant(t, dir, `mailboxes:
  - address: dave@contoso.test
    folders:
      - path: Calendar
        kind: calendar
        items: 1200
        throttle: {items: 400, window: 2s}
        size: {min: 1KB, max: 1KB}
      - path: Inbox
        items: 300
        size: {min: 1KB, max: 1KB}
`)
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant)
	mustf(t, res.code == 0, "exit %d: %s", res.code, res.stderr)
	mustf(t, r.ItemsStored == 1500 && r.ThrottledRequests >= 1 && r.FoldersSkipped == 0, "report %+v", r)
	replay := mailvault(t, "replay", "last", "--data", data).stdout
	mustf(t, strings.Contains(replay, "Folder parked until") && strings.Contains(replay, "Folder resumed"), "replay:\n%s", replay)
}

// A hostile Retry-After (a century) is bounded: the folder is parked for at
// most a day, which exceeds the patience, so it is skipped and the run ends
// at once instead of hanging.
func TestAbsurdRetryAfterIsBounded(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, "mailboxes:\n  - address: k@contoso.test\n    folders:\n      - path: Calendar\n        kind: calendar\n        items: 900\n        throttle: {items: 400, window: 876000h}\n        size: {min: 1KB, max: 1KB}\n")
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant)
	mustf(t, res.code == 3 && r.FoldersSkipped == 1 && r.ItemsStored == 400, "exit %d report %+v", res.code, r)
	var parked string
	for _, l := range strings.Split(mailvault(t, "replay", "last", "--data", data, "--format", "jsonl").stdout, "\n") {
		if strings.Contains(l, `"type":"folder_parked"`) {
			parked = l
		}
	}
	mustf(t, strings.Contains(parked, `"retry_after_ms":86400000`), "park not bounded to a day: %s", parked)
}
