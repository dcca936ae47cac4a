// Package pipeline runs a backup as an event-sourced pipeline of watermill
// handlers: the fetcher turns request events into server requests and their
// outcomes, the planner turns outcomes into the next requests (isolation,
// throttling, resume). Both only see watermill Publishers and Subscribers, so
// the transport (the Badger log today, NATS JetStream later) can change
// without touching them.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// Source is the mailbox server as the pipeline needs it.
type Source interface {
	Mailboxes(ctx context.Context) ([]string, error)
	Folders(ctx context.Context, mailbox string) ([]domain.Folder, error)
	List(ctx context.Context, mailbox, folderID, pageToken string) (domain.Page, error)
	// Fetch requests items in one request and hands each delivered item to
	// deliver as it arrives; a failure is a *domain.Failure.
	Fetch(ctx context.Context, mailbox, folderID string, items []domain.ItemRef, deliver func(domain.Item) error) error
}

// WellKnownNamer is a source whose folders' well-known names (inbox,
// deleteditems, ...) cost requests of their own: discovery asks for them
// only when a folder filter needs them. It maps folder ids to names.
type WellKnownNamer interface {
	WellKnown(ctx context.Context, mailbox string) (map[string]string, error)
}

// FolderTracker is a source that reports a mailbox's folder hierarchy as
// the changes since the tree it last reported (Graph's mailbox folder
// delta): discovering an unchanged mailbox costs one request instead of a
// walk of its tree. prev is that tree with its token (the zero tree for a
// first discovery); the source keeps what it needs of it (folder kinds).
// It returns ErrFolderTrackingUnavailable, wrapped, when it cannot track
// this mailbox (a permission missing): discovery then reads the tree with
// Folders.
type FolderTracker interface {
	FolderChanges(ctx context.Context, mailbox string, prev domain.FolderTree) (domain.FolderChanges, error)
}

// ErrFolderTrackingUnavailable: see FolderTracker.
var ErrFolderTrackingUnavailable = errors.New("the source cannot track this mailbox's folder hierarchy")

// FolderTrees is the resume state's side of FolderTracker: each mailbox's
// folder tree as last discovered in the run's scope.
type FolderTrees interface {
	FolderTree(mailbox string) (domain.FolderTree, bool, error)
}

// Storage is the backup target.
type Storage interface {
	Put(key domain.ItemKey, content []byte) (domain.PutResult, error)
}

// BatchStorage stores the items of one fetched batch in one commit. A
// Storage that has it is given whole batches; results are in the order of
// keys, and an error means none of the batch may be counted as stored.
type BatchStorage interface {
	PutBatch(keys []domain.ItemKey, contents [][]byte) ([]domain.PutResult, error)
}

// Sealer is implemented by storages that hold written data somewhere
// other than where it was asked to go until sealed (a pack being written
// locally for object storage): a run finishes only after Seal succeeds.
type Sealer interface {
	Seal() error
}

// DeletionRecorder is implemented by storages that keep items after the
// source deletes them and count their retention from the deletion.
type DeletionRecorder interface {
	MarkDeleted(key domain.ItemKey, at time.Time) error
}

// VersionChecker is implemented by storages that can say whether they hold
// a version: they, not the log, are the truth of what is backed up (a
// new or repaired storage holds less than the log has seen stored).
type VersionChecker interface {
	Has(key domain.ItemKey) (bool, error)
}

// ResumeIndex is what the pipeline reads of earlier runs.
type ResumeIndex interface {
	Stored(mailbox, folderID, itemID string) (domain.StoredVersion, bool, error)
	Quarantined(mailbox, folderID, itemID string) (domain.QuarantineRecord, bool, error)
	Cursor(mailbox, folderID string) (domain.Cursor, bool, error)
	// SyncToken is where a completed folder's next pass lists changes
	// from, and when the source handed it out.
	SyncToken(mailbox, folderID string) (domain.SyncState, bool, error)
}

// Relister is implemented by resume indexes that keep requests to list a
// folder in full at its next pass (a retry of its quarantined items).
type Relister interface {
	Relist(mailbox, folderID string) (bool, error)
}

// FolderHoldings is implemented by resume indexes that can say at once
// whether a folder holds anything stored or quarantined: a folder that
// holds neither (its first pass) needs no lookup per listed item, so what
// a first backup costs per item does not grow with what other folders and
// mailboxes have stored.
type FolderHoldings interface {
	FolderHolds(mailbox, folderID string) (stored, quarantined bool, err error)
}

// storageConfirmed is a resume index whose stored versions count only if
// the storage holds them.
type storageConfirmed struct {
	ResumeIndex
	storage VersionChecker
	source  string
}

func (s storageConfirmed) Stored(mailbox, folderID, itemID string) (domain.StoredVersion, bool, error) {
	v, ok, err := s.ResumeIndex.Stored(mailbox, folderID, itemID)
	if err != nil || !ok {
		return v, ok, err
	}
	has, err := s.storage.Has(domain.ItemKey{Source: s.source, Mailbox: mailbox, FolderID: folderID, ItemID: itemID, ChangeKey: v.ChangeKey})
	if err != nil {
		return v, false, fmt.Errorf("ask the storage: %w", err)
	}
	return v, has, nil
}

// FolderHolds passes the question on; without an answer, a folder may
// hold anything.
func (s storageConfirmed) FolderHolds(mailbox, folderID string) (bool, bool, error) {
	if h, ok := s.ResumeIndex.(FolderHoldings); ok {
		return h.FolderHolds(mailbox, folderID)
	}
	return true, true, nil
}

// Relist passes the question on; without an answer, nothing was asked.
func (s storageConfirmed) Relist(mailbox, folderID string) (bool, error) {
	if r, ok := s.ResumeIndex.(Relister); ok {
		return r.Relist(mailbox, folderID)
	}
	return false, nil
}

// CostModel is implemented by sources whose requests do not all cost one
// unit of the server's budget.
type CostModel interface {
	RequestCost(request, kind string, items int) domain.RequestCost
}

// Pipelining is implemented by sources that serve several requests of one
// folder at once well: Graph's exportItems costs one request per 20 items,
// so a single big folder would leave most of the budget unused if its
// batches went one at a time.
type Pipelining interface {
	FolderParallelism() int
}

// BatchLimit is implemented by sources that take at most MaxBatch items per
// fetch request (Graph's $batch and exportItems take 20).
type BatchLimit interface {
	MaxBatch() int
}

// Dedup tells whether an event id is already in a topic, so that a stage
// re-processing a message after a crash does not repeat a server request.
type Dedup interface {
	Has(topic, id string) (bool, error)
}

// Clock is the pipeline's time; tests inject a fake one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// WallClock is the real clock.
type WallClock struct{}

// Now implements Clock.
func (WallClock) Now() time.Time { return time.Now() }

// AfterFunc implements Clock.
func (WallClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
