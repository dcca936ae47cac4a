package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// BackupRun is one backup: what to read, with what settings, into which
// storage.
type BackupRun struct {
	Source pipeline.Source
	// SourceName is the source's identity (domain.SourceIdentity): what is
	// stored, the sync state and the quarantine are kept per source.
	SourceName string
	Config     pipeline.Config
	// Storage is the storage to back up into; nil: DefaultStorage. A
	// directory given without a key gets an unencrypted storage when it
	// has none yet.
	Storage *StorageRef
	// Watch, when set, is called as the run starts with its live report;
	// the stop it returns is called when the run ends (progress displays).
	Watch func(live func() *projections.Report) (stop func())
	// Clock is the pipeline's time; nil: the wall clock.
	Clock pipeline.Clock
}

// RunEnded hears of every backup run that ended, for what is written or
// sent about it outside the log (the run's CSV file, alert mail).
// interrupted: the run was stopped and the next continues it.
type RunEnded interface {
	RunEnded(ctx context.Context, rep *projections.Report, interrupted bool)
}

// NotFinished is a backup or restore run that ended before its work was
// done: interrupted (the next run continues where it stopped) or failed.
type NotFinished struct {
	Run string
	// Why: the run's own errors, when it ended on its own.
	Why []string
	Err error
}

// Interrupted says the run was stopped rather than failed.
func (e *NotFinished) Interrupted() bool {
	return errors.Is(e.Err, pipeline.ErrInterrupted) || errors.Is(e.Err, context.Canceled)
}

func (e *NotFinished) Error() string {
	restore := strings.HasPrefix(e.Run, "restore-")
	switch {
	case restore && e.Interrupted():
		return fmt.Sprintf("restore %s interrupted; run the same command again to continue", e.Run)
	case restore:
		return fmt.Sprintf("restore %s not finished: %v; run the same command again to continue", e.Run, e.Err)
	case e.Interrupted():
		return fmt.Sprintf("run %s interrupted; the next run continues where it stopped", e.Run)
	case e.Err != nil:
		return fmt.Sprintf("run %s not finished: %v", e.Run, e.Err)
	}
	return fmt.Sprintf("run %s not finished: %s", e.Run, strings.Join(append(e.Why, "see 'mailvault report "+e.Run+"'"), "; "))
}

func (e *NotFinished) Unwrap() error { return e.Err }

// Backup runs one backup and returns its report, whose State says how it
// ended: finished, or finished with warnings. A run that did not finish
// returns its report and a *NotFinished.
func (s *Service) Backup(ctx context.Context, in BackupRun) (*projections.Report, error) {
	ref := vault.Ref{Dir: s.DefaultStorage, Create: true}
	if in.Storage != nil {
		r, err := s.resolve(*in.Storage)
		if err != nil {
			return nil, err
		}
		r.Create = r.Password == nil && r.RecoveryKey == ""
		ref = r
	}
	store, err := s.open(ref)
	if err != nil {
		return nil, err
	}
	defer s.Vaults.Release(store)
	// What other writers of an object storage (cluster workers) stored
	// since it was opened: the storage, not the log, says what is stored.
	if _, err := store.Refresh(); err != nil {
		return nil, err
	}
	clock := in.Clock
	if clock == nil {
		clock = pipeline.WallClock{}
	}
	cfg := in.Config
	if cfg.Run == "" {
		cfg.Run = NewRunID(clock.Now())
	}
	cfg.SourceName = in.SourceName
	// What is stored, each folder's cursor and change-tracking state, and
	// the quarantine belong to this storage and this source.
	cfg.StorageID = store.ID()
	cfg.Scope = projections.Scope(store.ID(), store.Generation(), in.SourceName)

	live := projections.NewReport(cfg.Run)
	var liveMu sync.Mutex
	stopObserving := s.Log.Observe(func(recs []eventlog.Record) {
		liveMu.Lock()
		defer liveMu.Unlock()
		for _, rec := range recs {
			if rec.Metadata[eventlog.MetaRun] != cfg.Run {
				continue
			}
			if ev, err := projections.Decode(rec); err == nil {
				live.Apply(&ev)
			}
		}
	})
	defer stopObserving()
	snapshot := func() *projections.Report {
		liveMu.Lock()
		defer liveMu.Unlock()
		return live.Live()
	}
	stopWatching := func() {}
	if in.Watch != nil {
		stopWatching = in.Watch(snapshot)
	}
	pub, sub := s.Log.Transport()
	deps := pipeline.Deps{Publisher: pub, Subscriber: sub, Source: in.Source, Storage: store,
		Resume: projections.Resume{Log: s.Log, Scope: cfg.Scope}, Dedup: s.Log, Clock: clock, Log: s.Logger}
	s.Running.add(cfg.Run)
	state, runErr := pipeline.Run(ctx, deps, cfg)
	s.Running.remove(cfg.Run)
	stopWatching()

	rep := snapshot()
	if s.Reporter != nil {
		s.Reporter.RunEnded(ctx, rep, errors.Is(runErr, pipeline.ErrInterrupted))
	}
	switch {
	case runErr != nil:
		return rep, &NotFinished{Run: cfg.Run, Err: runErr}
	case state == domain.StateNotFinished:
		return rep, &NotFinished{Run: cfg.Run, Why: rep.Errors}
	}
	rep.State = state
	return rep, nil
}

// RunJobCycle runs one cycle of a backup job: its connection and storage
// as configured, its selection and filters.
func (s *Service) RunJobCycle(ctx context.Context, name string, job domain.Job, run string) (*projections.Report, error) {
	srv, spec, err := s.openServer(ctx, job.Connection, Scope{Mailboxes: job.Mailboxes, PublicFolders: job.PublicFolders, Archives: job.Archives})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	cfg := pipeline.DefaultConfig()
	srv.Limit(&cfg)
	if s.AppShare != nil {
		shareAppLimits(&cfg.Limits, s.AppShare(ctx))
	}
	cfg.Job, cfg.TimeFilter, cfg.FolderFilter, cfg.ExcludeMailboxes, cfg.Run = name, job.TimeFilter, job.FolderFilter, job.ExcludeMailboxes, run
	return s.Backup(ctx, BackupRun{Source: srv.Source(), SourceName: spec.Identity(), Config: cfg, Storage: &StorageRef{Storage: job.Storage}})
}

// JobMailboxes lists the mailboxes a cycle of the job covers: those it
// names, or every mailbox of its connection less the excluded ones (a
// cluster's coordinator makes one task of each).
func (s *Service) JobMailboxes(ctx context.Context, job domain.Job) ([]string, error) {
	if !job.AllMailboxes {
		return job.Mailboxes, nil
	}
	srv, _, err := s.openServer(ctx, job.Connection, Scope{}) // archives go with their mailbox's task
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	all, err := srv.Source().Mailboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the mailboxes of connection %s: %w", job.Connection, err)
	}
	skip := map[string]bool{}
	for _, m := range job.ExcludeMailboxes {
		skip[strings.ToLower(m)] = true
	}
	var out []string
	for _, m := range all {
		if !skip[strings.ToLower(m)] {
			out = append(out, m)
		}
	}
	return out, nil
}

// shareAppLimits gives one of parts runs its share of the tenant-wide
// (per-app) limits: runs on several workers at once must stay under them
// together. Each share is at least one request.
func shareAppLimits(l *domain.Limits, parts int) {
	if parts <= 1 {
		return
	}
	if l.AppMaxInFlight > 0 {
		l.AppMaxInFlight = max(1, l.AppMaxInFlight/parts)
	}
	if l.AppWindowRequests > 0 {
		l.AppWindowRequests = max(1, l.AppWindowRequests/parts)
	}
}
