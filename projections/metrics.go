package projections

import (
	"sort"
	"strings"
	"sync"

	"github.com/mailvault/mailvault/domain"
)

// Metrics is the fold behind /metrics: every run's report (so the counters
// are the reports' sums, and match them), plus what the reports do not
// break down: requests by source, outcome and mailbox class, and the
// throttling waits the server asked for. It is safe for concurrent use.
type Metrics struct {
	mu       sync.Mutex
	reports  map[string]*Report
	order    []string
	source   map[string]string // run -> source kind (graph, ews, sim)
	requests map[RequestKey]int
	waits    map[string]float64 // source -> seconds of Retry-After
	restored int
	failed   int
}

// RequestKey labels a request count.
type RequestKey struct {
	Source, Request, Outcome, MailboxClass string
}

// NewMetrics starts an empty fold.
func NewMetrics() *Metrics {
	return &Metrics{reports: map[string]*Report{}, source: map[string]string{}, requests: map[RequestKey]int{}, waits: map[string]float64{}}
}

// mailboxClass tells user mailboxes from the public folder tree.
func mailboxClass(mailbox string) string {
	if mailbox == "Public Folders" {
		return "public_folders"
	}
	return "user"
}

// Apply folds one event of any run (backups and restores).
func (m *Metrics) Apply(ev *domain.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Type {
	case domain.ItemRestored:
		if ev.Outcome == "created" || ev.Outcome == "replaced" || ev.Outcome == "copied" {
			m.restored++
		}
		return
	case domain.RestoreFailed:
		m.failed++
		return
	case domain.RestoreStarted, domain.RestoreFinished:
		return
	}
	if ev.Run == "" {
		return
	}
	r, ok := m.reports[ev.Run]
	if !ok {
		r = NewReport(ev.Run)
		m.reports[ev.Run] = r
		m.order = append(m.order, ev.Run)
	}
	if ev.Type == domain.RunStarted && ev.Config != nil {
		kind, _, _ := strings.Cut(ev.Config.Source, ":")
		m.source[ev.Run] = kind
	}
	r.Apply(ev)
	switch ev.Type {
	case domain.ItemsListed, domain.BatchFetched, domain.BatchFailed, domain.Throttled:
		if ev.Code == domain.CodePaceHold {
			break // held by the pace: never sent
		}
		request := ev.Request
		if ev.Type == domain.ItemsListed {
			request = domain.RequestList
		}
		if request == "" {
			request = domain.RequestFetch
		}
		src := m.source[ev.Run]
		m.requests[RequestKey{src, request, requestOutcome(ev), mailboxClass(ev.Mailbox)}]++
		if ev.Type == domain.Throttled {
			m.waits[src] += float64(ev.RetryAfterMS) / 1000
		}
	}
}

// MetricsSnapshot is what /metrics shows at one moment.
type MetricsSnapshot struct {
	Requests                                      map[RequestKey]int
	ThrottleWaitS                                 map[string]float64
	ItemsStored, ItemsUnchanged, ItemsQuarantined int
	ItemsRestored, RestoreFailures                int
	BytesStored, BytesWritten                     int64
	StallSourceS, StallTargetS                    float64
	RunsByState                                   map[string]int
}

// Snapshot sums the reports.
func (m *Metrics) Snapshot() MetricsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := MetricsSnapshot{Requests: map[RequestKey]int{}, ThrottleWaitS: map[string]float64{}, RunsByState: map[string]int{},
		ItemsRestored: m.restored, RestoreFailures: m.failed}
	for k, v := range m.requests {
		s.Requests[k] = v
	}
	for k, v := range m.waits {
		s.ThrottleWaitS[k] = v
	}
	for _, run := range m.order {
		r := *m.reports[run]
		r.derive()
		s.ItemsStored += r.ItemsStored
		s.ItemsUnchanged += r.ItemsUnchanged
		s.ItemsQuarantined += r.ItemsQuarantined
		s.BytesStored += r.BytesStored
		s.BytesWritten += r.BytesWritten
		s.StallSourceS += r.StallSourceS
		s.StallTargetS += r.StallTargetS
		s.RunsByState[string(r.State)]++ // a run still going counts as not finished
	}
	return s
}

// SortedRequestKeys lists the keys in a stable order.
func (s MetricsSnapshot) SortedRequestKeys() []RequestKey {
	keys := make([]RequestKey, 0, len(s.Requests))
	for k := range s.Requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return a.Source+a.Request+a.Outcome+a.MailboxClass < b.Source+b.Request+b.Outcome+b.MailboxClass
	})
	return keys
}

// JobHistories is what JobHistories rebuilds from the log, from the
// reports this fold holds already: a daemon reads its log once at start,
// for the metrics and the jobs' history both.
func (m *Metrics) JobHistories() map[string]JobHistory {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]JobHistory{}
	for _, run := range m.order {
		r := *m.reports[run]
		r.derive()
		addToHistory(out, run, &r)
	}
	return out
}

// Report is the live report of one run (nil when the log has none yet).
func (m *Metrics) Report(run string) *Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reports[run]
	if !ok {
		return nil
	}
	c := *r
	c.derive()
	return c.Live()
}
