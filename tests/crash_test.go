package tests

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
)

const crashTenant = `seed: 5
latency: 4ms
mailboxes:
  - address: erin@contoso.test
    folders:
      - path: Inbox
        items: 900
        dirty: [2, 450, 451, 899]
        size: {min: 1KB, max: 3KB}
      - path: Inbox/../../escape
        items: 150
        dirty: [150]
        size: {min: 1KB, max: 2KB}
      - path: Calendar
        kind: calendar
        items: 700
        throttle: {items: 200, window: 300ms}
        size: {min: 1KB, max: 1KB}
  - address: frank@contoso.test
    folders:
      - path: Inbox
        items: 600
        dirty: [77]
        size: {min: 1KB, max: 2KB}
      - path: Contacts
        kind: contacts
        items: 300
        size: {min: 1KB, max: 1KB}
`

var crashDirty = map[string][]int{
	"erin@contoso.test/Inbox":              {2, 450, 451, 899},
	"erin@contoso.test/Inbox/../../escape": {150},
	"frank@contoso.test/Inbox":             {77},
}

const crashItems = 900 + 150 + 700 + 600 + 300

// The real binary is killed with SIGKILL at seeded random moments, restarted
// each time, and then run to the end: the storage holds every clean item
// exactly once, the quarantine holds exactly the dirty items, the runs the
// kills interrupted are listed as not finished, and the items the reports
// count as stored add up to what is in the storage.
func TestCrashSafetyUnderSIGKILL(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, crashTenant)
	data := filepath.Join(dir, "data")
	rng := rand.New(rand.NewSource(20261201))
	kills, killedRuns, finishedRuns := 0, 0, 0
	// The kill lands base plus a random delay after the start. On a slow,
	// busy machine starting up takes longer: a kill that lands before the
	// run was recorded moves base later, so the loop adapts to the machine
	// instead of assuming its pace.
	base := 30 * time.Millisecond
	for attempt := 0; killedRuns < 10 && attempt < 60; attempt++ {
		cmd := exec.Command(fastBinary(t), "backup", "--tenant", tenant, "--data", data, "--batch-size", "40",
			"--throttle-patience", "1s", "--progress", "none")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := base + time.Duration(rng.Intn(400))*time.Millisecond
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			// Finished before the kill: fine, but it does not count as one.
			if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 3 && ee.ExitCode() != 0 {
				t.Fatalf("run ended with exit %d: %s", ee.ExitCode(), errb.String())
			}
			finishedRuns++
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			// A kill can land before the run is recorded at all; only the
			// runs that did start must show up as not finished.
			started := false
			if _, err := os.Stat(filepath.Join(data, "log")); err == nil {
				if n := len(listRuns(t, data)); n > killedRuns+finishedRuns {
					killedRuns, started = n-finishedRuns, true
				}
			}
			if !started {
				base += 150 * time.Millisecond
			}
		}
	}
	mustf(t, kills >= 10, "only %d kills landed", kills)

	var last report
	for i := 0; i < 15; i++ {
		r, res := backup(t, data, tenant, "--batch-size", "40", "--throttle-patience", "1s")
		mustf(t, res.code == 3 || res.code == 0, "recovery run exit %d: %s", res.code, res.stderr)
		last = r
		if r.FoldersSkipped == 0 {
			break
		}
	}
	mustf(t, last.FoldersSkipped == 0, "never completed: %+v", last)

	clean := crashItems
	for _, d := range crashDirty {
		clean -= len(d)
	}
	stored := storedCount(t, filepath.Join(data, "storage"))
	mustf(t, stored == clean, "storage holds %d items, want every clean item once: %d", stored, clean)
	// Killed writes leave at most unreferenced chunk files, never damage.
	ver := mailvault(t, "verify", filepath.Join(data, "storage"), "--read-data", "--data", data)
	mustf(t, ver.code == 0, "verify after kills: exit %d\n%s%s", ver.code, ver.stdout, ver.stderr)

	var q []struct {
		Mailbox  string `json:"mailbox"`
		Folder   string `json:"folder"`
		Position int    `json:"pos"`
	}
	res := mailvault(t, "quarantine", "--data", data, "--format", "json")
	if err := json.Unmarshal([]byte(res.stdout), &q); err != nil {
		t.Fatalf("quarantine JSON: %v %s", err, res.stdout)
	}
	got := map[string][]int{}
	for _, e := range q {
		got[e.Mailbox+"/"+e.Folder] = append(got[e.Mailbox+"/"+e.Folder], e.Position)
	}
	for k, want := range crashDirty {
		sort.Ints(got[k])
		mustf(t, len(got[k]) == len(want), "quarantine of %s: %v, want %v", k, got[k], want)
		for i := range want {
			mustf(t, got[k][i] == want[i], "quarantine of %s: %v, want %v", k, got[k], want)
		}
	}
	mustf(t, len(got) == len(crashDirty), "quarantine has extra folders: %v", got)

	// A killed run is "not finished", unless the kill landed after it had
	// recorded its end; no run may be left looking as if it still runs.
	total, notFinished := 0, 0
	for _, row := range listRuns(t, data) {
		total += row.ItemsStored
		mustf(t, row.State != "running", "run %s still shows as running", row.RunID)
		if row.State == "not finished" {
			notFinished++
		}
	}
	mustf(t, killedRuns >= 8, "only %d kills landed inside a run", killedRuns)
	mustf(t, notFinished >= killedRuns/2, "%d runs listed as not finished, %d were killed after starting", notFinished, killedRuns)
	mustf(t, total == clean, "reports count %d items stored over all runs, storage holds %d", total, clean)
}
