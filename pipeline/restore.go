package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mailvault/mailvault/domain"
)

// RestoreTarget is a mailbox server as a restore needs it.
type RestoreTarget interface {
	// EnsureFolder returns the id of the folder at path (levels separated
	// by "/") in mailbox, creating missing levels; created says the folder
	// itself was made by this call (it holds nothing yet).
	EnsureFolder(ctx context.Context, mailbox, path, kind string) (id string, created bool, err error)
	// Lookup finds an item in the folder by the keys of what is restored:
	// the mark a restore sets on what it creates, or the item's own
	// Message-ID or iCalendar UID.
	Lookup(ctx context.Context, mailbox, folderID string, it RestoreItem) (id string, found bool, err error)
	// Create makes the item and says what of it could not be preserved.
	Create(ctx context.Context, mailbox, folderID string, it RestoreItem) (CreateResult, error)
	// Delete removes an item (restore with --collisions replace).
	Delete(ctx context.Context, mailbox, folderID, itemID string, kind string) error
}

// RestoreItem is one stored version to restore.
type RestoreItem struct {
	VersionID string // the storage's id: marks the created item
	Mailbox   string // where it was backed up from
	Folder    string
	ItemID    string
	Kind      string
	Format    string
	Content   []byte
}

// CreateResult is what the target made of an item.
type CreateResult struct {
	ID string
	// NotPreserved names properties the target could not keep ("iCalUId:
	// Graph assigns its own"), for the restore report.
	NotPreserved []string
}

// Collision policies: what happens to an item already in the target.
const (
	CollisionSkip    = "skip"
	CollisionReplace = "replace"
	CollisionCopy    = "copy"
)

// RestoreConfig is one restore run.
type RestoreConfig struct {
	Run           string
	TargetMailbox string // empty: each item's own mailbox
	IntoFolder    string // empty: each item's own folder path
	Collisions    string
	// Job is the backup job whose storage the restore reads, if any: its
	// "items restored" counter counts this restore.
	Job   string
	Clock Clock
	// Done are the version ids earlier attempts of this run recorded as
	// restored (or skipped): they are not touched again.
	Done map[string]bool
	// Started are version ids an earlier attempt began to create without
	// recording the outcome: a crash may have left them in the target.
	Started map[string]bool
}

// RestoreDeps are the restore's ports.
type RestoreDeps struct {
	Publisher message.Publisher
	Target    RestoreTarget
}

// Restorer restores items one by one, recording each step before and
// after it acts, so that a crash at any point resumes without duplicates:
// an item whose creation began but was not recorded is looked up by its
// mark before it is created again.
type Restorer struct {
	cfg     RestoreConfig
	deps    RestoreDeps
	folders map[string]string // mailbox NUL path NUL kind -> folder id
	// made are the folders this run created: they held nothing before it,
	// so an item going into one is not looked for before it is created.
	made map[string]bool
}

// NewRestorer starts (or resumes) the run of cfg.
func NewRestorer(deps RestoreDeps, cfg RestoreConfig) *Restorer {
	if cfg.Clock == nil {
		cfg.Clock = WallClock{}
	}
	if cfg.Collisions == "" {
		cfg.Collisions = CollisionSkip
	}
	return &Restorer{cfg: cfg, deps: deps, folders: map[string]string{}, made: map[string]bool{}}
}

func (r *Restorer) record(ev domain.Event) error {
	ev.Run, ev.Time, ev.Schema = r.cfg.Run, r.cfg.Clock.Now(), domain.SchemaVersion
	msg, err := encode(ev)
	if err != nil {
		return err
	}
	if err := r.deps.Publisher.Publish(domain.TopicRestore, msg); err != nil {
		return fmt.Errorf("record %s: %w", ev.Type, err)
	}
	return nil
}

// Start records the run's start (once: a resumed run keeps its start).
func (r *Restorer) Start(description string) error {
	return r.record(domain.Event{Type: domain.RestoreStarted, ID: domain.DeriveID(r.cfg.Run, "started"), Reason: description,
		Config: &domain.RunConfig{Source: "restore", Job: r.cfg.Job}})
}

// Finish records the run's end with its state.
func (r *Restorer) Finish(state domain.RunState) error {
	return r.record(domain.Event{Type: domain.RestoreFinished, ID: domain.DeriveID(r.cfg.Run, "finished"), State: string(state)})
}

// Restore outcomes.
const (
	RestoreCreated  = "created"
	RestoreReplaced = "replaced"
	RestoreSkipped  = "skipped"
	RestoreCopied   = "copied"
)

// Restore restores one item. A failure of the item is recorded and
// returned as nil; only a failure to record (or a cancelled context) is an
// error.
func (r *Restorer) Restore(ctx context.Context, it RestoreItem) error {
	if r.cfg.Done[it.VersionID] {
		return nil
	}
	mailbox, folder := r.target(it)
	base := r.base(it)
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.Fail(it, err)
	}
	folderID, err := r.folder(ctx, mailbox, folder, it.Kind)
	if err != nil {
		return fail(fmt.Errorf("folder %s: %w", folder, err))
	}
	outcome := RestoreCreated
	var existing string
	var found bool
	err = retryTransient(ctx, func() error {
		if r.made[mailbox+"\x00"+folderID] {
			return nil // made by this run: nothing to find (a retry below still looks)
		}
		var err error
		existing, found, err = r.deps.Target.Lookup(ctx, mailbox, folderID, it)
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("look for the item in the target: %w", err))
	}
	if found {
		switch {
		case r.cfg.Started[it.VersionID]:
			// Created by an attempt that crashed before recording it.
			return r.done(base, outcome, existing, nil)
		case r.cfg.Collisions == CollisionSkip:
			return r.done(base, RestoreSkipped, existing, nil)
		case r.cfg.Collisions == CollisionReplace:
			if err := retryTransient(ctx, func() error { return r.deps.Target.Delete(ctx, mailbox, folderID, existing, it.Kind) }); err != nil {
				return fail(fmt.Errorf("replace: delete the existing item: %w", err))
			}
			outcome = RestoreReplaced
		default:
			outcome = RestoreCopied
		}
	}
	started := base
	started.Type, started.ID, started.Outcome = domain.ItemRestored, domain.DeriveID(r.cfg.Run, "started", it.VersionID), "started"
	if err := r.record(started); err != nil {
		return err
	}
	var res CreateResult
	first := true
	err = retryTransient(ctx, func() error {
		if !first {
			// The failed attempt may have created the item before its reply
			// was lost: look before creating again.
			id, ok, err := r.deps.Target.Lookup(ctx, mailbox, folderID, it)
			if err != nil {
				return err
			}
			if ok {
				res = CreateResult{ID: id}
				return nil
			}
		}
		first = false
		var err error
		res, err = r.deps.Target.Create(ctx, mailbox, folderID, it)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return r.done(base, outcome, res.ID, res.NotPreserved)
}

// target is where an item goes: its own mailbox and folder, or the
// restore's target mailbox and folder.
func (r *Restorer) target(it RestoreItem) (mailbox, folder string) {
	mailbox, folder = it.Mailbox, it.Folder
	if r.cfg.TargetMailbox != "" {
		mailbox = r.cfg.TargetMailbox
	}
	if r.cfg.IntoFolder != "" {
		folder = strings.Trim(r.cfg.IntoFolder, "/") + "/" + it.Folder
	}
	return mailbox, folder
}

func (r *Restorer) base(it RestoreItem) domain.Event {
	mailbox, folder := r.target(it)
	return domain.Event{Mailbox: mailbox, Folder: folder, ItemID: it.ItemID, ChangeKey: it.VersionID, Kind: it.Kind, Size: int64(len(it.Content))}
}

// Fail records that an item could not be restored (a damaged item in the
// storage, or what the target answered); the restore goes on, and a later
// run of it tries the item again.
func (r *Restorer) Fail(it RestoreItem, err error) error {
	fl := domain.AsFailure(err)
	ev := r.base(it)
	ev.Type, ev.ID, ev.Class, ev.Code, ev.Message = domain.RestoreFailed, domain.DeriveID(r.cfg.Run, "failed", it.VersionID, r.cfg.Clock.Now().String()), fl.Class, fl.Code, domain.ShortMessage(fl.Message)
	return r.record(ev)
}

func (r *Restorer) done(base domain.Event, outcome, targetID string, notPreserved []string) error {
	ev := base
	ev.Type, ev.ID, ev.Outcome = domain.ItemRestored, domain.DeriveID(r.cfg.Run, "done", base.ChangeKey), outcome
	ev.TargetID = targetID
	sort.Strings(notPreserved)
	ev.Reason = strings.Join(notPreserved, "; ")
	return r.record(ev)
}

func (r *Restorer) folder(ctx context.Context, mailbox, path, kind string) (string, error) {
	k := mailbox + "\x00" + path + "\x00" + kind
	if id, ok := r.folders[k]; ok {
		return id, nil
	}
	var id string
	var created bool
	err := retryTransient(ctx, func() error {
		var err error
		id, created, err = r.deps.Target.EnsureFolder(ctx, mailbox, path, kind)
		return err
	})
	if err != nil {
		return "", err
	}
	r.folders[k] = id
	if created {
		r.made[mailbox+"\x00"+id] = true
	}
	return id, nil
}

// retryTransient retries throttled and transient failures with the
// default back-off, honouring Retry-After.
func retryTransient(ctx context.Context, call func() error) error {
	_, err := withRetries(ctx, func() (struct{}, error) { return struct{}{}, call() })
	return err
}
