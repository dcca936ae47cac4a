package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mailvault/mailvault/internal/atomicfile"
)

// Remote is object storage that holds a storage's sealed packs and its
// settings (an S3 bucket, say). The storage's local directory then keeps
// the index (a cache of what the packs hold, rebuilt from them by repair)
// and the one pack being written, which goes up when it is sealed: the
// object store holds the same self-describing packs a local storage does.
type Remote interface {
	// Put stores name, refusing to replace it where the store can; with a
	// non-zero retainUntil the object is locked against deletion and
	// overwriting until then. It returns the object's version ("" where
	// the store keeps none).
	Put(ctx context.Context, name string, body io.Reader, size int64, retainUntil time.Time) (version string, err error)
	// Get reads a whole object; a missing one is fs.ErrNotExist.
	Get(ctx context.Context, name string) ([]byte, error)
	// ReadAt fills p from the object at off; a missing one is
	// fs.ErrNotExist, a short one io.ErrUnexpectedEOF.
	ReadAt(ctx context.Context, name string, p []byte, off int64) error
	// List calls fn for every object under prefix with its size.
	List(ctx context.Context, prefix string, fn func(name string, size int64) error) error
	// Delete removes an object's version for good ("" removes the
	// current one); a lock that has not expired is ErrRetained.
	Delete(ctx context.Context, name, version string) error
	// Locking reports whether the store can lock objects (S3 Object Lock
	// enabled on the bucket).
	Locking(ctx context.Context) (bool, error)
	// Where names the store for messages ("s3://bucket/prefix at host").
	Where() string
}

// ErrRetained means an object's lock has not expired: it cannot be
// deleted or replaced yet.
var ErrRetained = errors.New("locked by the storage's retention lock")

// RemoteConfig is remote.json in a storage's local directory: where its
// objects are. It holds no secret: credentials come from the environment
// of whoever opens the storage.
type RemoteConfig struct {
	Kind     string `json:"kind"` // "s3"
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
	Prefix   string `json:"prefix,omitempty"`
	Region   string `json:"region,omitempty"`
	// Insecure talks plain HTTP (a test server on loopback).
	Insecure bool `json:"insecure,omitempty"`
	// CAFile is a PEM file of extra roots to trust.
	CAFile string `json:"ca_file,omitempty"`
	// Lock locks every pack and settings object when it is written.
	Lock *LockPolicy `json:"lock,omitempty"`
}

// LockPolicy is a storage's immutability: each object written stays
// undeletable and unchangeable for Days after it is written.
type LockPolicy struct {
	// Mode is "governance" (an account with the bypass permission can
	// still delete) or "compliance" (nobody can, not even the root
	// account, until it expires).
	Mode string `json:"mode"`
	Days int    `json:"days"`
}

// Validate says what is wrong with a lock policy.
func (l LockPolicy) Validate() error {
	if l.Mode != "governance" && l.Mode != "compliance" {
		return fmt.Errorf("lock mode %q: want governance or compliance", l.Mode)
	}
	if l.Days < 1 || l.Days > 36500 {
		return fmt.Errorf("lock period %d days: want 1 to 36500", l.Days)
	}
	return nil
}

// RemoteOpener connects to a remote described by its configuration.
type RemoteOpener func(RemoteConfig) (Remote, error)

var remoteKinds = struct {
	sync.Mutex
	m map[string]RemoteOpener
}{m: map[string]RemoteOpener{}}

// RegisterRemote makes a kind of remote available to storages (the
// program registers its backends at start, as restic's do).
func RegisterRemote(kind string, open RemoteOpener) {
	remoteKinds.Lock()
	defer remoteKinds.Unlock()
	remoteKinds.m[kind] = open
}

func openRemote(c RemoteConfig) (Remote, error) {
	remoteKinds.Lock()
	open := remoteKinds.m[c.Kind]
	remoteKinds.Unlock()
	if open == nil {
		return nil, fmt.Errorf("storage kind %q is not known to this mailvault", c.Kind)
	}
	return open(c)
}

const remoteFile = "remote.json"

func readRemoteConfig(dir string) (*RemoteConfig, error) {
	b, err := os.ReadFile(filepath.Join(dir, remoteFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr("read", filepath.Join(dir, remoteFile), err)
	}
	var c RemoteConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s is damaged: %v", filepath.Join(dir, remoteFile), err)
	}
	if c.Kind == "" || c.Bucket == "" {
		return nil, fmt.Errorf("%s: no kind or bucket", filepath.Join(dir, remoteFile))
	}
	return &c, nil
}

// remoteTimeout bounds one object operation; the client retries inside it.
const remoteTimeout = 5 * time.Minute

func remoteCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), remoteTimeout)
}

func packObject(pack string) string { return "data/" + pack }

// uploadPack sends a sealed pack to the remote, locked as the policy says,
// records it there, and drops the local copy. Callers hold packs.mu or
// are alone (open, close).
func (v *Vault) uploadPack(pack string, rec packRecord) error {
	path := v.packPath(pack)
	f, err := os.Open(path)
	if err != nil {
		return storageErr("upload pack", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return storageErr("upload pack", path, err)
	}
	until := v.lockUntil()
	ctx, cancel := remoteCtx()
	defer cancel()
	version, err := v.remote.Put(ctx, packObject(pack), f, info.Size(), until)
	if err != nil {
		return fmt.Errorf("upload pack %s to %s: %w", short(pack), v.remote.Where(), err)
	}
	rec.Uploaded, rec.Version, rec.RetainUntil = true, version, until
	if rec.Size == 0 {
		rec.Size = info.Size()
	}
	if err := v.update(func(txn *badger.Txn) error { return putJSON(txn, packKey(pack), rec) }); err != nil {
		return storageErr("record uploaded pack", path, err)
	}
	f.Close()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storageErr("drop uploaded pack", path, err)
	}
	return nil
}

// lockUntil is the retention date of an object written now (zero: the
// storage locks nothing).
func (v *Vault) lockUntil() time.Time {
	if v.remoteCfg == nil || v.remoteCfg.Lock == nil {
		return time.Time{}
	}
	return time.Now().UTC().Add(time.Duration(v.remoteCfg.Lock.Days) * 24 * time.Hour)
}

// uploadSealedPacks sends up the sealed packs a stopped writer left local
// (a failed upload, a kill between sealing and uploading).
func (v *Vault) uploadSealedPacks() error {
	if v.remote == nil {
		return nil
	}
	pending := map[string]packRecord{}
	if err := v.eachPackRecord(func(pack string, rec packRecord) error {
		if rec.State == packSealed && !rec.Uploaded {
			pending[pack] = rec
		}
		return nil
	}); err != nil {
		return err
	}
	names := make([]string, 0, len(pending))
	for p := range pending {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, pack := range names {
		if err := v.uploadPack(pack, pending[pack]); err != nil {
			return err
		}
	}
	return nil
}

// readRemotePayload reads an entry of an uploaded pack.
func (v *Vault) readRemotePayload(loc location) ([]byte, error) {
	raw := make([]byte, loc.Length)
	ctx, cancel := remoteCtx()
	defer cancel()
	err := v.remote.ReadAt(ctx, packObject(loc.Pack), raw, loc.Offset)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("pack %s is missing from %s: %w", short(loc.Pack), v.remote.Where(), ErrDamaged)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("pack %s is cut short at %d in %s: %w", short(loc.Pack), loc.Offset, v.remote.Where(), ErrDamaged)
	case err != nil:
		return nil, fmt.Errorf("read pack %s from %s: %w", short(loc.Pack), v.remote.Where(), err)
	}
	return raw, nil
}

// downloadPack fetches an uploaded pack into a temporary file of the
// local directory, for reading it whole (verify, repair, prune).
func (v *Vault) downloadPack(pack string) (*os.File, error) {
	ctx, cancel := remoteCtx()
	defer cancel()
	b, err := v.remote.Get(ctx, packObject(pack))
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(v.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tmp, "pack-")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // gone when closed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, storageErr("download pack", pack, err)
	}
	return f, nil
}

// eachRemotePack calls fn for every pack object with its size.
func (v *Vault) eachRemotePack(fn func(pack string, size int64) error) error {
	ctx, cancel := remoteCtx()
	defer cancel()
	return v.remote.List(ctx, "data/", func(name string, size int64) error {
		pack := strings.TrimPrefix(name, "data/")
		if pack == "" || strings.Contains(pack, "/") {
			return nil
		}
		return fn(pack, size)
	})
}

// deleteRemotePack removes an uploaded pack's object for good, unless its
// lock has not expired.
func (v *Vault) deleteRemotePack(pack string, rec packRecord) error {
	ctx, cancel := remoteCtx()
	defer cancel()
	err := v.remote.Delete(ctx, packObject(pack), rec.Version)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// locked reports whether a pack's retention lock still holds at now.
func (rec packRecord) locked(now time.Time) bool {
	return !rec.RetainUntil.IsZero() && now.Before(rec.RetainUntil)
}

// pushSettings writes the settings objects to the remote, the copy first
// (as writeSettings does locally).
func (v *Vault) pushSettings() error {
	if v.remote == nil {
		return nil
	}
	b, err := encodeSettings(v.set)
	if err != nil {
		return err
	}
	// Locked like the packs: the settings hold the wrapped data key,
	// without which no pack can be read. A change writes a new version
	// (a versioned bucket keeps the locked one).
	until := v.lockUntil()
	for _, name := range []string{configCopy, configFile} {
		ctx, cancel := remoteCtx()
		_, err := v.remote.Put(ctx, name, bytes.NewReader(b), int64(len(b)), until)
		cancel()
		if err != nil {
			return fmt.Errorf("write storage settings %s to %s: %w", name, v.remote.Where(), err)
		}
	}
	return nil
}

// pullSettings replaces the local settings files with the remote's, the
// storage's truth (another machine may have changed the password).
func pullSettings(dir string, r Remote) error {
	got := 0
	for _, name := range []string{configCopy, configFile} {
		ctx, cancel := remoteCtx()
		b, err := r.Get(ctx, name)
		cancel()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read storage settings %s from %s: %w", name, r.Where(), err)
		}
		if err := atomicfile.Write(filepath.Join(dir, name), b); err != nil {
			return storageErr("write storage settings", filepath.Join(dir, name), err)
		}
		got++
	}
	if got == 0 {
		return fmt.Errorf("%s: %w (no %s there)", r.Where(), ErrNotVault, configFile)
	}
	return nil
}

// prepareRemote connects a new storage's object store, checks that it
// holds no storage yet and can lock objects when the policy asks, and
// records it in dir.
func prepareRemote(dir string, c RemoteConfig) (Remote, error) {
	if c.Lock != nil {
		if err := c.Lock.Validate(); err != nil {
			return nil, fmt.Errorf("create storage %s: %w", dir, err)
		}
	}
	r, err := openRemote(c)
	if err != nil {
		return nil, fmt.Errorf("create storage %s: %w", dir, err)
	}
	held, err := holdsStorage(r)
	if err != nil {
		return nil, fmt.Errorf("create storage in %s: %w", r.Where(), err)
	}
	if held {
		return nil, fmt.Errorf("create storage in %s: a storage exists there already (add it with the same settings to use it)", r.Where())
	}
	if c.Lock != nil {
		ctx, cancel := remoteCtx()
		ok, err := r.Locking(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("create storage in %s: read its object lock setting: %w", r.Where(), err)
		}
		if !ok {
			return nil, fmt.Errorf("create storage in %s: the bucket has no object lock (S3 Object Lock is enabled when a bucket is created); use a bucket created with it, or no lock", r.Where())
		}
	}
	if err := writeRemoteConfig(dir, c); err != nil {
		return nil, err
	}
	return r, nil
}

func holdsStorage(r Remote) (bool, error) {
	for _, name := range []string{configFile, configCopy} {
		ctx, cancel := remoteCtx()
		_, err := r.Get(ctx, name)
		cancel()
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return false, nil
}

func writeRemoteConfig(dir string, c RemoteConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, remoteFile), append(b, '\n')); err != nil {
		return storageErr("write", filepath.Join(dir, remoteFile), err)
	}
	return nil
}

// RemoteHoldsStorage reports whether the place c describes holds a
// storage already (to be attached, not created).
func RemoteHoldsStorage(c RemoteConfig) (bool, error) {
	r, err := openRemote(c)
	if err != nil {
		return false, err
	}
	return holdsStorage(r)
}

// Attach makes dir (empty, or holding nothing of a storage) the local
// directory of the storage in object storage c describes: opening it then
// builds the index from the packs there.
func Attach(dir string, c RemoteConfig) error {
	if Exists(dir) {
		return fmt.Errorf("attach storage at %s: a storage is there already", dir)
	}
	r, err := openRemote(c)
	if err != nil {
		return err
	}
	held, err := holdsStorage(r)
	if err != nil {
		return fmt.Errorf("attach storage in %s: %w", r.Where(), err)
	}
	if !held {
		return fmt.Errorf("attach storage in %s: %w", r.Where(), ErrNotVault)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return storageErr("attach storage", dir, err)
	}
	return writeRemoteConfig(dir, c)
}

// Location says where an object-storage storage's packs are and how they
// are locked ("" for a local storage).
func (v *Vault) Location() string {
	if v.remote == nil {
		return ""
	}
	w := v.remote.Where()
	if l := v.remoteCfg.Lock; l != nil {
		w += fmt.Sprintf(", each object locked %d days (%s mode)", l.Days, l.Mode)
	}
	return w
}

func indexPresent(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, indexDir, "MANIFEST"))
	return err == nil
}

// buildLocalIndex builds a missing index from the remote's packs.
func (v *Vault) buildLocalIndex() error {
	if _, err := v.rebuildIndex(); err != nil {
		if v.db != nil {
			v.db.Close()
			v.db = nil
		}
		return err
	}
	if v.codec != nil {
		v.codec.dec.Close()
	}
	err := v.db.Close()
	v.db = nil
	return err
}

// packSetAside marks a damaged pack repair has emptied that stays in the
// remote (objects are not renamed, and a locked one cannot go): known to
// the index, so it is not taken for a stranger, and never read again.
const packSetAside = "set-aside"

// setAsideRemote sets aside a damaged uploaded pack: it reports whether
// the pack is not in the remote at all (then its record can go).
func (v *Vault) setAsideRemote(pack string) (gone bool, err error) {
	ctx, cancel := remoteCtx()
	defer cancel()
	err = v.remote.ReadAt(ctx, packObject(pack), make([]byte, 1), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	rec, _, err := v.packRecordOf(pack)
	if err != nil {
		return false, err
	}
	rec.State = packSetAside
	return false, v.update(func(txn *badger.Txn) error { return putJSON(txn, packKey(pack), rec) })
}

// Seal makes what the storage holds durable where it was asked to be. A
// local storage syncs the pack being written to its disk and keeps writing
// it (a daemon's cycles share packs, not one small pack each); an object
// storage seals it and uploads it with any pack a failed upload left, and
// the next write starts a new pack. A backup run finishes only after Seal
// succeeds.
func (v *Vault) Seal() error {
	if v.readOnly {
		return nil
	}
	if v.remote == nil {
		return v.syncPack()
	}
	if err := v.checkLock(); err != nil {
		return err
	}
	if err := v.closePack(); err != nil {
		return err
	}
	return v.uploadSealedPacks()
}

// refreshMu makes one Refresh at a time per process (a pooled storage is
// shared by the jobs of a daemon).
var refreshMu sync.Mutex

// Refresh adopts the packs other writers of the same object storage (the
// workers of a cluster) have put there since this directory's index last
// looked: each is read once and what it holds joins the index (chunks
// and versions it already knows are kept as they are). After another
// process's prune or repair (a rewrite marker this index has not seen) it
// first drops what the index holds in packs that are gone or set aside,
// and afterwards applies the adopted tombstones and counts every chunk's
// references again (see writers.go). Reports how many packs it adopted.
// A local storage has no other writer: nothing to do.
func (v *Vault) Refresh() (int, error) {
	if v.remote == nil || v.db == nil {
		return 0, nil
	}
	refreshMu.Lock()
	defer refreshMu.Unlock()
	if err := v.checkLock(); err != nil {
		return 0, err
	}
	unseen, setAside, err := v.unseenRewrites()
	if err != nil {
		return 0, err
	}
	listed := map[string]bool{}
	sizes := map[string]int64{}
	if err := v.eachRemotePack(func(pack string, size int64) error {
		listed[pack], sizes[pack] = true, size
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list the packs of %s: %w", v.remote.Where(), err)
	}
	if len(unseen) > 0 {
		gone, err := v.goneOrSetAside(listed, setAside)
		if err != nil {
			return 0, err
		}
		if err := v.dropEntriesIn(gone, setAside); err != nil {
			return 0, fmt.Errorf("take in another process's prune or repair of %s: %w", v.remote.Where(), err)
		}
	}
	known := map[string]bool{}
	if err := v.eachPackRecord(func(pack string, _ packRecord) error {
		known[pack] = true
		return nil
	}); err != nil {
		return 0, err
	}
	var foreign []string
	for pack := range listed {
		if !known[pack] && !setAside[pack] {
			foreign = append(foreign, pack)
		}
	}
	sort.Strings(foreign)
	var foreignBytes int64
	for _, pack := range foreign {
		foreignBytes += sizes[pack]
	}
	// Few new packs (the usual: what the other workers stored since this
	// one's last run) are adopted together, their references counted as
	// they are adopted. Many (a worker back after a long absence) are
	// adopted one at a time, so that memory holds one pack's records, and
	// the references are counted again from the index afterwards; a
	// crash in between leaves that count pending for the next Refresh.
	recount := len(unseen) > 0 || foreignBytes > adoptTogetherBytes
	pending, err := v.recountPending()
	if err != nil {
		return 0, err
	}
	if recount && !pending {
		if err := v.setRecountPending(true); err != nil {
			return 0, err
		}
	}
	tombs := map[string]location{}
	var recs []indexRecord
	packs := map[string]packRecord{}
	adopted := 0
	for _, pack := range foreign {
		r, rec, found, err := v.readForeignPack(pack, sizes[pack], tombs)
		if err != nil {
			return 0, fmt.Errorf("adopt pack %s from %s: %w", short(pack), v.remote.Where(), err)
		}
		if !found {
			continue
		}
		adopted++
		recs, packs[pack] = append(recs, r...), rec
		if recount {
			if err := v.adopt(recs, packs); err != nil {
				return 0, fmt.Errorf("adopt pack %s from %s: %w", short(pack), v.remote.Where(), err)
			}
			recs, packs = recs[:0], map[string]packRecord{}
		}
	}
	if err := v.adopt(recs, packs); err != nil {
		return 0, fmt.Errorf("adopt the packs of %s: %w", v.remote.Where(), err)
	}
	if recount || pending {
		if err := v.applyTombstones(tombs); err != nil {
			return 0, err
		}
		if err := v.recountReferences(); err != nil {
			return 0, err
		}
		if err := v.setRecountPending(false); err != nil {
			return 0, err
		}
	}
	if len(unseen) > 0 {
		if err := v.noteRewritesSeen(unseen); err != nil {
			return 0, err
		}
		// The packs a prune deleted are not missing.
		v.health.MissingPacks, v.health.CutPacks, v.health.UnknownPacks = nil, nil, nil
		if err := v.checkHealth(); err != nil {
			return 0, err
		}
	}
	return adopted, nil
}

// adoptTogetherBytes is how much of other writers' new packs Refresh
// reads into memory to adopt together; beyond it, one pack at a time.
var adoptTogetherBytes int64 = 64 << 20

// keyRecountPending says the chunks' reference counts are to be counted
// again from the versions (adoption one pack at a time was interrupted).
const keyRecountPending = "meta/recount-pending"

func (v *Vault) recountPending() (bool, error) {
	var pending bool
	err := v.getMeta(keyRecountPending, &pending)
	return pending, err
}

func (v *Vault) setRecountPending(on bool) error {
	return v.update(func(txn *badger.Txn) error {
		if !on {
			return txn.Delete([]byte(keyRecountPending))
		}
		return putJSON(txn, []byte(keyRecountPending), true)
	})
}

// readForeignPack reads the index records of a pack another writer
// uploaded, and its tombstones into tombs; found is false when it was
// deleted since it was listed.
func (v *Vault) readForeignPack(pack string, size int64, tombs map[string]location) (recs []indexRecord, rec packRecord, found bool, err error) {
	s, _, err := v.openScan(pack, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, rec, false, nil
	}
	if err != nil {
		return nil, rec, false, err
	}
	defer s.Close()
	rec = packRecord{State: packSealed, Size: size, Uploaded: true}
	err = s.scan(true, func(e entry, payload []byte, perr error) error {
		if perr != nil {
			return nil // verify names it
		}
		rec.ValidEnd = e.end()
		r, ok := v.entryRecord(e, payload)
		switch {
		case !ok:
		case r.tombstone:
			tombs[e.ID] = e.location
		default:
			recs = append(recs, r)
		}
		return nil
	}, func(int64, int64, string) {})
	return recs, rec, err == nil, err
}

// adopt writes the records of other writers' packs into the index, and
// then the packs' own records.
func (v *Vault) adopt(recs []indexRecord, packs map[string]packRecord) error {
	// Chunks first, so that the versions' references find them; the
	// pack's record last, so that a crash before it adopts the pack again
	// (what was adopted is known by then and skipped, with the references
	// it added). Transactions of adoptBatch records stay under Badger's
	// limit on one transaction.
	has := func(txn *badger.Txn, k []byte) (bool, error) {
		_, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	chunks, versions := recs[:0:0], recs[:0:0]
	for _, r := range recs {
		if r.version == nil {
			chunks = append(chunks, r)
		} else {
			versions = append(versions, r)
		}
	}
	for _, group := range [][]indexRecord{chunks, versions} {
		for from := 0; from < len(group); from += adoptBatch {
			batch := group[from:min(from+adoptBatch, len(group))]
			if err := v.update(func(txn *badger.Txn) error {
				for _, r := range batch {
					if ok, err := has(txn, r.key); err != nil || ok {
						if err != nil {
							return err
						}
						continue
					}
					if r.version == nil {
						if err := putJSON(txn, r.key, r.value); err != nil {
							return err
						}
						continue
					}
					if err := adoptVersion(txn, r); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return v.update(func(txn *badger.Txn) error {
		for pack, rec := range packs {
			if err := putJSON(txn, packKey(pack), rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// adoptBatch is how many records one adopting transaction writes.
const adoptBatch = 500

// adoptVersion indexes a version another writer stored, and counts its
// references to the chunks.
func adoptVersion(txn *badger.Txn, r indexRecord) error {
	if err := putJSON(txn, r.key, *r.version); err != nil {
		return err
	}
	if err := txn.Set([]byte(prefixID+r.version.ID), r.key); err != nil {
		return err
	}
	for _, id := range r.version.Chunks {
		c, ok, err := getChunk(txn, id)
		if err != nil {
			return err
		}
		if !ok {
			continue // verify names a version whose chunk is nowhere
		}
		c.Refs++
		if err := putJSON(txn, []byte(prefixChunk+id), c); err != nil {
			return err
		}
	}
	return nil
}
