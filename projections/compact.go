package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
)

// Compactor is the log as compaction needs it: read a run, find its span
// and last record, and replace its detail by a summary.
type Compactor interface {
	Reader
	Get(seq uint64) (eventlog.Record, error)
	RunSpan(run string) (first, last uint64, err error)
	RunCompaction(run string) (summary uint64, done, found bool, err error)
	CompactRun(ctx context.Context, run string, seqs []uint64, summary *eventlog.Record) error
}

// CompactedRuns is what a compaction of the log did.
type CompactedRuns struct {
	// Runs were reduced to their summary now; Finished are runs a
	// compaction cut short had left with detail, now removed.
	Runs     []string `json:"runs"`
	Finished []string `json:"finished"`
	// Events is how many events were removed.
	Events int `json:"events"`
	// Kept are runs inside the retention period, left whole.
	Kept int `json:"kept"`
}

// CompactLog removes the per-request and per-item detail of every backup
// run whose last event is older than cutoff, keeping for each a summary
// with its counts (see domain.IsRunDetail for what goes and what stays).
// A run that has not finished is left alone until it has been silent for a
// day, whatever the cutoff.
// Runs already compacted are left as they are; a compaction that was cut
// short is finished. retention is the wording the summaries record.
func CompactLog(ctx context.Context, lg Compactor, cutoff time.Time, retention string, now time.Time) (CompactedRuns, error) {
	out := CompactedRuns{Runs: []string{}, Finished: []string{}}
	ids, err := Resume{Log: lg}.RunIDs()
	if err != nil {
		return out, err
	}
	for _, run := range ids {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		sumSeq, done, found, err := lg.RunCompaction(run)
		if err != nil {
			return out, err
		}
		if found && done {
			continue
		}
		if !found {
			old, err := lastEventBefore(lg, run, cutoff, now)
			if err != nil {
				return out, fmt.Errorf("run %s: %w", run, err)
			}
			if !old {
				out.Kept++
				continue
			}
		}
		n, err := compactRun(ctx, lg, run, found, sumSeq, retention, now)
		if err != nil {
			return out, fmt.Errorf("compact run %s: %w", run, err)
		}
		out.Events += n
		if found {
			out.Finished = append(out.Finished, run)
		} else if n > 0 {
			out.Runs = append(out.Runs, run)
		}
	}
	return out, nil
}

// unfinishedGrace is how long a run without its end must have been silent
// before it counts as over: it may be running now, in a daemon that holds
// the log, and its detail is what its own report is being folded from.
const unfinishedGrace = 24 * time.Hour

// lastEventBefore tells whether run is over and its newest event is older
// than cutoff.
func lastEventBefore(lg Compactor, run string, cutoff, now time.Time) (bool, error) {
	_, last, err := lg.RunSpan(run)
	if err != nil || last == 0 {
		return false, err
	}
	rec, err := lg.Get(last)
	if err != nil {
		return false, err
	}
	ev, err := Decode(rec)
	if err != nil {
		return false, err
	}
	if ev.Type != domain.RunFinished {
		cutoff = minTime(cutoff, now.Add(-unfinishedGrace))
	}
	return ev.Time.Before(cutoff), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// compactRun folds the run's detail into a summary and hands both to the
// log; for a run compacted before (resumed) it only removes what is left.
func compactRun(ctx context.Context, lg Compactor, run string, resumed bool, sumSeq uint64, retention string, now time.Time) (int, error) {
	var seqs []uint64
	detail := NewReport(run)
	c := &domain.Compaction{At: now.UTC(), Retention: retention, ByType: map[string]int{}}
	var topic string
	err := lg.Scan(eventlog.Run(run), 0, func(rec eventlog.Record) error {
		if resumed && rec.Seq == sumSeq {
			return nil
		}
		ev, err := Decode(rec)
		if err != nil {
			return err
		}
		if !domain.IsRunDetail(&ev) {
			return nil
		}
		if len(seqs) == 0 {
			c.First, topic = ev.Time, rec.Topic
		}
		seqs = append(seqs, rec.Seq)
		if ev.Time.After(c.Last) {
			c.Last = ev.Time
		}
		c.Events++
		c.ByType[string(ev.Type)]++
		detail.Apply(&ev)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if resumed {
		// Even with nothing left, this marks the compaction finished.
		return len(seqs), lg.CompactRun(ctx, run, seqs, nil)
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	c.Counts = detail.RunCounts
	c.StallSourceMS, c.StallTargetMS = detail.stallSource.Milliseconds(), detail.stallTarget.Milliseconds()
	c.CurrentMailbox, c.CurrentFolder = detail.CurrentMailbox, detail.CurrentFolder
	ev := domain.Event{Type: domain.RunCompacted, Schema: domain.SchemaVersion, ID: domain.DeriveID("compacted", run),
		Run: run, Time: c.Last, Compaction: c}
	payload, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	summary := &eventlog.Record{Topic: topic, UUID: ev.ID, Payload: payload,
		Metadata: map[string]string{eventlog.MetaRun: run, eventlog.MetaType: string(ev.Type)}}
	if err := lg.CompactRun(ctx, run, seqs, summary); err != nil {
		return 0, err
	}
	return len(seqs), nil
}
