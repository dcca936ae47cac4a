package main

import (
	"sync"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// metricsFeed keeps the metrics projection current: a scan of the whole
// log at start, then every commit as it happens. Commits that arrive while
// the scan runs wait in pending; sequence numbers keep each record counted
// once.
type metricsFeed struct {
	mu      sync.Mutex
	m       *projections.Metrics
	last    uint64
	ready   bool
	pending []eventlog.Record
}

func startMetrics(lg *eventlog.Log) (*projections.Metrics, func(), error) {
	f := &metricsFeed{m: projections.NewMetrics()}
	stop := lg.Observe(f.observe)
	err := lg.Scan(eventlog.All(), 0, func(rec eventlog.Record) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.apply(rec)
		return nil
	})
	if err != nil {
		stop()
		return nil, nil, err
	}
	f.mu.Lock()
	for _, rec := range f.pending {
		f.apply(rec)
	}
	f.pending, f.ready = nil, true
	f.mu.Unlock()
	return f.m, stop, nil
}

func (f *metricsFeed) observe(recs []eventlog.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		f.pending = append(f.pending, recs...)
		return
	}
	for _, rec := range recs {
		f.apply(rec)
	}
}

func (f *metricsFeed) apply(rec eventlog.Record) {
	if rec.Seq <= f.last {
		return
	}
	f.last = rec.Seq
	if rec.Topic == domain.TopicConfig {
		return
	}
	if ev, err := projections.Decode(rec); err == nil {
		f.m.Apply(&ev)
	}
}
