// Package promexport serves mailvault's metrics in Prometheus form with the
// official client library. Every value comes from the metrics projection
// (a fold of the event log), so /metrics says what the reports say.
package promexport

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailvault/mailvault/projections"
)

var (
	requestsDesc = prometheus.NewDesc("mailvault_requests_total", "Requests to the mailbox servers, by source, request kind, outcome and mailbox class.",
		[]string{"source", "request", "outcome", "mailbox_class"}, nil)
	throttledDesc   = prometheus.NewDesc("mailvault_throttled_requests_total", "Requests the server answered throttled.", []string{"source"}, nil)
	waitDesc        = prometheus.NewDesc("mailvault_throttle_wait_seconds_total", "Seconds of back-off the server asked for (Retry-After, BackOffMilliseconds).", []string{"source"}, nil)
	storedDesc      = prometheus.NewDesc("mailvault_items_stored_total", "Item versions stored.", nil, nil)
	unchangedDesc   = prometheus.NewDesc("mailvault_items_unchanged_total", "Items fetched again that were already stored in that version.", nil, nil)
	quarantineDesc  = prometheus.NewDesc("mailvault_items_quarantined_total", "Dirty items quarantined, counted per run.", nil, nil)
	restoredDesc    = prometheus.NewDesc("mailvault_items_restored_total", "Items restores created, replaced or copied.", nil, nil)
	restoreFailDesc = prometheus.NewDesc("mailvault_restore_failures_total", "Items restores could not restore.", nil, nil)
	bytesDesc       = prometheus.NewDesc("mailvault_stored_bytes_total", "Bytes of stored item versions.", nil, nil)
	writtenDesc     = prometheus.NewDesc("mailvault_written_bytes_total", "Bytes the storage wrote after deduplication and compression.", nil, nil)
	stallDesc       = prometheus.NewDesc("mailvault_stall_seconds_total", "Seconds requests waited on the mailbox server (source) or the storage (target).", []string{"direction"}, nil)
	logSizeDesc     = prometheus.NewDesc("mailvault_eventlog_size_bytes", "Size of the event log on disk.", nil, nil)
	runsDesc        = prometheus.NewDesc("mailvault_runs", "Backup runs in the log, by state (a run still going is not finished).", []string{"state"}, nil)
	jobsDesc        = prometheus.NewDesc("mailvault_jobs_running", "Jobs with a cycle running now.", nil, nil)
	jobSuccessDesc  = prometheus.NewDesc("mailvault_job_last_success_timestamp_seconds",
		"When the job's newest cycle that finished (with or without warnings) ended, in Unix seconds; absent until one has.", []string{"job"}, nil)
	jobRunsDesc   = prometheus.NewDesc("mailvault_job_runs_total", "The job's cycles, by how they ended.", []string{"job", "state"}, nil)
	jobStoredDesc = prometheus.NewDesc("mailvault_job_items_stored_total", "Item versions the job's cycles stored.", []string{"job"}, nil)
)

// Collector turns the projection's snapshot into metrics at each scrape.
type Collector struct {
	Snapshot func() projections.MetricsSnapshot
	LogSize  func() int64
	// JobsRunning, when set, counts the jobs with a cycle running.
	JobsRunning func() int
	// Jobs, when set, gives each job's history, for the metrics labelled
	// by job (so that an alert can say "job X has not succeeded for 26
	// hours").
	Jobs func() map[string]projections.JobHistory
}

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.Snapshot()
	throttled := map[string]int{}
	for _, k := range s.SortedRequestKeys() {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(s.Requests[k]), k.Source, k.Request, k.Outcome, k.MailboxClass)
		if k.Outcome == "throttled" {
			throttled[k.Source] += s.Requests[k]
		}
	}
	for src, n := range throttled {
		ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, float64(n), src)
	}
	for src, w := range s.ThrottleWaitS {
		ch <- prometheus.MustNewConstMetric(waitDesc, prometheus.CounterValue, w, src)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(storedDesc, float64(s.ItemsStored))
	counter(unchangedDesc, float64(s.ItemsUnchanged))
	counter(quarantineDesc, float64(s.ItemsQuarantined))
	counter(restoredDesc, float64(s.ItemsRestored))
	counter(restoreFailDesc, float64(s.RestoreFailures))
	counter(bytesDesc, float64(s.BytesStored))
	counter(writtenDesc, float64(s.BytesWritten))
	ch <- prometheus.MustNewConstMetric(stallDesc, prometheus.CounterValue, s.StallSourceS, "source")
	ch <- prometheus.MustNewConstMetric(stallDesc, prometheus.CounterValue, s.StallTargetS, "target")
	if c.LogSize != nil {
		ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(c.LogSize()))
	}
	if c.JobsRunning != nil {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(c.JobsRunning()))
	}
	for state, n := range s.RunsByState {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(n), state)
	}
	if c.Jobs == nil {
		return
	}
	for job, h := range c.Jobs() {
		if !h.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(jobSuccessDesc, prometheus.GaugeValue, float64(h.LastSuccess.UnixMilli())/1000, job)
		}
		for state, n := range h.States {
			ch <- prometheus.MustNewConstMetric(jobRunsDesc, prometheus.CounterValue, float64(n), job, string(state))
		}
		ch <- prometheus.MustNewConstMetric(jobStoredDesc, prometheus.CounterValue, float64(h.ItemsStored), job)
	}
}

// AppendLatency is the event log's commit latency histogram.
var AppendLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailvault_eventlog_append_seconds",
	Help: "Time to commit a group of appends to the event log.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})

// ObserveCommit feeds AppendLatency (eventlog.Options.OnCommit).
func ObserveCommit(d time.Duration, _ int) { AppendLatency.Observe(d.Seconds()) }

// Handler serves the metrics of c, the append latency and the Go runtime's.
func Handler(c Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, AppendLatency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
