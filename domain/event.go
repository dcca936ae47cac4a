// Package domain holds mailvault's backup rules: events, failure classes,
// dirty-item isolation, folder passes and throttling arithmetic. It does no I/O
// and imports no adapter; time and randomness come in as values.
package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// SchemaVersion is written into every event so that later readers can upgrade
// old histories instead of guessing their shape.
const SchemaVersion = 2

// ErrFutureSchema marks an event written by a newer mailvault: this one
// cannot know what it means, so it reads nothing rather than guess.
var ErrFutureSchema = errors.New("written by a newer mailvault")

// Upgrade brings an event read from the log to the current schema. Events
// of schema 0 (written before the field existed) mean what schema 1 means;
// schema 2 added items_stored (a fetched batch's stored items in one
// compact event; schema 1 has one item_stored per item, still read as it
// was), so a mailvault that reads up to schema 1 refuses a log it would
// undercount. An event of a later schema is ErrFutureSchema. Event types this version
// does not know are kept as they are: projections ignore them.
func Upgrade(ev *Event) error {
	switch {
	case ev.Schema > SchemaVersion:
		return fmt.Errorf("event %s (%s) has schema %d, this mailvault reads up to %d: %w; upgrade mailvault to read this log",
			ev.ID, ev.Type, ev.Schema, SchemaVersion, ErrFutureSchema)
	case ev.Schema == 0:
		ev.Schema = 1
	}
	return nil
}

// EventType names what happened. The string values are part of the log format.
type EventType string

const (
	RunStarted         EventType = "run_started"
	RunFinished        EventType = "run_finished"
	MailboxDiscovered  EventType = "mailbox_discovered"
	FolderDiscovered   EventType = "folder_discovered"
	DiscoveryCompleted EventType = "discovery_completed"
	ListRequested      EventType = "list_requested"
	ItemsListed        EventType = "items_listed"
	BatchRequested     EventType = "batch_requested"
	BatchFetched       EventType = "batch_fetched"
	BatchFailed        EventType = "batch_failed"
	BatchSplit         EventType = "batch_split"
	ItemInferredDirty  EventType = "item_inferred_dirty"
	ItemQuarantined    EventType = "item_quarantined"
	ItemReleased       EventType = "item_released"
	ItemStored         EventType = "item_stored"
	// ItemsStored is what one fetched batch stored: the items in Stored,
	// each what an item_stored event of schema 1 said of one item.
	ItemsStored     EventType = "items_stored"
	Throttled       EventType = "throttled"
	FolderParked    EventType = "folder_parked"
	FolderResumed   EventType = "folder_resumed"
	FolderSkipped   EventType = "folder_skipped"
	FolderCompleted EventType = "folder_completed"
	// ParkExpired is the planner's own wake-up call, written to the log so that a
	// replay shows when a parked folder became eligible again.
	ParkExpired EventType = "park_expired"
	// StopRequested asks the planner to stop at a checkpoint: no new
	// requests; folders still open are skipped with their cursors.
	StopRequested EventType = "stop_requested"
	// StorageSealRequested asks, once the run's work is done, that what
	// the storage holds be made durable where it was asked to be (its
	// open pack sealed and, for object storage, uploaded); StorageSealed
	// answers, failed when it could not: the run then does not finish.
	StorageSealRequested EventType = "storage_seal_requested"
	StorageSealed        EventType = "storage_sealed"
	// ItemRemoved: a change listing reported the item deleted at the source.
	ItemRemoved EventType = "item_removed"
	// ItemGone: the item was deleted at the source while being fetched.
	ItemGone EventType = "item_gone"
	// ListingRestarted: the server discarded the folder's listing state and
	// the pass lists the folder again from the start.
	ListingRestarted EventType = "listing_restarted"
	// QuarantineRetryRequested: an administrator asked that a folder's
	// quarantined items (Items) be tried again at the next run, whether
	// or not the source lists them as changed: they become due, and the
	// folder's next pass lists it in full (Scope says whose backup).
	QuarantineRetryRequested EventType = "quarantine_retry_requested"

	// Storage operations (restore, prune) are runs too, on their own topic.
	RestoreStarted  EventType = "restore_started"
	ItemRestored    EventType = "item_restored"
	RestoreFailed   EventType = "item_restore_failed"
	RestoreFinished EventType = "restore_finished"
	PruneStarted    EventType = "prune_started"
	VersionPruned   EventType = "version_pruned"
	PruneFinished   EventType = "prune_finished"
	// Repairs: a storage made whole again (what it held, what it lost);
	// each version whose content was lost; an event log salvaged.
	RepairStarted  EventType = "repair_started"
	VersionLost    EventType = "version_lost"
	RepairFinished EventType = "repair_finished"
	LogSalvaged    EventType = "log_salvaged"
	// Alerts: a mail about a run (or the daily summary) went out, or not.
	AlertSent   EventType = "alert_sent"
	AlertFailed EventType = "alert_failed"
)

// Outcome values of a request or an item.
const (
	OutcomeSuccess   = "success"
	OutcomeFailed    = "failed"
	OutcomeThrottled = "throttled"
	OutcomeStored    = "stored"
	OutcomeUnchanged = "unchanged"
)

// Request kinds carried by request events and their outcomes.
const (
	RequestFetch = "fetch"
	RequestList  = "list"
)

// ItemRef identifies one item of a folder listing. Positions are 1-based in
// listing order.
type ItemRef struct {
	Position  int    `json:"pos"`
	ID        string `json:"id"`
	ChangeKey string `json:"ck,omitempty"`
	Size      int64  `json:"size,omitempty"`
	// Time is what a time filter ages the item by: when an appointment
	// occurs, when anything else was last modified (zero: unknown).
	Time time.Time `json:"t,omitzero"`
	// Retry marks a quarantined item that is fetched alone to see whether it
	// has become readable.
	Retry bool `json:"retry,omitempty"`
}

// Range is the span of listing positions a batch covers. Count may be smaller
// than Last-First+1 when known-dirty or already-stored items were left out.
type Range struct {
	First int `json:"first"`
	Last  int `json:"last"`
	Count int `json:"count"`
}

// RangeOf describes a batch of consecutive listing items.
func RangeOf(items []ItemRef) Range {
	if len(items) == 0 {
		return Range{}
	}
	return Range{First: items[0].Position, Last: items[len(items)-1].Position, Count: len(items)}
}

// Cursor is where a folder pass continues after an interruption: every item
// before Position has been stored or quarantined in pass Pass. PageToken lists
// the page that contains Position, whose first entry is PageFirst.
type Cursor struct {
	Pass      string `json:"pass"`
	Position  int    `json:"pos"`
	PageToken string `json:"page_token,omitempty"`
	PageFirst int    `json:"page_first"`
}

// Event is one fact in the log. It holds ids, sizes, hashes and outcomes, never
// message contents or secrets.
type Event struct {
	Type      EventType `json:"type"`
	Schema    int       `json:"schema"`
	ID        string    `json:"id"`
	Cause     string    `json:"cause,omitempty"`
	Run       string    `json:"run"`
	Time      time.Time `json:"time"`
	Mailbox   string    `json:"mailbox,omitempty"`
	Folder    string    `json:"folder,omitempty"`
	FolderID  string    `json:"folder_id,omitempty"`
	Kind      string    `json:"kind,omitempty"`
	WellKnown string    `json:"well_known,omitempty"`

	Request string    `json:"request,omitempty"` // fetch | list
	Batch   *Range    `json:"batch,omitempty"`
	Halves  []Range   `json:"halves,omitempty"`
	Items   []ItemRef `json:"items,omitempty"`
	Attempt int       `json:"attempt,omitempty"`

	Pass      string `json:"pass,omitempty"`
	Position  int    `json:"pos,omitempty"`
	ItemID    string `json:"item_id,omitempty"`
	ChangeKey string `json:"ck,omitempty"`
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	// NewBytes is what the storage wrote for the item after compression
	// and deduplication.
	NewBytes int64 `json:"new_bytes,omitempty"`
	// TargetID is the id a restore gave the item in the target mailbox.
	TargetID string `json:"target_id,omitempty"`

	Outcome      string       `json:"outcome,omitempty"`
	Class        FailureClass `json:"class,omitempty"`
	Code         string       `json:"code,omitempty"`
	Message      string       `json:"message,omitempty"`
	RetryAfterMS int64        `json:"retry_after_ms,omitempty"`
	Until        *time.Time   `json:"until,omitempty"`
	Reason       string       `json:"reason,omitempty"`
	Cursor       *Cursor      `json:"cursor,omitempty"`
	// ItemFailures are the items of a fetched batch that failed on their own
	// (one status per item, as in Graph's $batch or EWS's ResponseMessages).
	ItemFailures []ItemFailure `json:"item_failures,omitempty"`
	// Stored are the items of an items_stored event.
	Stored []StoredItem `json:"stored,omitempty"`
	// Removed are item ids a change listing reported deleted.
	Removed []string `json:"removed,omitempty"`
	// SyncToken is where the next pass over a folder lists changes from
	// (Graph's deltaLink, EWS's SyncState); set on the last listing page and
	// on folder_completed.
	SyncToken string `json:"sync_token,omitempty"`
	// KeepToken, on list_requested, says the page token is a sync token
	// young enough to be used again (KeepToken): a listing that finds
	// nothing new answers Unchanged instead of the server's new token.
	KeepToken bool `json:"keep_token,omitempty"`
	// Unchanged, on items_listed and folder_completed, says the folder
	// had nothing new and keeps the sync token it was listed from.
	Unchanged bool `json:"unchanged,omitempty"`
	// Tracked says the listing's change keys are reliable: an item whose
	// change key matches the stored version need not be fetched again.
	Tracked bool `json:"tracked,omitempty"`

	Page      int    `json:"page,omitempty"`
	PageToken string `json:"page_token,omitempty"`
	NextPage  string `json:"next_page,omitempty"`
	Count     int    `json:"count,omitempty"`
	// Requests is the budget units discovery spent: a mailbox's folder
	// tree on mailbox_discovered, the list of mailboxes on
	// discovery_completed (requests, each sub-request of a Graph $batch
	// counted).
	Requests int `json:"requests,omitempty"`
	// Tree is what a source that tracks folder hierarchies reported on
	// mailbox_discovered: the changes since the tree the run started from.
	Tree *FolderChanges `json:"tree,omitempty"`
	// PaceRPS is the pace (budget units per second) a throttle left the
	// mailbox at, or the app at when PaceApp: what the next run starts from.
	PaceRPS float64 `json:"pace_rps,omitempty"`
	PaceApp bool    `json:"pace_app,omitempty"`
	// PaceCostly: the server's back-off was costly (minutes), so the next
	// run approaches the limit from below (domain.LearnedPace).
	PaceCostly bool `json:"pace_costly,omitempty"`
	// PaceWindowMS is the server's window the pace learned (0: none).
	PaceWindowMS int64  `json:"pace_window_ms,omitempty"`
	Bytes        int64  `json:"bytes,omitempty"`
	SourceMS     int64  `json:"source_ms,omitempty"`
	TargetMS     int64  `json:"target_ms,omitempty"`
	State        string `json:"state,omitempty"`

	Config *RunConfig `json:"config,omitempty"`
	// Scope is the backup an event outside a backup run is about (see
	// projections.Scope): quarantine_retry_requested.
	Scope string `json:"scope,omitempty"`
	// Compaction is what a run_compacted event summarises.
	Compaction *Compaction `json:"compaction,omitempty"`
}

// RunConfig is recorded in run_started so that a replay knows the settings
// the run used.
type RunConfig struct {
	Source string `json:"source"`
	// Storage is the id of the storage the run writes to, and Scope the
	// state it resumes from (storage, index generation, source).
	Storage           string `json:"storage,omitempty"`
	Scope             string `json:"scope,omitempty"`
	Job               string `json:"job,omitempty"`
	BatchSize         int    `json:"batch_size"`
	ThrottlePatienceS int64  `json:"throttle_patience_s"`
	QuarantineRetryS  int64  `json:"quarantine_retry_s"`
	MaxInFlight       int    `json:"max_in_flight"`
	WindowRequests    int    `json:"window_requests"`
	WindowS           int64  `json:"window_s"`
	// Pace: requests were held to the pace the server grants.
	Pace bool `json:"pace,omitempty"`
}

// DeriveID returns a deterministic event id from the facts that caused the
// event, so that re-processing the same cause after a crash yields the same id
// and the log can drop the duplicate.
func DeriveID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// StoredItemID is the id of the item_stored event for one version of one item
// in one folder pass. It does not depend on the request or the run, so an item
// fetched twice within a pass (after a crash, or a retried batch) is recorded
// once.
func StoredItemID(pass, mailbox, folderID, itemID, changeKey string) string {
	return DeriveID("stored", pass, mailbox, folderID, itemID, changeKey)
}

// StoredItem is one item of an items_stored event: its position, ids,
// size, hash and what the storage wrote for it. Names are short: a backup
// writes one per item, and the log keeps them.
type StoredItem struct {
	Position  int    `json:"p,omitempty"`
	ItemID    string `json:"i"`
	ChangeKey string `json:"k,omitempty"`
	Size      int64  `json:"s,omitempty"`
	SHA256    string `json:"h,omitempty"`
	NewBytes  int64  `json:"n,omitempty"`
	// Unchanged: the storage and the log had this version already.
	Unchanged bool `json:"u,omitempty"`
}

// Outcome is the item's outcome as an item_stored event of schema 1 had it.
func (it StoredItem) Outcome() string {
	if it.Unchanged {
		return OutcomeUnchanged
	}
	return OutcomeStored
}

// Folder is a folder as a source reports it.
type Folder struct {
	ID   string
	Path string
	Kind string
	// WellKnown is the server's well-known name (inbox, sentitems,
	// deleteditems...), empty for a user's own folders.
	WellKnown string
}

// Page is one page of a folder listing. Next is "" on the last page.
type Page struct {
	Items []ItemRef
	Next  string
	// Removed lists ids a change listing reports deleted at the source.
	Removed []string
	// SyncToken, on the last page of a change-tracking source, lists the
	// changes after this listing in the next pass.
	SyncToken string
	// Tracked: change keys change whenever an item does, so a stored item
	// with the listed change key is not fetched again.
	Tracked bool
}

// ItemFailure is one item of a batch that failed on its own.
type ItemFailure struct {
	Item         ItemRef      `json:"item"`
	Class        FailureClass `json:"class"`
	Code         string       `json:"code,omitempty"`
	Message      string       `json:"message,omitempty"`
	RetryAfterMS int64        `json:"retry_after_ms,omitempty"`
}

// Item is one fetched item with its content, handed from source to storage
// without being held longer than that.
type Item struct {
	Ref     ItemRef
	Content []byte
	// Format is how Content is encoded (FormatMIME...); empty means MIME.
	Format string
	// Failure, when set, says this item failed on its own inside a request
	// that otherwise succeeded; Content is empty.
	Failure *Failure
}
