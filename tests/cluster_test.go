package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailvault/mailvault/adapters/cluster"
	"github.com/mailvault/mailvault/projections"
)

// natsCluster is NATS servers on loopback, clustered, with JetStream.
type natsCluster struct {
	nodes []*exec.Cmd
	urls  []string
	logs  []*bytes.Buffer
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(t, err == nil, "listen: %v", err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	bin := natsServer.binary(t)
	c := &natsCluster{}
	var routes []string
	clientPorts, routePorts := make([]int, n), make([]int, n)
	for i := range n {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	dir := t.TempDir()
	for i := range n {
		args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(clientPorts[i]), "-n", fmt.Sprintf("node%d", i+1), "-js",
			"-sd", filepath.Join(dir, fmt.Sprintf("node%d", i+1))}
		if n > 1 {
			args = append(args, "--cluster_name", "mailvault-test", "--cluster", routes[i], "--routes", strings.Join(routes, ","))
		}
		cmd := exec.Command(bin, args...)
		var logb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logb, &logb
		mustf(t, cmd.Start() == nil, "start nats-server node%d", i+1)
		c.nodes, c.logs = append(c.nodes, cmd), append(c.logs, &logb)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	t.Cleanup(func() {
		for _, cmd := range c.nodes {
			if cmd.Process != nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}
		if t.Failed() {
			for i, l := range c.logs {
				t.Logf("nats node%d log:\n%s", i+1, tail(l.String(), 2000))
			}
		}
	})
	// Ready when JetStream answers: the servers found each other and
	// chose their meta leader.
	deadline := time.Now().Add(60 * time.Second)
	for {
		nc, err := nats.Connect(c.url())
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return c
			}
		}
		mustf(t, time.Now().Before(deadline), "the NATS cluster did not come up in a minute: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *natsCluster) url() string { return strings.Join(c.urls, ",") }

// kill ends node i the hard way.
func (c *natsCluster) kill(i int) {
	c.nodes[i].Process.Kill()
	c.nodes[i].Wait()
}

// results counts the mailbox results the workers have published.
func (c *natsCluster) results(t testing.TB) int {
	nc, err := nats.Connect(c.url())
	if err != nil {
		return -1
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "MAILVAULT_EVENTS")
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("mailvault.results.>"))
	if err != nil {
		return -1
	}
	n := 0
	for _, k := range info.State.Subjects {
		n += int(k)
	}
	return n
}

type clusterCycle struct {
	State          string         `json:"state"`
	Mailboxes      int            `json:"mailboxes"`
	ItemsBackedUp  int            `json:"items_backed_up"`
	ItemsScanned   int            `json:"items_scanned"`
	ItemsStored    int            `json:"items_stored"`
	ItemsUnchanged int            `json:"items_unchanged"`
	Workers        map[string]int `json:"workers"`
	Errors         []string       `json:"errors"`
	Results        []struct {
		Mailbox        string    `json:"mailbox"`
		Worker         string    `json:"worker"`
		ItemsStored    int       `json:"items_stored"`
		ItemsUnchanged int       `json:"items_unchanged"`
		ItemsScanned   int       `json:"items_scanned"`
		DurationS      float64   `json:"duration_s"`
		Taken          time.Time `json:"taken"`
		Done           time.Time `json:"done"`
	} `json:"results"`
}

func clusterTenant(mailboxes, items int) string {
	var b strings.Builder
	b.WriteString("seed: 23\nlatency: 4ms\nmailboxes:\n")
	for i := range mailboxes {
		fmt.Fprintf(&b, "  - address: user%02d@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n        size: {min: 1KB, max: 4KB}\n", i, items)
	}
	return b.String()
}

// Three NATS servers, three mailvault workers sharing one storage in S3,
// thirty mailboxes: a cycle of a job run over the cluster (cluster run)
// backs up every mailbox. A worker is killed with SIGKILL and a NATS
// server too while the cycle runs: the dead worker's mailboxes go to the
// others, the cycle finishes, its report equals a single-node run's
// (items scanned and backed up), and the storage holds each item exactly
// once and verifies.
func TestClusterThreeWorkersSurviveKills(t *testing.T) {
	const mailboxes, items = 30, 60
	s3 := startS3(t)
	s3.makeBucket(t, "cluster", false)
	nc := startNATSCluster(t, 3)
	sim := startGraphSim(t, clusterTenant(mailboxes, items))
	dir := t.TempDir()

	// Every worker and the coordinator have the same connection, storage
	// (the bucket's: the first creates it, the others attach it) and job.
	setup := func(data string) {
		run := func(args ...string) {
			res := mailvault(t, append(args, "--data", data)...)
			mustf(t, res.code == 0, "%v: %d %s", args[:2], res.code, res.stderr)
		}
		run(sim.connectionArgs()...)
		run(append([]string{"storage", "add", "shared", "--path", filepath.Join(data, "storage-cache"), "--unencrypted"}, s3.s3Args("cluster", "mv")...)...)
		run("job", "create", "nightly", "--connection", "online", "--storage", "shared", "--all-mailboxes")
	}
	var workers []*daemonProc
	for i := range 3 {
		data := filepath.Join(dir, fmt.Sprintf("worker%d", i+1))
		setup(data)
		workers = append(workers, startDaemon(t, data, "--cluster", nc.url(), "--cluster-name", fmt.Sprintf("w%d", i+1),
			"--cluster-replicas", "3", "--cluster-ack-wait", "4s", "--cluster-mailboxes", "3"))
	}
	coord := filepath.Join(dir, "coordinator")
	setup(coord)
	// The live workers' slots, in the cluster's key-value bucket: the
	// tenant-wide budget is shared by them.
	probe, err := cluster.Connect(context.Background(), cluster.Options{URLs: nc.url(), Name: "probe", Replicas: 3, AckWait: 4 * time.Second})
	mustf(t, err == nil, "connect: %v", err)
	deadline := time.Now().Add(30 * time.Second)
	slots, err := probe.Slots(context.Background())
	for (err != nil || slots != 9) && time.Now().Before(deadline) { // the workers are joining
		time.Sleep(100 * time.Millisecond)
		slots, err = probe.Slots(context.Background())
	}
	probe.Close()
	mustf(t, err == nil && slots == 9, "live slots: %d %v, want 3 workers x 3", slots, err)

	cmd := exec.Command(binary, "cluster", "run", "nightly", "--data", coord, "--cluster", nc.url(), "--cluster-replicas", "3",
		"--format", "json", "--timeout", "4m")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	mustf(t, cmd.Start() == nil, "start cluster run")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	for !killed {
		select {
		case err := <-done:
			t.Fatalf("the cycle ended before the kills: %v %s %s", err, stdout.String(), stderr.String())
		default:
		}
		if nc.results(t) >= mailboxes/4 {
			workers[1].cmd.Process.Kill() // SIGKILL, mid-cycle
			nc.kill(2)
			killed = true
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = <-done
	mustf(t, err == nil, "cluster run: %v\n%s\n%s", err, stdout.String(), tail(stderr.String(), 2000))
	var rep clusterCycle
	mustf(t, json.Unmarshal(stdout.Bytes(), &rep) == nil, "cluster run's report is not JSON: %s", stdout.String())
	mustf(t, rep.State == "finished" && rep.Mailboxes == mailboxes && len(rep.Results) == mailboxes, "the cycle: %+v", rep)
	for _, r := range rep.Results {
		mustf(t, r.ItemsStored+r.ItemsUnchanged == items, "%s backed up %d+%d items by %s, want %d:\n%s", r.Mailbox, r.ItemsStored, r.ItemsUnchanged, r.Worker, items, stdout.String())
	}
	mustf(t, rep.Workers["w1"] > 0 && rep.Workers["w3"] > 0, "the surviving workers: %v", rep.Workers)
	t.Logf("cycle: %d mailboxes by %v; stored %d, found stored %d", rep.Mailboxes, rep.Workers, rep.ItemsStored, rep.ItemsUnchanged)

	// The same job on one machine, into a storage of its own.
	single := filepath.Join(dir, "single")
	one, res := graphBackup(t, sim, single)
	mustf(t, res.code == 0, "single-node backup: %s", res.stderr)
	mustf(t, one.ItemsStored == rep.ItemsBackedUp && one.ItemsScanned == rep.ItemsScanned,
		"single node stored %d of %d scanned; the cluster backed up %d of %d scanned", one.ItemsStored, one.ItemsScanned, rep.ItemsBackedUp, rep.ItemsScanned)

	// The shared storage, read from a new directory: each item once.
	reader := filepath.Join(dir, "reader")
	res = mailvault(t, append([]string{"storage", "add", "shared", "--path", filepath.Join(reader, "cache"), "--unencrypted", "--data", reader}, s3.s3Args("cluster", "mv")...)...)
	mustf(t, res.code == 0, "attach the shared storage: %s", res.stderr)
	st := mailvault(t, "storage", "stats", "shared", "--data", reader)
	want := fmt.Sprintf("items:         %d (%d versions)", mailboxes*items, mailboxes*items)
	mustf(t, strings.Contains(st.stdout, want), "the shared storage holds each item once: want %q in\n%s%s", want, st.stdout, st.stderr)
	ver := mailvault(t, "verify", "shared", "--read-data", "--data", reader)
	mustf(t, ver.code == 0, "verify the shared storage: %d %s %s", ver.code, ver.stdout, ver.stderr)
}

// A job over Exchange Server with mailboxes and public folders, run over
// a cluster of two workers: the public folders are one task like a
// mailbox's, so the cycle backs up everything the same job does on one
// machine, and the shared storage holds each item once.
func TestClusterJobWithPublicFolders(t *testing.T) {
	s3 := startS3(t)
	s3.makeBucket(t, "publicf", false)
	nc := startNATSCluster(t, 1)
	sim := startEWSSim(t, ewsTenant)
	dir := t.TempDir()
	jobArgs := []string{"--mailbox", "olga@contoso.test", "--mailbox", "piet@contoso.test", "--public-folder", "Projects/**"}
	setup := func(data, storage string, s3args []string) {
		run := func(args ...string) {
			res := mailvault(t, append(args, "--data", data)...)
			mustf(t, res.code == 0, "%v: %d %s", args[:2], res.code, res.stderr)
		}
		run("connection", "add", "onprem", "--type", "ews", "--ews-url", sim.EWSURL, "--username", sim.Username, "--password-file", sim.passwordFile,
			"--impersonate", "--ca-cert", sim.CACert)
		run(append([]string{"storage", "add", "shared", "--path", storage, "--unencrypted"}, s3args...)...)
		run(append([]string{"job", "create", "nightly", "--connection", "onprem", "--storage", "shared"}, jobArgs...)...)
	}
	for i := range 2 {
		data := filepath.Join(dir, fmt.Sprintf("worker%d", i+1))
		setup(data, filepath.Join(data, "cache"), s3.s3Args("publicf", "mv"))
		startDaemon(t, data, "--cluster", nc.url(), "--cluster-name", fmt.Sprintf("w%d", i+1), "--cluster-replicas", "1", "--cluster-mailboxes", "2")
	}
	coord := filepath.Join(dir, "coordinator")
	setup(coord, filepath.Join(coord, "cache"), s3.s3Args("publicf", "mv"))
	res := mailvault(t, "cluster", "run", "nightly", "--data", coord, "--cluster", nc.url(), "--cluster-replicas", "1", "--format", "json", "--timeout", "3m")
	var rep clusterCycle
	mustf(t, json.Unmarshal([]byte(res.stdout), &rep) == nil && res.code == 0, "cluster run: %d %s %s", res.code, res.stdout, tail(res.stderr, 2000))
	const total = 700 + 15 + 40 + 25 + 120 + 40 + 12
	mustf(t, rep.State == "finished" && rep.Mailboxes == 2 && len(rep.Results) == 3 && rep.ItemsBackedUp == total, "the cycle: %s", res.stdout)
	pf := false
	for _, r := range rep.Results {
		if r.Mailbox == cluster.PublicFolders {
			pf = r.ItemsStored+r.ItemsUnchanged == 40+12
		}
	}
	mustf(t, pf, "the public folders' task: %s", res.stdout)

	// The same backup on one machine, into a local storage: the same counts.
	r, one := sim.backup(t, filepath.Join(dir, "single"), append([]string{"--impersonate"}, jobArgs...)...)
	mustf(t, one.code == 0, "single-node run: %d %s", one.code, one.stderr)
	mustf(t, r.ItemsStored == rep.ItemsBackedUp && r.ItemsScanned == rep.ItemsScanned, "single node stored %d of %d; the cluster backed up %d of %d", r.ItemsStored, r.ItemsScanned, rep.ItemsBackedUp, rep.ItemsScanned)

	reader := filepath.Join(dir, "reader")
	res = mailvault(t, append([]string{"storage", "add", "shared", "--path", filepath.Join(reader, "cache"), "--unencrypted", "--data", reader}, s3.s3Args("publicf", "mv")...)...)
	mustf(t, res.code == 0, "attach: %s", res.stderr)
	st := mailvault(t, "storage", "stats", "shared", "--data", reader)
	want := fmt.Sprintf("items:         %d (%d versions)", total, total)
	mustf(t, strings.Contains(st.stdout, want), "the shared storage holds each item once: want %q in\n%s%s", want, st.stdout, st.stderr)
}

// A task delivered twice (JetStream gives it again when a worker's
// heartbeats or acknowledgement were lost with a server) runs its mailbox
// once: the second delivery waits for the first in the same worker and
// is acknowledged as done, and the cycle's result is the run that backed
// the mailbox up (a second, incremental run would report a mailbox of
// nothing).
func TestClusterRunsATaskDeliveredTwiceOnce(t *testing.T) {
	const items = 20
	nc := startNATSCluster(t, 1)
	sim := startGraphSim(t, clusterTenant(1, items))
	data := filepath.Join(t.TempDir(), "worker")
	for _, args := range [][]string{
		sim.connectionArgs(),
		{"storage", "add", "local", "--path", filepath.Join(data, "storage"), "--unencrypted"},
		{"job", "create", "nightly", "--connection", "online", "--storage", "local", "--all-mailboxes"},
	} {
		res := mailvault(t, append(args, "--data", data)...)
		mustf(t, res.code == 0, "%v: %d %s", args[:2], res.code, res.stderr)
	}
	worker := startDaemon(t, data, "--cluster", nc.url(), "--cluster-name", "w1", "--cluster-replicas", "1", "--cluster-mailboxes", "2")

	probe, err := cluster.Connect(context.Background(), cluster.Options{URLs: nc.url(), Name: "probe", Replicas: 1})
	mustf(t, err == nil, "connect: %v", err)
	defer probe.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for slots, err := probe.Slots(ctx); err != nil || slots != 2; slots, err = probe.Slots(ctx) {
		mustf(t, ctx.Err() == nil, "the worker did not join: %d %v", slots, err)
		time.Sleep(50 * time.Millisecond)
	}
	// Two copies of one task, as two deliveries are: different message
	// ids (a copy with the same id is a duplicate JetStream drops).
	conn, err := nats.Connect(nc.url())
	mustf(t, err == nil, "connect: %v", err)
	defer conn.Close()
	js, _ := jetstream.New(conn)
	const mailbox = "user00@contoso.test"
	task, _ := json.Marshal(cluster.Task{Cycle: "c1", Job: "nightly", Mailbox: mailbox})
	for _, id := range []string{"first", "again"} {
		_, err := js.Publish(ctx, "mailvault.work", task, jetstream.WithMsgID(id))
		mustf(t, err == nil, "publish the task: %v", err)
	}
	results, err := probe.Results(ctx, "c1", []string{mailbox})
	mustf(t, err == nil, "the cycle's result: %v", err)
	r := results[mailbox]
	mustf(t, r.State == "finished" && r.ItemsScanned == items && r.ItemsStored == items, "the result: %+v", r)
	// Both deliveries acknowledged: the work queue is empty.
	for {
		s, err := js.Stream(ctx, "MAILVAULT_WORK")
		mustf(t, ctx.Err() == nil, "the work queue keeps a task: %v", err)
		if err == nil {
			if info, err := s.Info(ctx); err == nil && info.State.Msgs == 0 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	worker.cmd.Process.Signal(os.Interrupt)
	worker.cmd.Wait()
	out := mailvault(t, "runs", "--data", data, "--format", "json")
	var runs []projections.RunSummary
	mustf(t, json.Unmarshal([]byte(out.stdout), &runs) == nil, "runs: %d %s %s", out.code, out.stdout, out.stderr)
	mustf(t, len(runs) == 1 && runs[0].RunID == r.Run, "the worker ran the mailbox %d times, want once: %s", len(runs), out.stdout)
}
