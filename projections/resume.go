// Package projections derives read models from the event log: the resume
// index (what is stored, what is quarantined, where each folder pass stands),
// run reports, run lists and replays. Every projection is a fold over events;
// the resume index is kept inline, in the transaction that appends the event,
// and the others are computed on demand, live or from the log, by the same
// code.
package projections

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
)

// Projection key prefixes (relative to the log's p/ space). Everything a
// backup resumes from is kept per scope (the storage, its index generation
// and the source; see Scope): a second storage, a storage made anew, or a
// second connection to the same mailbox each get a complete backup of
// their own, never one another's cursors, change-tracking state or
// quarantine.
const (
	storedPrefix   = "st/"
	quarPrefix     = "q/"
	cursorPrefix   = "cur/"
	runPrefix      = "run/"
	syncPrefix     = "sync/"
	relistPrefix   = "relist/"
	removedPrefix  = "rm/"
	treePrefix     = "tree/" // a mailbox's folder tree (FolderTracker sources)
	pacePrefix     = "pace/" // the pace a source's throttle left a mailbox (or the app) at
	runScopePrefix = "rs/"   // run -> its scope
)

// Scope names the state one backup resumes from: the storage (its id and
// its index generation, see vault.Scope) and the source's identity. What
// is stored and what is quarantined belong to the storage and the source;
// where each folder's listing stands belongs to the index generation too,
// so that after a repair every folder is listed again in full and whatever
// the storage lost is fetched again.
func Scope(storageID, generation, source string) string {
	return storageID + "/" + source + "\x01" + generation
}

// ItemScope is the part of a scope that items are kept under: what a
// quarantine record's Scope holds.
func ItemScope(scope string) string { return itemScope(scope) }

// itemScope is the part of a scope that items are kept under.
func itemScope(scope string) string {
	if i := strings.IndexByte(scope, '\x01'); i >= 0 {
		return scope[:i]
	}
	return scope
}

func itemKey(prefix, scope, mailbox, folderID, itemID string) []byte {
	return []byte(prefix + scope + "\x00" + mailbox + "\x00" + folderID + "\x00" + itemID)
}

func folderKey(scope, mailbox, folderID string) []byte {
	return []byte(cursorPrefix + scope + "\x00" + mailbox + "\x00" + folderID)
}

func syncKey(scope, mailbox, folderID string) []byte {
	return []byte(syncPrefix + scope + "\x00" + mailbox + "\x00" + folderID)
}

// runScopes remembers the scope of recent runs for the hook: every event of
// a run is in its scope, and looking it up in the log for each item would
// cost a read per stored item.
var runScopes = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

func scopeOf(tx eventlog.Tx, run string) (string, error) {
	runScopes.Lock()
	scope, ok := runScopes.m[run]
	runScopes.Unlock()
	if ok {
		return scope, nil
	}
	b, err := tx.Get([]byte(runScopePrefix + run))
	if err != nil {
		return "", err
	}
	rememberScope(run, string(b))
	return string(b), nil
}

func rememberScope(run, scope string) {
	runScopes.Lock()
	defer runScopes.Unlock()
	if len(runScopes.m) > 256 {
		clear(runScopes.m)
	}
	runScopes.m[run] = scope
}

// relevant lists the event types the resume index reads; other records are
// not even decoded.
var relevant = map[string]bool{
	string(domain.ItemStored): true, string(domain.ItemsStored): true, string(domain.ItemQuarantined): true, string(domain.ItemReleased): true,
	string(domain.BatchRequested): true, string(domain.ListRequested): true, string(domain.FolderSkipped): true,
	string(domain.FolderCompleted): true, string(domain.RunStarted): true,
	string(domain.ItemRemoved): true, string(domain.ListingRestarted): true, string(domain.MailboxDiscovered): true,
	string(domain.Throttled): true, string(domain.QuarantineRetryRequested): true,
}

// ResumeHook keeps the resume index in step with the log. Pass it to
// eventlog.Open.
func ResumeHook(tx eventlog.Tx, rec *eventlog.Record) error {
	if !relevant[rec.Metadata[eventlog.MetaType]] {
		return nil
	}
	ev, err := Decode(*rec)
	if err != nil {
		return fmt.Errorf("resume index: %w", err)
	}
	if ev.Type == domain.RunStarted {
		scope := ""
		if ev.Config != nil {
			scope = ev.Config.Scope
		}
		if err := tx.Set([]byte(runScopePrefix+ev.Run), []byte(scope)); err != nil {
			return err
		}
		rememberScope(ev.Run, scope)
		return tx.Set([]byte(runPrefix+fmt.Sprintf("%020d", rec.Seq)), []byte(ev.Run))
	}
	if ev.Type == domain.QuarantineRetryRequested {
		return retryQuarantined(tx, &ev)
	}
	scope, err := scopeOf(tx, ev.Run)
	if err != nil {
		return err
	}
	switch ev.Type {
	case domain.ItemStored:
		v, _ := json.Marshal(domain.StoredVersion{ChangeKey: ev.ChangeKey, Pass: ev.Pass})
		return tx.Set(itemKey(storedPrefix, itemScope(scope), ev.Mailbox, ev.FolderID, ev.ItemID), v)
	case domain.ItemsStored:
		for _, it := range ev.Stored {
			v, _ := json.Marshal(domain.StoredVersion{ChangeKey: it.ChangeKey, Pass: ev.Pass})
			if err := tx.Set(itemKey(storedPrefix, itemScope(scope), ev.Mailbox, ev.FolderID, it.ItemID), v); err != nil {
				return err
			}
		}
		return nil
	case domain.ItemQuarantined:
		k := itemKey(quarPrefix, itemScope(scope), ev.Mailbox, ev.FolderID, ev.ItemID)
		var q domain.QuarantineRecord
		old, err := tx.Get(k)
		if err != nil {
			return err
		}
		if old != nil {
			if err := json.Unmarshal(old, &q); err != nil {
				return fmt.Errorf("resume index: quarantine entry %q: %w", k, err)
			}
		} else {
			q = domain.QuarantineRecord{Scope: itemScope(scope), Mailbox: ev.Mailbox, Folder: ev.Folder, FolderID: ev.FolderID, ItemID: ev.ItemID, First: ev.Time}
		}
		if ev.Outcome == domain.OutcomeLeftOut {
			if old != nil {
				return nil // a skip is not an attempt
			}
			q.LastAttempt = ev.Time
		} else {
			q.LastAttempt = ev.Time
			q.Attempts++
		}
		q.Position, q.Code, q.Inferred = ev.Position, ev.Code, ev.Reason == domain.ReasonInferred
		v, _ := json.Marshal(q)
		return tx.Set(k, v)
	case domain.ItemReleased:
		return tx.Delete(itemKey(quarPrefix, itemScope(scope), ev.Mailbox, ev.FolderID, ev.ItemID))
	case domain.BatchRequested, domain.ListRequested, domain.FolderSkipped, domain.ListingRestarted:
		if ev.Type == domain.ListRequested && ev.PageToken == "" && ev.Position <= 1 {
			// A listing from the start: a requested relisting is under way.
			if err := deleteIfSet(tx, relistKey(scope, ev.Mailbox, ev.FolderID)); err != nil {
				return err
			}
		}
		if ev.Cursor == nil {
			return nil
		}
		if ev.Type == domain.ListRequested && ev.Cursor.Position <= 1 {
			// A listing before the pass's first item is done: a cursor
			// there says no more than none (nothing is done yet, and a new
			// pass lists from the same token), so a folder without changes
			// writes no cursor at all. Once a batch is requested, its
			// cursor is kept, and a later listing at the same position
			// leaves it as it is.
			return nil
		}
		v, _ := json.Marshal(ev.Cursor)
		return tx.Set(folderKey(scope, ev.Mailbox, ev.FolderID), v)
	case domain.FolderCompleted:
		switch {
		case ev.Unchanged:
			// Nothing new: the token the pass listed from stays, with
			// its issue time (domain.KeepToken).
		case ev.SyncToken != "":
			if err := tx.Set(syncKey(scope, ev.Mailbox, ev.FolderID), stampToken(ev.Time, ev.SyncToken)); err != nil {
				return err
			}
		default:
			if err := tx.Delete(syncKey(scope, ev.Mailbox, ev.FolderID)); err != nil {
				return err
			}
		}
		return deleteIfSet(tx, folderKey(scope, ev.Mailbox, ev.FolderID))
	case domain.Throttled:
		if ev.PaceRPS <= 0 {
			return nil
		}
		mailbox := ev.Mailbox
		if ev.PaceApp {
			mailbox = ""
		}
		v := strconv.FormatFloat(ev.PaceRPS, 'g', -1, 64)
		if ev.PaceCostly {
			v += " " + paceCostlyWord
		}
		if ev.PaceWindowMS > 0 {
			v += " " + paceWindowWord + strconv.FormatInt(ev.PaceWindowMS, 10)
		}
		return tx.Set(paceKey(scope, mailbox), []byte(v))
	case domain.MailboxDiscovered:
		if ev.Tree == nil || ev.Outcome != domain.OutcomeSuccess {
			return nil
		}
		return applyFolderChanges(tx, treeKey(scope, ev.Mailbox), *ev.Tree, ev.Time)
	case domain.ItemRemoved:
		// The stored versions stay in the storage (retention decides);
		// the index forgets the item so that a re-appearing id is stored
		// again, and remembers when the source deleted it.
		if err := tx.Delete(itemKey(storedPrefix, itemScope(scope), ev.Mailbox, ev.FolderID, ev.ItemID)); err != nil {
			return err
		}
		t, _ := ev.Time.MarshalText()
		return tx.Set(itemKey(removedPrefix, itemScope(scope), ev.Mailbox, ev.FolderID, ev.ItemID), t)
	}
	return nil
}

// retryQuarantined makes the items of a retry request due now and marks
// their folder to be listed in full by its next pass: a change listing
// reports only changed items, and a repaired item has not changed.
func retryQuarantined(tx eventlog.Tx, ev *domain.Event) error {
	for _, it := range ev.Items {
		k := itemKey(quarPrefix, itemScope(ev.Scope), ev.Mailbox, ev.FolderID, it.ID)
		old, err := tx.Get(k)
		if err != nil {
			return err
		}
		if old == nil {
			continue // released meanwhile: nothing to retry
		}
		var q domain.QuarantineRecord
		if err := json.Unmarshal(old, &q); err != nil {
			return fmt.Errorf("resume index: quarantine entry %q: %w", k, err)
		}
		q.LastAttempt = time.Time{}
		v, _ := json.Marshal(q)
		if err := tx.Set(k, v); err != nil {
			return err
		}
	}
	t, _ := ev.Time.MarshalText()
	return tx.Set(relistKey(ev.Scope, ev.Mailbox, ev.FolderID), t)
}

// relistKey marks a folder whose next pass lists it in full.
func relistKey(scope, mailbox, folderID string) []byte {
	return []byte(relistPrefix + scope + "\x00" + mailbox + "\x00" + folderID)
}

// deleteIfSet deletes a key that exists: a deletion is written too.
func deleteIfSet(tx eventlog.Tx, key []byte) error {
	v, err := tx.Get(key)
	if err != nil || v == nil {
		return err
	}
	return tx.Delete(key)
}

// Relist says whether a folder's next pass must list it in full (a retry
// of its quarantined items was asked for).
func (r Resume) Relist(mailbox, folderID string) (bool, error) {
	b, err := r.Log.ReadProjection(relistKey(r.Scope, mailbox, folderID))
	return b != nil, err
}

// paceKey is where a mailbox's pace is kept ("" for the app's): per source,
// whatever the storage, since the server's limits are the source's.
func paceKey(scope, mailbox string) []byte {
	return []byte(pacePrefix + sourceOf(scope) + "\x00" + mailbox)
}

// sourceOf is the source part of a scope (see Scope).
func sourceOf(scope string) string {
	if i := strings.IndexByte(scope, '/'); i >= 0 {
		scope = scope[i+1:]
	}
	if i := strings.IndexByte(scope, '\x01'); i >= 0 {
		scope = scope[:i]
	}
	return scope
}

func treeKey(scope, mailbox string) []byte {
	return []byte(treePrefix + scope + "\x00" + mailbox)
}

// treeTokenKey holds the token of a mailbox's tree apart from its folders:
// a discovery that found nothing changed writes the new token alone, not
// the whole tree again (a large mailbox's tree is kilobytes, and Graph
// hands out a new token at every round). A tree written before the token
// had a key of its own carries its token inside.
func treeTokenKey(treeKey []byte) []byte { return append(slices.Clip(treeKey), "\x00token"...) }

// readTree reads the folder tree kept at key, with its token (kept apart
// since the tree's token has a key of its own; inside it before), through
// get: the hook's transaction or the log's projections.
func readTree(get func(key []byte) ([]byte, error), key []byte) (domain.FolderTree, bool, error) {
	var tree domain.FolderTree
	b, err := get(key)
	if err != nil || b == nil {
		return tree, false, err
	}
	if err := json.Unmarshal(b, &tree); err != nil {
		return tree, false, fmt.Errorf("resume index: folder tree %q is corrupt: %w", key, err)
	}
	tok, err := get(treeTokenKey(key))
	if err != nil {
		return tree, false, err
	}
	if tok != nil {
		tree.Token, tree.Issued = readStampedToken(tok)
	}
	return tree, true, nil
}

// applyFolderChanges moves a mailbox's folder tree on by the changes its
// discovery recorded. Changes that do not continue the tree held (its
// earlier changes were compacted away before the index was rebuilt) drop
// it: the next discovery lists the hierarchy in full.
func applyFolderChanges(tx eventlog.Tx, key []byte, ch domain.FolderChanges, issued time.Time) error {
	tokenKey := treeTokenKey(key)
	var tree domain.FolderTree
	if !ch.Full {
		var err error
		if tree, _, err = readTree(tx.Get, key); err != nil {
			return err
		}
	}
	next, ok := tree.Apply(ch)
	if !ok || next.Token == "" {
		if err := tx.Delete(tokenKey); err != nil {
			return err
		}
		return tx.Delete(key)
	}
	if ch.Full || len(ch.Changed) > 0 || len(ch.Removed) > 0 {
		v, _ := json.Marshal(domain.FolderTree{Nodes: next.Nodes})
		if err := tx.Set(key, v); err != nil {
			return err
		}
	}
	return tx.Set(tokenKey, stampToken(issued, next.Token))
}

// tokenStamp marks a change token kept with its issue time: the mark, the
// Unix time in seconds (8 bytes, big-endian), the token. Tokens are URLs
// or base64, so a value without the mark is a token kept before issue
// times were, its age unknown (used again only if it lists changes).
const tokenStamp = 0x01

func stampToken(issued time.Time, token string) []byte {
	b := make([]byte, 9, 9+len(token))
	b[0] = tokenStamp
	binary.BigEndian.PutUint64(b[1:9], uint64(issued.Unix()))
	return append(b, token...)
}

func readStampedToken(b []byte) (string, time.Time) {
	if len(b) < 9 || b[0] != tokenStamp {
		return string(b), time.Time{}
	}
	return string(b[9:]), time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0).UTC()
}

// Resume reads the resume index of one scope (Quarantine lists them all).
type Resume struct {
	Log   ProjectionStore
	Scope string
}

func (r Resume) get(key []byte, v any) (bool, error) {
	b, err := r.Log.ReadProjection(key)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("resume index entry %q is corrupt: %w", key, err)
	}
	return true, nil
}

// Stored returns the stored version of an item, if any.
func (r Resume) Stored(mailbox, folderID, itemID string) (domain.StoredVersion, bool, error) {
	var v domain.StoredVersion
	ok, err := r.get(itemKey(storedPrefix, itemScope(r.Scope), mailbox, folderID, itemID), &v)
	return v, ok, err
}

// Quarantined returns the quarantine record of an item, if any.
func (r Resume) Quarantined(mailbox, folderID, itemID string) (domain.QuarantineRecord, bool, error) {
	var q domain.QuarantineRecord
	ok, err := r.get(itemKey(quarPrefix, itemScope(r.Scope), mailbox, folderID, itemID), &q)
	return q, ok, err
}

// Cursor returns the cursor of a folder pass in progress, if any.
func (r Resume) Cursor(mailbox, folderID string) (domain.Cursor, bool, error) {
	var c domain.Cursor
	ok, err := r.get(folderKey(r.Scope, mailbox, folderID), &c)
	return c, ok, err
}

// SyncToken returns where a completed folder's next pass lists changes
// from, and when the source handed it out.
func (r Resume) SyncToken(mailbox, folderID string) (domain.SyncState, bool, error) {
	b, err := r.Log.ReadProjection(syncKey(r.Scope, mailbox, folderID))
	if err != nil || b == nil {
		return domain.SyncState{}, false, err
	}
	tok, issued := readStampedToken(b)
	return domain.SyncState{Token: tok, Issued: issued}, true, nil
}

// FolderTree returns a mailbox's folder tree as last discovered, for a
// source that reports hierarchy changes (pipeline.FolderTrees).
func (r Resume) FolderTree(mailbox string) (domain.FolderTree, bool, error) {
	return readTree(r.Log.ReadProjection, treeKey(r.Scope, mailbox))
}

// FolderHolds says whether anything of the folder is stored or
// quarantined in the scope (pipeline.FolderHoldings).
func (r Resume) FolderHolds(mailbox, folderID string) (stored, quarantined bool, err error) {
	// An item's key with no item: what every item key of the folder starts with.
	if stored, err = r.Log.HasProjection(itemKey(storedPrefix, itemScope(r.Scope), mailbox, folderID, "")); err != nil {
		return true, true, err
	}
	quarantined, err = r.Log.HasProjection(itemKey(quarPrefix, itemScope(r.Scope), mailbox, folderID, ""))
	if err != nil {
		return true, true, err
	}
	return stored, quarantined, nil
}

// Pace returns the pace a throttle last left a mailbox at ("" for the
// app), for the source of the scope (pipeline.PaceMemory).
func (r Resume) Pace(mailbox string) (domain.LearnedPace, bool, error) {
	b, err := r.Log.ReadProjection(paceKey(r.Scope, mailbox))
	if err != nil || b == nil {
		return domain.LearnedPace{}, false, err
	}
	l, err := parsePace(string(b))
	if err != nil {
		return domain.LearnedPace{}, false, fmt.Errorf("resume index: pace of %q is corrupt: %w", mailbox, err)
	}
	return l, true, nil
}

// A kept pace is its rate, then "costly" if its limit was costly to
// cross, then "window=" and the server's window in milliseconds if one
// was learned (older logs hold the rate alone, or with "costly").
const (
	paceCostlyWord = "costly"
	paceWindowWord = "window="
)

func parsePace(s string) (domain.LearnedPace, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return domain.LearnedPace{}, errors.New("empty")
	}
	var l domain.LearnedPace
	var err error
	if l.Rate, err = strconv.ParseFloat(fields[0], 64); err != nil {
		return domain.LearnedPace{}, err
	}
	for _, f := range fields[1:] {
		switch ms, isWindow := strings.CutPrefix(f, paceWindowWord); {
		case f == paceCostlyWord:
			l.Costly = true
		case isWindow:
			n, err := strconv.ParseInt(ms, 10, 64)
			if err != nil || n <= 0 {
				return domain.LearnedPace{}, fmt.Errorf("window %q", ms)
			}
			l.Window = time.Duration(n) * time.Millisecond
		default:
			return domain.LearnedPace{}, fmt.Errorf("unknown %q", f)
		}
	}
	return l, nil
}

// Quarantine lists every quarantined item of every scope.
func (r Resume) Quarantine() ([]domain.QuarantineRecord, error) {
	var out []domain.QuarantineRecord
	err := r.Log.ScanProjection([]byte(quarPrefix), func(k, v []byte) error {
		var q domain.QuarantineRecord
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("quarantine entry %q is corrupt: %w", k, err)
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

// RunIDs lists runs oldest first.
func (r Resume) RunIDs() ([]string, error) {
	var out []string
	err := r.Log.ScanProjection([]byte(runPrefix), func(_, v []byte) error {
		out = append(out, string(v))
		return nil
	})
	return out, err
}

// ErrNoRuns is returned when the log holds no run.
var ErrNoRuns = errors.New("no runs in this data directory")
