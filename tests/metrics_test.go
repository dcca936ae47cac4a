package tests

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// /metrics of the daemon parses with Prometheus' own text-format parser,
// and its counters are what the run's report says.
func TestDaemonMetricsMatchTheReport(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim := startGraphSim(t, `seed: 43
mailboxes:
  - address: mia@contoso.test
    folders:
      - path: Inbox
        items: 120
        dirty: [7, 60]
        dirty_mode: item
        size: {min: 1KB, max: 4KB}
      - path: Calendar
        kind: calendar
        items: 60
        throttle: {items: 30, window: 3s}
        size: {min: 1KB, max: 2KB}
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "once", "--mailbox", "mia@contoso.test", "--one-time")
	d := startDaemon(t, data)
	mustf(t, run("job", "start", "once").code == 0, "job start")
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(run("job", "list").stdout, "finished") {
		mustf(t, time.Now().Before(deadline), "the job did not finish: %s", run("job", "list").stdout)
		time.Sleep(100 * time.Millisecond)
	}
	var rep struct {
		ItemsStored       int       `json:"items_stored"`
		ItemsQuarantined  int       `json:"items_quarantined"`
		Requests          int       `json:"requests"`
		ListRequests      int       `json:"list_requests"`
		ThrottledRequests int       `json:"throttled_requests"`
		BytesStored       int64     `json:"bytes_stored"`
		StallSourceS      float64   `json:"stall_source_s"`
		Ended             time.Time `json:"ended"`
	}
	r := run("report", "last", "--format", "json")
	mustf(t, json.Unmarshal([]byte(r.stdout), &rep) == nil, "report: %s %s", r.stdout, r.stderr)
	mustf(t, rep.ItemsQuarantined == 2 && rep.ThrottledRequests > 0, "the run should quarantine 2 items and be throttled: %+v", rep)

	tok, _ := os.ReadFile(filepath.Join(data, "daemon.token"))
	get := func(auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.addr+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		mustf(t, err == nil, "GET /metrics: %v", err)
		return resp
	}
	mustf(t, get("").StatusCode == http.StatusUnauthorized, "/metrics answered without the token")
	resp := get(strings.TrimSpace(string(tok)))
	defer resp.Body.Close()
	mustf(t, resp.StatusCode == http.StatusOK, "/metrics: %d", resp.StatusCode)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	mustf(t, err == nil, "the Prometheus text parser rejects /metrics: %v", err)
	sum := func(name string, match map[string]string) float64 {
		f, ok := families[name]
		mustf(t, ok, "/metrics lacks %s", name)
		total := 0.0
		for _, m := range f.Metric {
			ok := true
			for k, v := range match {
				found := false
				for _, l := range m.Label {
					found = found || l.GetName() == k && l.GetValue() == v
				}
				ok = ok && found
			}
			if !ok {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
		return total
	}
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"fetch requests", sum("mailvault_requests_total", map[string]string{"request": "fetch"}), float64(rep.Requests)},
		{"listing requests", sum("mailvault_requests_total", map[string]string{"request": "list"}), float64(rep.ListRequests)},
		{"throttled", sum("mailvault_throttled_requests_total", nil), float64(rep.ThrottledRequests)},
		{"stored", sum("mailvault_items_stored_total", nil), float64(rep.ItemsStored)},
		{"quarantined", sum("mailvault_items_quarantined_total", nil), float64(rep.ItemsQuarantined)},
		{"bytes", sum("mailvault_stored_bytes_total", nil), float64(rep.BytesStored)},
		{"runs finished with warnings", sum("mailvault_runs", map[string]string{"state": "finished with warnings"}), 1},
		// By job, for alerts such as "job X has not succeeded for 26 h".
		{"the job's stored items", sum("mailvault_job_items_stored_total", map[string]string{"job": "once"}), float64(rep.ItemsStored)},
		{"the job's cycles by state", sum("mailvault_job_runs_total", map[string]string{"job": "once", "state": "finished with warnings"}), 1},
		{"the job's last success", sum("mailvault_job_last_success_timestamp_seconds", map[string]string{"job": "once"}), float64(rep.Ended.UnixMilli()) / 1000},
	}
	for _, c := range checks {
		mustf(t, c.got == c.want, "%s: /metrics says %v, the report %v", c.name, c.got, c.want)
	}
	mustf(t, sum("mailvault_requests_total", map[string]string{"source": "graph", "mailbox_class": "user"}) == float64(rep.Requests+rep.ListRequests), "labels")
	mustf(t, sum("mailvault_throttle_wait_seconds_total", nil) > 0 && sum("mailvault_stall_seconds_total", map[string]string{"direction": "source"}) > 0, "waits and stalls")
	mustf(t, sum("mailvault_eventlog_size_bytes", nil) > 0 && sum("mailvault_eventlog_append_seconds", nil) > 0, "event log metrics")
}
