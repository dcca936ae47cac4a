package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A thousand mailboxes in one daemon job: discovery reads them in
// parallel, the cycle completes, and every item is stored once, in the
// storage and in the report.
func TestThousandMailboxesInOneDaemonJob(t *testing.T) {
	t.Parallel() // waits on the daemon more than it computes
	const mailboxes, items = 1000, 3
	var tenant strings.Builder
	tenant.WriteString("seed: 11\nmailboxes:\n")
	for i := 0; i < mailboxes; i++ {
		fmt.Fprintf(&tenant, "  - address: u%04d@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n", i, items)
	}
	sim := startGraphSim(t, tenant.String())
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "everyone", "--all-mailboxes", "--one-time")
	d := startDaemon(t, data)
	res := run("job", "start", "everyone")
	mustf(t, res.code == 0, "job start: %s", res.stderr)
	waitJobFinished(t, run, "everyone", 10*time.Minute)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	// The daemon's peak memory, for docs/BENCHMARKS.md (not asserted: a
	// race-enabled build uses several times more).
	if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		t.Logf("daemon peak RSS %.1f MB, CPU %s, for %d mailboxes", float64(ru.Maxrss)/1024, d.cmd.ProcessState.UserTime()+d.cmd.ProcessState.SystemTime(), mailboxes)
	}
	runs := listRuns(t, data)
	mustf(t, len(runs) == 1 && runs[0].ItemsStored == mailboxes*items, "runs: %+v", runs)
	var r report
	out := mailvault(t, "report", "last", "--data", data, "--format", "json").stdout
	mustf(t, json.Unmarshal([]byte(out), &r) == nil, "report: %q", out)
	mustf(t, r.ItemsStored == mailboxes*items && r.ItemsQuarantined == 0, "report: %+v", r)
	mustf(t, storedCount(t, filepath.Join(dir, "store")) == mailboxes*items, "the storage holds %d items, want %d", storedCount(t, filepath.Join(dir, "store")), mailboxes*items)
}
