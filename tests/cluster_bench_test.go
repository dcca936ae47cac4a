package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkClusterScaling backs up the same tenant with 1, 2 and 3
// cluster workers, each backing up one mailbox at a time, against a
// simulator that limits each mailbox's requests (as Exchange Online
// does): with the per-mailbox budget the limit, throughput should grow
// with the workers. Reported: items/s for each, and each one's share of
// linear scaling (items/s with k workers over k times that with one), in
// one run.
//
//	go test -run '^$' -bench BenchmarkClusterScaling -benchtime 1x ./tests/
func BenchmarkClusterScaling(b *testing.B) {
	mailboxes := envInts(b, "MAILVAULT_BENCH_MAILBOXES", "12")[0]
	items := envInts(b, "MAILVAULT_BENCH_ITEMS", "300")[0]
	counts := envInts(b, "MAILVAULT_BENCH_WORKERS", "1,2,3")
	var t strings.Builder
	t.WriteString("seed: 17\nlimits: {concurrency: 4, requests: 6, window: 1s}\nmailboxes:\n")
	for i := range mailboxes {
		fmt.Fprintf(&t, "  - address: user%02d@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n        size: {min: 1KB, max: 4KB}\n", i, items)
	}
	total := mailboxes * items
	s3 := startS3(b)
	nc := startNATSCluster(b, 1)
	sim := startGraphSim(b, t.String())
	for i := 0; i < b.N; i++ {
		rates := map[int]float64{}
		for _, n := range counts {
			bucket := fmt.Sprintf("bench-%d-%d", i, n)
			s3.makeBucket(b, bucket, false)
			dir := b.TempDir()
			setup := func(data string) {
				for _, args := range [][]string{sim.connectionArgs(),
					append([]string{"storage", "add", "shared", "--path", filepath.Join(data, "cache"), "--unencrypted"}, s3.s3Args(bucket, "mv")...),
					{"job", "create", "nightly", "--connection", "online", "--storage", "shared", "--all-mailboxes"}} {
					if res := mailvault(b, append(args, "--data", data)...); res.code != 0 {
						b.Fatalf("%v: %s", args[:2], res.stderr)
					}
				}
			}
			var workers []*daemonProc
			for w := range n {
				data := filepath.Join(dir, fmt.Sprintf("w%d", w))
				setup(data)
				workers = append(workers, startDaemon(b, data, "--cluster", nc.url(), "--cluster-name", fmt.Sprintf("w%d", w),
					"--cluster-replicas", "1", "--cluster-mailboxes", "1"))
			}
			coord := filepath.Join(dir, "coordinator")
			setup(coord)
			started := time.Now()
			res := mailvault(b, "cluster", "run", "nightly", "--data", coord, "--cluster", nc.url(), "--cluster-replicas", "1", "--format", "json", "--timeout", "20m")
			elapsed := time.Since(started)
			var rep clusterCycle
			if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || res.code != 0 || rep.ItemsBackedUp != total {
				b.Fatalf("%d workers: exit %d, %+v: %s", n, res.code, rep, res.stderr)
			}
			for _, w := range workers {
				w.cmd.Process.Kill()
				w.cmd.Wait()
			}
			rates[n] = float64(total) / elapsed.Seconds()
			b.ReportMetric(rates[n], fmt.Sprintf("items/s-%dw", n))
			// The mailbox runs' own mean length: whether k workers made
			// each run slower, or left time between runs.
			var runs float64
			for _, r := range rep.Results {
				runs += r.DurationS
			}
			b.ReportMetric(runs/float64(max(len(rep.Results), 1)), fmt.Sprintf("s/mailbox-run-%dw", n))
			// The workers' busy share of the cycle: from taking a task to
			// its result, over the cycle's wall time per worker.
			var busy float64
			for _, r := range rep.Results {
				busy += r.Done.Sub(r.Taken).Seconds()
				b.Logf("%d workers: %s by %s, taken at +%.2f s, run %.2f s, done at +%.2f s", n, r.Mailbox, r.Worker, r.Taken.Sub(started).Seconds(), r.DurationS, r.Done.Sub(started).Seconds())
			}
			b.ReportMetric(busy/(float64(n)*elapsed.Seconds()), fmt.Sprintf("busy-%dw", n))
		}
		for _, n := range counts {
			if n > 1 && rates[1] > 0 {
				b.ReportMetric(rates[n]/(float64(n)*rates[1]), fmt.Sprintf("linear-%dw", n))
			}
		}
	}
}
