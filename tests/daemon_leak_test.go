package tests

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// daemonUse is what a running daemon holds: open file descriptors and
// goroutines (from its own metrics).
func daemonUse(t *testing.T, d *daemonProc, data string) (fds, goroutines int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/fd")
	mustf(t, err == nil, "read the daemon's fds: %v", err)
	token, err := os.ReadFile(filepath.Join(data, "daemon.token"))
	mustf(t, err == nil, "read the token: %v", err)
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	mustf(t, err == nil && resp.StatusCode == http.StatusOK, "metrics: %v", err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	goroutines = -1
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			goroutines, _ = strconv.Atoi(v)
		}
	}
	mustf(t, goroutines > 0, "no go_goroutines in the metrics")
	return len(entries), goroutines
}

// Continuous jobs cycle for ever in one daemon: each cycle opens its
// server and must release what it opened (kept-alive connections and
// their goroutines), so that after dozens of cycles the daemon holds what
// it held after the first few.
func TestDaemonCyclesReleaseWhatTheyOpen(t *testing.T) {
	t.Parallel()
	sim := startGraphSim(t, `mailboxes:
  - address: r1@contoso.test
    folders: [{path: Inbox, items: 5}]
  - address: r2@contoso.test
    folders: [{path: Inbox, items: 5}]
  - address: r3@contoso.test
    folders: [{path: Inbox, items: 5}]
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "j1", "--mailbox", "r1@contoso.test", "--idle", "00:00:01")
	for _, j := range []string{"j2", "j3"} {
		res := run("job", "create", j, "--connection", "online", "--storage", "nas", "--mailbox", "r"+j[1:]+"@contoso.test", "--idle", "00:00:01")
		mustf(t, res.code == 0, "job create %s: %s", j, res.stderr)
	}
	d := startDaemon(t, data)
	for _, j := range []string{"j1", "j2", "j3"} {
		res := run("job", "start", j)
		mustf(t, res.code == 0, "job start %s: %s", j, res.stderr)
	}
	cycles := func() int {
		n := 0
		for _, j := range jobsListed(t, run("job", "list", "--format", "json").stdout) {
			n += j.Cycles
		}
		return n
	}
	// The deadline only ends a test that hangs; what is checked is counts.
	waitCycles := func(n int) {
		deadline := time.Now().Add(3 * time.Minute)
		for cycles() < n {
			mustf(t, time.Now().Before(deadline), "the jobs ran %d cycles, not %d", cycles(), n)
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitCycles(6)
	fds, goroutines := daemonUse(t, d, data)
	waitCycles(6 + 36)
	fds2, goroutines2 := daemonUse(t, d, data)
	mustf(t, fds2 <= fds+6 && goroutines2 <= goroutines+12,
		"after 36 more cycles the daemon holds %d fds (was %d) and %d goroutines (was %d)", fds2, fds, goroutines2, goroutines)
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A backup the daemon runs for the command line shows its progress on the
// caller's terminal while it runs, and Ctrl-C on the caller stops it in the
// daemon: the run ends not finished, and the next one continues it.
func TestForwardedBackupShowsProgressAndStopsOnCtrlC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tenant := writeTenant(t, dir, `latency: 100ms
mailboxes:
  - address: long@contoso.test
    folders:
      - path: Inbox
        items: 4000
`)
	startDaemon(t, data)
	cmd := exec.Command(binary, "backup", "--tenant", tenant, "--data", data, "--progress", "bar", "--batch-size", "20")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	mustf(t, cmd.Start() == nil, "start the backup")
	progressed := regexp.MustCompile(`\(([1-9][0-9]*)/[0-9]+, `)
	deadline := time.Now().Add(2 * time.Minute)
	for !progressed.MatchString(stderr.String()) {
		mustf(t, time.Now().Before(deadline), "no progress reached the caller: %q", stderr.String())
		time.Sleep(50 * time.Millisecond)
	}
	running := listRuns(t, data)
	mustf(t, len(running) == 1 && running[0].State == "running", "the progress came while the run runs: %+v", running)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	mustf(t, errors.As(err, &ee) && ee.ExitCode() == 1, "the interrupted backup exits 1: %v", err)
	// The daemon stops the run at a checkpoint; the deadline only ends a
	// test that hangs.
	deadline = time.Now().Add(time.Minute)
	var runs []runRow
	for runs = listRuns(t, data); runs[0].State == "running"; runs = listRuns(t, data) {
		mustf(t, time.Now().Before(deadline), "the daemon goes on with the backup after its caller's Ctrl-C")
		time.Sleep(100 * time.Millisecond)
	}
	mustf(t, runs[0].State == "not finished" && runs[0].ItemsStored < 4000, "after Ctrl-C: %+v", runs[0])
}
