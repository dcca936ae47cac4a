package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// LogCompactor is a log whose old runs can be reduced to their summaries
// and whose freed space can be given back to the disk.
type LogCompactor interface {
	projections.Compactor
	ReclaimSpace() (before, after int64, err error)
}

// Compacted is what a compaction of the log did.
type Compacted struct {
	projections.CompactedRuns
	Retention string    `json:"retention"`
	Cutoff    time.Time `json:"cutoff"`
	// SizeBefore and SizeAfter are the log's size on disk around the
	// compaction and the space reclaim that follows it.
	SizeBefore int64 `json:"size_before"`
	SizeAfter  int64 `json:"size_after"`
}

// CompactLog removes the per-request and per-item detail of backup runs
// that ended longer ago than keep, then gives the space back to the disk.
// Each run keeps a summary with its counts; quarantine, resume state,
// skipped folders and errors are kept whatever their age. The compaction
// is recorded in the log.
func (s *Service) CompactLog(ctx context.Context, keep domain.Period, now time.Time) (Compacted, error) {
	lg, ok := s.Log.(LogCompactor)
	if !ok {
		return Compacted{}, errors.New("this event log cannot be compacted")
	}
	out := Compacted{Retention: keep.String(), Cutoff: keep.Before(now).UTC()}
	runs, err := projections.CompactLog(ctx, lg, out.Cutoff, out.Retention, now)
	out.CompactedRuns = runs
	if err != nil {
		return out, fmt.Errorf("compact the event log: %w", err)
	}
	if out.Events == 0 {
		return out, nil
	}
	if out.SizeBefore, out.SizeAfter, err = lg.ReclaimSpace(); err != nil {
		return out, err
	}
	run := "compact-" + NewRunID(now)
	err = projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.LogCompacted, ID: domain.DeriveID(run, "compacted"), Run: run, Time: now.UTC(),
		Count: out.Events, Bytes: out.SizeBefore - out.SizeAfter,
		Reason: fmt.Sprintf("%d runs reduced to their summaries, %d finished; per-request detail kept %s", len(out.Runs), len(out.Finished), out.Retention)})
	return out, err
}
