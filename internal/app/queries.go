package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// The read side: what happened, rebuilt from the log alone.

// Runs lists the backup runs and the restores, oldest first.
func (s *Service) Runs(_ context.Context) ([]projections.RunSummary, []*projections.RestoreReport, error) {
	runs, err := projections.ListRuns(s.Log)
	if err != nil {
		return nil, nil, err
	}
	s.Running.mark(runs)
	restores, err := projections.ListRestores(s.Log)
	return runs, restores, err
}

// isRestore says a run id names a restore, which is addressed by its full
// id ("last" means the last backup run).
func isRestore(run string) bool { return strings.HasPrefix(run, "restore-") }

// Report rebuilds a backup run's report ("last": the newest run).
func (s *Service) Report(_ context.Context, run string) (*projections.Report, error) {
	run, err := projections.ResolveRun(s.Log, run)
	if err != nil {
		return nil, err
	}
	rep, err := projections.BuildReport(s.Log, run)
	if err == nil && s.Running.has(run) {
		rep = rep.Live()
	}
	return rep, err
}

// RestoreReport rebuilds a restore's report.
func (s *Service) RestoreReport(_ context.Context, run string) (*projections.RestoreReport, error) {
	r, found, err := projections.LoadRestore(s.Log, run)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("no restore run %s in this data directory", run)
	}
	return r, nil
}

// RunCSV writes a run's CSV log: one row per request and outcome.
func (s *Service) RunCSV(_ context.Context, run string, w io.Writer) error {
	return projections.WriteRunCSV(w, s.Log, run)
}

// Replay calls fn with every event of a run, in the order they happened
// (a backup run, "last", or a restore by its full id).
func (s *Service) Replay(_ context.Context, run string, fn func(*domain.Event) error) error {
	if !isRestore(run) {
		var err error
		if run, err = projections.ResolveRun(s.Log, run); err != nil {
			return err
		}
	}
	return projections.ScanRun(s.Log, run, fn)
}

// Quarantine lists the items backups leave out as dirty, in every storage
// and from every source.
func (s *Service) Quarantine(_ context.Context) ([]domain.QuarantineRecord, error) {
	return projections.Resume{Log: s.Log}.Quarantine()
}
