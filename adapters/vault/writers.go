package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Several processes may use one storage in object storage (the workers of
// a cluster, an auditor's verify, a prune), each with its own directory
// and index. Two things keep them from harming each other, as restic's
// repository locks do:
//
//   - Locks. Every process that has the storage open keeps a lock object
//     in the bucket (locks/ID), renewed while it is open. Prune and repair
//     take an exclusive one and are refused while any other live lock is
//     there: a writer's newest version may use a chunk the pruner's index
//     has no reference to. Everything else takes a shared one and is
//     refused while an exclusive one is there. A lock not renewed for
//     lockStaleAfter is a dead process's, and an exclusive taker removes it.
//   - Rewrites. A prune or repair that deletes, moves or sets aside packs
//     leaves a marker (rewrites/NAME): a prune before the first pack it
//     deletes, a repair once it is done. A directory whose
//     index has not seen a marker reconciles its index with the bucket
//     before using it: entries in packs that are gone (or set aside) are
//     dropped, the packs that hold them now are adopted, tombstones take
//     back the versions the prune removed, and every chunk's references
//     are counted again from the versions. A pack that is missing without
//     a marker stays what it was: damage, named by verify.

// lockRecord is a lock object's body.
type lockRecord struct {
	Holder    string    `json:"holder"` // host and process
	Exclusive bool      `json:"exclusive"`
	Time      time.Time `json:"time"` // written, or last renewed
}

// Lock timing: variables so that tests can shorten them.
var (
	lockRenewEvery = 5 * time.Minute
	lockStaleAfter = 30 * time.Minute
)

const (
	locksPrefix    = "locks/"
	rewritesPrefix = "rewrites/"
	// keyRewritesSeen lists the rewrite markers this index has taken in.
	keyRewritesSeen = "meta/rewrites-seen"
)

// ErrInUse means another process holds a lock on the storage that
// excludes what was asked.
var ErrInUse = errors.New("storage is in use by another process")

// ErrLockLost means this process could not renew its lock on the storage
// for so long that another may have taken it as stale.
var ErrLockLost = errors.New("lost the lock on the storage")

// storageLock is this process's lock object on a storage in object
// storage, renewed in the background until it is released.
type storageLock struct {
	remote    Remote
	exclusive bool
	holder    string

	mu      sync.Mutex
	name    string // the current lock object
	version string
	renewed time.Time // last written
	stop    chan struct{}
	done    chan struct{}
}

func lockHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// takeLock puts this process's lock in the storage's bucket and checks
// the others: an exclusive lock is refused while any other live lock is
// there (and removes stale ones), a shared lock while a live exclusive
// one is.
//
// A reader whose credentials cannot write to the bucket reads without a
// lock (an auditor's read-only key): a prune meanwhile can make a read
// fail, naming the pack it could not find, never read wrong.
func (v *Vault) takeLock(exclusive, reader bool) error {
	l := &storageLock{remote: v.remote, exclusive: exclusive, holder: lockHolder(), stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.write(); err != nil {
		if reader {
			return nil
		}
		return fmt.Errorf("put a lock on %s: %w", v.remote.Where(), err)
	}
	others, stale, err := otherLocks(v.remote, l.name)
	if err != nil {
		l.remove()
		return fmt.Errorf("read the locks of %s: %w", v.remote.Where(), err)
	}
	for _, o := range others {
		if exclusive || o.rec.Exclusive {
			l.remove()
			what := "a backup, restore or check"
			if o.rec.Exclusive {
				what = "a prune or repair"
			}
			return fmt.Errorf("%s: %w: %s holds it for %s since %s; run this again once it is done (a lock not renewed for %s is taken as a stopped process's and removed)",
				v.remote.Where(), ErrInUse, o.rec.Holder, what, o.rec.Time.UTC().Format(time.RFC3339), lockStaleAfter)
		}
	}
	if exclusive {
		for _, s := range stale {
			ctx, cancel := remoteCtx()
			_ = v.remote.Delete(ctx, s, "") // another prune may have removed it first
			cancel()
		}
	}
	v.lock = l
	go l.renewLoop()
	return nil
}

// write puts a new lock object with the time now and removes the one it
// replaces: the lock is never absent while it is renewed.
func (l *storageLock) write() error {
	now := time.Now().UTC()
	b, err := json.Marshal(lockRecord{Holder: l.holder, Exclusive: l.exclusive, Time: now})
	if err != nil {
		return err
	}
	name := locksPrefix + now.Format("20060102T150405") + "-" + randomID(6)
	ctx, cancel := remoteCtx()
	defer cancel()
	version, err := l.remote.Put(ctx, name, bytes.NewReader(b), int64(len(b)), time.Time{})
	if err != nil {
		return err
	}
	l.mu.Lock()
	old, oldVersion := l.name, l.version
	l.name, l.version, l.renewed = name, version, now
	l.mu.Unlock()
	if old != "" {
		_ = l.remote.Delete(ctx, old, oldVersion) // a leftover is stale soon and removed then
	}
	return nil
}

func (l *storageLock) renewLoop() {
	defer close(l.done)
	t := time.NewTicker(lockRenewEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			_ = l.write() // a failure shows in held(): the lock ages
		}
	}
}

// held reports whether the lock is still fresh enough that no other
// process can take it for a stopped one's.
func (l *storageLock) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.renewed) < lockStaleAfter-lockRenewEvery
}

// remove deletes the lock object (its version, so that a versioned
// bucket keeps nothing of it).
func (l *storageLock) remove() {
	l.mu.Lock()
	name, version := l.name, l.version
	l.name = ""
	l.mu.Unlock()
	if name == "" {
		return
	}
	ctx, cancel := remoteCtx()
	defer cancel()
	_ = l.remote.Delete(ctx, name, version)
}

// releaseLock stops renewing this process's lock and removes it.
func (v *Vault) releaseLock() {
	l := v.lock
	if l == nil {
		return
	}
	v.lock = nil
	close(l.stop)
	<-l.done
	l.remove()
}

// checkLock fails when this process's lock aged past what others take
// for a live process's: a prune may have run meanwhile, so nothing this
// process stored since can be said to be stored.
func (v *Vault) checkLock() error {
	if v.lock == nil || v.lock.held() {
		return nil
	}
	return fmt.Errorf("%s: %w (it could not be renewed for %s); nothing more is written until the storage is opened again", v.remote.Where(), ErrLockLost, lockStaleAfter-lockRenewEvery)
}

type foundLock struct {
	name string
	rec  lockRecord
}

// otherLocks reads the bucket's locks but own: the live ones, and the
// names of stale ones. A lock that does not read is taken as live (it
// could be a newer mailvault's).
func otherLocks(r Remote, own string) (live []foundLock, stale []string, err error) {
	var names []string
	ctx, cancel := remoteCtx()
	defer cancel()
	if err := r.List(ctx, locksPrefix, func(name string, _ int64) error {
		if name != own {
			names = append(names, name)
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	for _, name := range names {
		b, err := r.Get(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, nil, err
		}
		var rec lockRecord
		if json.Unmarshal(b, &rec) != nil {
			rec = lockRecord{Holder: "an unreadable lock " + name, Exclusive: true, Time: now}
		}
		if now.Sub(rec.Time) > lockStaleAfter {
			stale = append(stale, name)
			continue
		}
		live = append(live, foundLock{name: name, rec: rec})
	}
	return live, stale, nil
}

// rewriteRecord is a rewrite marker's body.
type rewriteRecord struct {
	Kind   string    `json:"kind"` // "prune" or "repair"
	Holder string    `json:"holder"`
	Time   time.Time `json:"time"`
	// SetAside are damaged packs repair emptied that stay in the bucket:
	// the index entries pointing into them are dropped like those of
	// packs that are gone.
	SetAside []string `json:"set_aside,omitempty"`
}

// noteRewrite leaves a marker saying this process deletes, moves or sets
// aside packs (once per open: before the first pack it deletes, so that a
// prune stopped midway is not taken for damage; the other directories
// cannot open the storage before its exclusive lock is gone), and notes
// it as seen here.
func (v *Vault) noteRewrite(kind string, setAside []string) error {
	if v.remote == nil || v.rewriteNoted {
		return nil
	}
	now := time.Now().UTC()
	b, err := json.Marshal(rewriteRecord{Kind: kind, Holder: lockHolder(), Time: now, SetAside: setAside})
	if err != nil {
		return err
	}
	name := rewritesPrefix + now.Format("20060102T150405") + "-" + randomID(6)
	ctx, cancel := remoteCtx()
	defer cancel()
	if _, err := v.remote.Put(ctx, name, bytes.NewReader(b), int64(len(b)), v.lockUntil()); err != nil {
		return fmt.Errorf("record the %s in %s: %w", kind, v.remote.Where(), err)
	}
	v.rewriteNoted = true
	return v.noteRewritesSeen([]string{name})
}

// rewrites lists the bucket's rewrite markers.
func (v *Vault) rewrites() ([]string, error) {
	var names []string
	ctx, cancel := remoteCtx()
	defer cancel()
	err := v.remote.List(ctx, rewritesPrefix, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the rewrites of %s: %w", v.remote.Where(), err)
	}
	sort.Strings(names)
	return names, nil
}

func (v *Vault) rewritesSeen() (map[string]bool, error) {
	seen := map[string]bool{}
	var names []string
	err := v.getMeta(keyRewritesSeen, &names)
	for _, n := range names {
		seen[n] = true
	}
	return seen, err
}

func (v *Vault) noteRewritesSeen(names []string) error {
	if len(names) == 0 {
		return nil
	}
	return v.update(func(txn *badger.Txn) error {
		var seen []string
		if _, err := getJSON(txn, []byte(keyRewritesSeen), &seen); err != nil {
			return err
		}
		have := map[string]bool{}
		for _, n := range seen {
			have[n] = true
		}
		for _, n := range names {
			if !have[n] {
				seen = append(seen, n)
			}
		}
		return putJSON(txn, []byte(keyRewritesSeen), seen)
	})
}

// unseenRewrites reads the markers this index has not taken in, and the
// packs they set aside.
func (v *Vault) unseenRewrites() (names []string, setAside map[string]bool, err error) {
	all, err := v.rewrites()
	if err != nil {
		return nil, nil, err
	}
	seen, err := v.rewritesSeen()
	if err != nil {
		return nil, nil, err
	}
	setAside = map[string]bool{}
	for _, n := range all {
		if seen[n] {
			continue
		}
		names = append(names, n)
		ctx, cancel := remoteCtx()
		b, err := v.remote.Get(ctx, n)
		cancel()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read %s from %s: %w", n, v.remote.Where(), err)
		}
		var rec rewriteRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, nil, fmt.Errorf("%s in %s does not read: %v: %w", n, v.remote.Where(), err, ErrDamaged)
		}
		for _, p := range rec.SetAside {
			setAside[p] = true
		}
	}
	return names, setAside, nil
}

// dropEntriesIn removes every index entry located in the given packs
// (gone from the bucket, or set aside by another process's repair), and
// the records of those gone (a set-aside pack's record stays, marked so,
// for it is still in the bucket and must not be adopted again): what
// still lives is adopted again from the packs that hold it now.
func (v *Vault) dropEntriesIn(packs, setAside map[string]bool) error {
	if len(packs) == 0 {
		return nil
	}
	var drop [][]byte
	// Chunks without references too: one left behind would keep pointing
	// at the gone pack, and adoption would skip its moved copy.
	err := v.eachLocated(true, func(r reference) error {
		if packs[r.Pack] {
			drop = append(drop, r.Key)
			if r.Type == entryItem {
				drop = append(drop, []byte(prefixID+r.ID))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for p := range packs {
		if !setAside[p] {
			drop = append(drop, packKey(p))
		}
	}
	for from := 0; from < len(drop); from += adoptBatch {
		batch := drop[from:min(from+adoptBatch, len(drop))]
		if err := v.update(func(txn *badger.Txn) error {
			for _, k := range batch {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return v.update(func(txn *badger.Txn) error {
		for p := range packs {
			if setAside[p] {
				if err := putJSON(txn, packKey(p), packRecord{State: packSetAside, Uploaded: true}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// goneOrSetAside are the uploaded packs this index knows that the bucket
// no longer lists, and those a marker says were set aside.
func (v *Vault) goneOrSetAside(listed map[string]bool, setAside map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	err := v.eachPackRecord(func(pack string, rec packRecord) error {
		if rec.Uploaded && (!listed[pack] || setAside[pack]) && rec.State != packSetAside {
			out[pack] = true
		}
		return nil
	})
	return out, err
}
