package projections

import (
	"context"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

// The read side needs little of the event log, and says so here: any log
// that scans its records by index (a topic or a run) and keeps the
// projections its hooks write can be projected, the embedded one or a
// replicated one alike.
type (
	// Scanner reads records in order of sequence.
	Scanner interface {
		Scan(idx eventlog.Index, after uint64, fn func(eventlog.Record) error) error
	}
	// Appender records events.
	Appender interface {
		Append(ctx context.Context, recs []eventlog.Record) ([]uint64, error)
	}
	// ProjectionStore reads the projections kept beside the log.
	ProjectionStore interface {
		ReadProjection(key []byte) ([]byte, error)
		ScanProjection(prefix []byte, fn func(key, value []byte) error) error
		HasProjection(prefix []byte) (bool, error)
	}
)

// Reader is a log whose records and projections can both be read: what
// the run lists need, since the runs are indexed by a projection.
type Reader interface {
	Scanner
	ProjectionStore
}
