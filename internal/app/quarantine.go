package app

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// jobScope is the backup a job makes: its storage (and the storage's
// index generation) and its connection's server.
func (s *Service) jobScope(ctx context.Context, job string) (string, error) {
	spec, err := s.JobSpec(ctx, job)
	if err != nil {
		return "", err
	}
	conn, _, err := s.OpenConnection(spec.Connection)
	if err != nil {
		return "", err
	}
	var scope string
	err = s.withStorage(StorageRef{Storage: spec.Storage}, vault.ModeRead, func(v *vault.Vault) error {
		scope = projections.Scope(v.ID(), v.Generation(), conn.Identity())
		return nil
	})
	return scope, err
}

// JobQuarantine lists the items a job's backups leave out as dirty, by
// mailbox, folder and position.
func (s *Service) JobQuarantine(ctx context.Context, job string) ([]domain.QuarantineRecord, error) {
	scope, err := s.jobScope(ctx, job)
	if err != nil {
		return nil, err
	}
	return s.quarantineOf(scope)
}

// quarantineOf lists what is quarantined in a backup's scope.
func (s *Service) quarantineOf(scope string) ([]domain.QuarantineRecord, error) {
	all, err := projections.Resume{Log: s.Log}.Quarantine()
	if err != nil {
		return nil, err
	}
	items := projections.ItemScope(scope)
	var out []domain.QuarantineRecord
	for _, q := range all {
		if q.Scope == items {
			out = append(out, q)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Mailbox != b.Mailbox {
			return a.Mailbox < b.Mailbox
		}
		if a.Folder != b.Folder {
			return a.Folder < b.Folder
		}
		return a.Position < b.Position
	})
	return out, nil
}

// QuarantinedItem names one quarantined item.
type QuarantinedItem struct {
	Mailbox  string `json:"mailbox"`
	FolderID string `json:"folder_id"`
	ItemID   string `json:"item_id"`
}

// Retried says what RetryQuarantined did.
type Retried struct {
	Items int `json:"items"`
	// Started: the job was stopped and has started; Waiting: it is
	// started and takes the retry at its next cycle. Neither: no daemon
	// runs (the job's next run, whoever starts it, takes it).
	Started bool `json:"started,omitempty"`
	Waiting bool `json:"waiting,omitempty"`
}

// RetryQuarantined asks the job's next run to try these of its quarantined
// items again (all of them when items is empty), whether or not the server
// reports them changed: an item repaired on the server keeps its change
// key, so change tracking never lists it again. Each item's folder is
// listed in full by its next pass (list requests only: what is stored is
// not fetched again). In the daemon, a stopped job is started.
func (s *Service) RetryQuarantined(ctx context.Context, job string, items []QuarantinedItem) (Retried, error) {
	n, err := s.requestRetry(ctx, job, items)
	if err != nil || n == 0 || s.Jobs == nil {
		return Retried{Items: n}, err
	}
	if s.busy(job) {
		return Retried{Items: n, Waiting: true}, nil
	}
	return Retried{Items: n, Started: true}, s.startStop(ctx, job, true)
}

func (s *Service) requestRetry(ctx context.Context, job string, items []QuarantinedItem) (int, error) {
	scope, err := s.jobScope(ctx, job)
	if err != nil {
		return 0, err
	}
	held, err := s.quarantineOf(scope)
	if err != nil {
		return 0, err
	}
	wanted := map[QuarantinedItem]bool{}
	for _, it := range items {
		wanted[it] = true
	}
	type folderKey struct{ mailbox, folderID string }
	byFolder := map[folderKey][]domain.ItemRef{}
	var order []folderKey
	n := 0
	for _, q := range held {
		if len(items) > 0 && !wanted[QuarantinedItem{q.Mailbox, q.FolderID, q.ItemID}] {
			continue
		}
		k := folderKey{q.Mailbox, q.FolderID}
		if _, ok := byFolder[k]; !ok {
			order = append(order, k)
		}
		byFolder[k] = append(byFolder[k], domain.ItemRef{ID: q.ItemID, Position: q.Position})
		n++
	}
	if n < len(items) {
		return 0, Invalid("%d of the %d items are not quarantined by job %s (released meanwhile?)", len(items)-n, len(items), job)
	}
	now := s.now().UTC()
	// The request is a run of its own in the log (mailvault replay RUN
	// shows it), as prunes and repairs are.
	run := "retry-" + NewRunID(now)
	var evs []domain.Event
	for _, k := range order {
		ids := make([]string, 0, len(byFolder[k]))
		for _, it := range byFolder[k] {
			ids = append(ids, it.ID)
		}
		evs = append(evs, domain.Event{Type: domain.QuarantineRetryRequested, Run: run, Time: now, Scope: scope, Mailbox: k.mailbox, FolderID: k.folderID,
			Items: byFolder[k], Reason: "asked by " + s.actor(), ID: domain.DeriveID("retry", scope, k.mailbox, k.folderID, strings.Join(ids, ","), now.Format(time.RFC3339Nano))})
	}
	if len(evs) == 0 {
		return 0, nil
	}
	if err := projections.RecordOps(ctx, s.Log, evs...); err != nil {
		return 0, fmt.Errorf("record the retry: %w", err)
	}
	return n, nil
}

func (s *Service) actor() string {
	if s.Actor == "" {
		return "an administrator"
	}
	return s.Actor
}

// Say is what a retry did, in a sentence.
func (r Retried) Say() string {
	switch {
	case r.Items == 0:
		return "Nothing is quarantined: nothing to retry."
	case r.Started:
		return fmt.Sprintf("%d quarantined items will be tried again: the job started.", r.Items)
	case r.Waiting:
		return fmt.Sprintf("%d quarantined items will be tried again at the job's next cycle.", r.Items)
	}
	return fmt.Sprintf("%d quarantined items will be tried again at the job's next run.", r.Items)
}
