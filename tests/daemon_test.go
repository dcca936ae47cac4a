package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonProc is a `mailvault daemon` process.
type daemonProc struct {
	cmd  *exec.Cmd
	addr string
}

func startDaemon(t testing.TB, data string, extra ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"daemon", "--data", data, "--listen", "127.0.0.1:0"}, extra...)...)
	out, _ := cmd.StdoutPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the daemon printed nothing: %v %s", err, errb.String())
	}
	addr := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(line, "mailvault daemon: listening on "))[0], ",")
	d := &daemonProc{cmd: cmd, addr: addr}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	return d
}

// A continuous job run by the daemon: cycles separated by the idle time
// pick up changes incrementally; a SIGKILL mid-work and a restart lose
// nothing and store nothing twice; the API refuses a wrong token.
func TestDaemonRunsAContinuousJob(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim := startGraphSim(t, `seed: 41
latency: 3ms
mailboxes:
  - address: lou@contoso.test
    folders:
      - path: Inbox
        items: 300
        size: {min: 1KB, max: 2KB}
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	must := func(res result, what string) {
		t.Helper()
		mustf(t, res.code == 0, "%s: exit %d: %s %s", what, res.code, res.stdout, res.stderr)
	}
	must(run("storage", "add", "nas", "--unencrypted", "--path", filepath.Join(dir, "store")), "storage add")
	must(run(sim.connectionArgs()...), "connection add")
	job := filepath.Join(dir, "job.yaml")
	os.WriteFile(job, []byte("name: loop\nconnection: online\nstorage: nas\nmailboxes: [lou@contoso.test]\ncontinuity: continuous\nidle: \"00:00:01\"\n"), 0o600)
	must(run("job", "create", "-f", job), "job create")
	res := run("job", "start", "loop")
	mustf(t, res.code == 1 && strings.Contains(res.stderr, "needs the mailvault daemon"), "job start without a daemon: %d %s", res.code, res.stderr)

	d := startDaemon(t, data)
	must(run("job", "start", "loop"), "job start through the daemon")
	finished := func() (n, stored int) {
		for _, r := range listRuns(t, data) {
			if r.State == "finished" {
				n++
			}
			stored += r.ItemsStored
		}
		return n, stored
	}
	waitRuns := func(want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if n, _ := finished(); n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d cycles finished: %+v", want, listRuns(t, data))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitRuns(2)
	res = run("job", "edit", "loop", "--idle", "00:00:02")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "is running"), "editing a running job: %d %s", res.code, res.stderr)
	// Configuration commands reach the daemon's application over its typed
	// API, with the same rules and exit codes as without a daemon.
	res = run("job", "delete", "loop")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "before deleting it"), "deleting a running job: %d %s", res.code, res.stderr)
	res = run("job", "start", "nope")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, `no job named "nope"`), "starting an unknown job: %d %s", res.code, res.stderr)
	must(run("storage", "add", "tape", "--unencrypted", "--path", filepath.Join(dir, "tape")), "storage add through the daemon")
	res = run("storage", "list", "--format", "json")
	mustf(t, res.code == 0 && strings.Contains(res.stdout, `"name": "tape"`), "storage list through the daemon: %s", res.stdout)
	must(run("storage", "remove", "tape"), "storage remove through the daemon")
	n, stored := finished()
	mustf(t, stored == 300, "after %d cycles %d items were stored, want 300 once", n, stored)
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "lou@contoso.test", "folder": "Inbox", "add": 1500, "modify": 10})
	time.Sleep(1500 * time.Millisecond) // let a cycle start on the changes, then kill the daemon
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()

	d = startDaemon(t, data) // the job was active: it carries on by itself
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, stored = finished()
		if stored >= 300+1500+10 {
			break
		}
		mustf(t, time.Now().Before(deadline), "the job did not finish the changes after the restart: stored %d, runs %+v", stored, listRuns(t, data))
		time.Sleep(200 * time.Millisecond)
	}
	waitRuns(n + 2)
	must(run("job", "stop", "loop"), "job stop")
	list := run("job", "list")
	mustf(t, strings.Contains(list.stdout, "inactive") && strings.Contains(list.stdout, "CYCLES"), "job list after stop: %s", list.stdout)
	// The counters carry over the restart: they are rebuilt from the log.
	loop := jobsListed(t, run("job", "list", "--format", "json").stdout)["loop"]
	mustf(t, loop.State == "inactive" && loop.Cycles >= n+2 && loop.ItemsStored >= 300+1500+10 && loop.LastCycle != nil,
		"job list --format json after the restart and a stop: %+v, want at least %d cycles", loop, n+2)
	for _, r := range listRuns(t, data) {
		mustf(t, r.Job == "loop", "run %s listed with job %q, want loop", r.RunID, r.Job)
	}
	must(run("job", "edit", "loop", "--idle", "00:00:02"), "editing the stopped job")

	_, stored = finished()
	files := storedCount(t, filepath.Join(dir, "store"))
	mustf(t, stored == 300+1500+10 && files == stored, "stored %d in the reports and %d files, want %d each: every item once", stored, files, 300+1500+10)

	// The API takes only the daemon's token.
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.addr+"/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	mustf(t, err == nil && resp.StatusCode == http.StatusUnauthorized, "a wrong token was accepted: %v %v", err, resp)
	tok, _ := os.ReadFile(filepath.Join(data, "daemon.token"))
	info, _ := os.Stat(filepath.Join(data, "daemon.token"))
	mustf(t, len(bytes.TrimSpace(tok)) >= 32 && info.Mode().Perm() == 0o600, "the token file: %d bytes, mode %v", len(tok), info.Mode().Perm())
	req, _ = http.NewRequest(http.MethodGet, "http://"+d.addr+"/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(tok)))
	resp, err = http.DefaultClient.Do(req)
	mustf(t, err == nil && resp.StatusCode == http.StatusOK, "GET /v1/jobs with the token: %v %v", err, resp)
	var typed []struct{ Name, State string }
	mustf(t, json.NewDecoder(resp.Body).Decode(&typed) == nil && len(typed) == 1 && typed[0].Name == "loop", "GET /v1/jobs: %+v", typed)
	resp.Body.Close()

	// A restore from the job's storage, through the daemon, counts in the
	// job's "items restored".
	ls := run("ls", "nas", "lou@contoso.test/Inbox", "--format", "json")
	must(ls, "ls through the daemon")
	var ids []string
	for _, line := range strings.SplitN(ls.stdout, "\n", 4)[:3] {
		var v struct{ ID string }
		json.Unmarshal([]byte(line), &v)
		ids = append(ids, v.ID)
	}
	must(run("restore", "--storage", "nas", "--to", "online", "--items", strings.Join(ids, ","), "--collisions", "copy", "--into-folder", "Restored"), "restore")
	loop = jobsListed(t, run("job", "list", "--format", "json").stdout)["loop"]
	mustf(t, loop.ItemsRestored == 3, "job list after a restore of 3 items: %+v", loop)

	// SIGTERM: the daemon stops cleanly and gives the data directory back.
	d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		mustf(t, err == nil, "the daemon exited with %v on SIGTERM", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop on SIGTERM")
	}
	_, err = os.Stat(filepath.Join(data, "daemon.json"))
	mustf(t, os.IsNotExist(err), "daemon.json left behind after a clean stop")
	must(run("job", "list"), "job list after the daemon stopped (the log is free again)")
}

// A one-time job without activity periods runs one cycle when started and
// stops; a restart of the daemon does not run it again.
func TestDaemonOneTimeJob(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim := startGraphSim(t, "seed: 42\nmailboxes:\n  - address: max@contoso.test\n    folders:\n      - path: Inbox\n        items: 40\n")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "once", "--mailbox", "max@contoso.test", "--one-time")
	d := startDaemon(t, data)
	res := run("job", "start", "once")
	mustf(t, res.code == 0, "job start: %s", res.stderr)
	waitJobFinished(t, run, "once", 30*time.Second)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	startDaemon(t, data)
	time.Sleep(2500 * time.Millisecond) // two scheduler ticks
	runs := listRuns(t, data)
	mustf(t, len(runs) == 1 && runs[0].ItemsStored == 40, "a finished one-time job ran again after a restart: %+v", runs)
}

// waitJobFinished polls job list until the job is finished. The deadline
// is not a timing assertion: it only ends a test that hangs.
func waitJobFinished(t *testing.T, run func(args ...string) result, job string, patience time.Duration) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for jobsListed(t, run("job", "list", "--format", "json").stdout)[job].State != "finished" {
		mustf(t, time.Now().Before(deadline), "job %s did not finish: %s", job, run("job", "list").stdout)
		time.Sleep(100 * time.Millisecond)
	}
}

// connectionArgs add the simulator as the Graph connection "online".
func (s *graphSim) connectionArgs() []string {
	return []string{"connection", "add", "online", "--type", "graph", "--tenant-id", s.TenantID, "--client-id", s.ClientID, "--client-secret-file", s.secretFile,
		"--graph-url", s.GraphURL, "--token-url", s.TokenURL, "--ca-cert", s.CACert}
}

// jobSetup gives the data directory dir/data an unencrypted storage "nas"
// (in dir/store), the simulator as connection "online" and the job NAME
// (job[0]) with the rest of job as its flags; it returns a runner of
// mailvault commands on that data directory.
func jobSetup(t testing.TB, sim *graphSim, dir string, job ...string) func(args ...string) result {
	t.Helper()
	data := filepath.Join(dir, "data")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	for _, args := range [][]string{
		{"storage", "add", "nas", "--unencrypted", "--path", filepath.Join(dir, "store")},
		sim.connectionArgs(),
		append([]string{"job", "create", job[0], "--connection", "online", "--storage", "nas"}, job[1:]...),
	} {
		res := run(args...)
		mustf(t, res.code == 0, "%v: %s", args, res.stderr)
	}
	return run
}

// listedJob is a job as job list --format json shows it.
type listedJob struct {
	State         string     `json:"state"`
	Cycles        int        `json:"cycles"`
	ItemsStored   int        `json:"items_stored"`
	ItemsRestored int        `json:"items_restored"`
	LastCycle     *time.Time `json:"last_cycle"`
}

func jobsListed(t *testing.T, out string) map[string]listedJob {
	t.Helper()
	var jobs []struct {
		Name string `json:"name"`
		listedJob
	}
	mustf(t, json.Unmarshal([]byte(out), &jobs) == nil, "job list --format json: %q", out)
	m := map[string]listedJob{}
	for _, j := range jobs {
		m[j.Name] = j.listedJob
	}
	return m
}
