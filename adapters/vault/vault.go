// Package vault is mailvault's storage: a directory the customer owns that
// keeps every version of every item, split into content-defined chunks that
// are stored once however many mailboxes or runs hold them, compressed with
// zstd and, with a password, sealed with AES-256-GCM.
//
// Layout:
//
//	DIR/vault.json       settings, the wrapped data key, the retention policy
//	DIR/vault.copy.json  the same, so that one damaged file loses nothing
//	DIR/data/xx/ID       pack files: chunks and the records describing every
//	                     item version, each entry with its own header, so
//	                     that the index can be rebuilt from them alone
//	DIR/index/           Badger (encrypted with a key derived from the data
//	                     key): a cache of what the packs hold, for speed
//
// Item content never becomes a path: folder names live only in records and
// the index, so a folder called "../../etc" cannot place anything outside
// DIR.
package vault

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/restic/chunker"

	"github.com/mailvault/mailvault/adapters/badgerdb"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/atomicfile"
)

// ErrFull means the storage has no space left.
var ErrFull = errors.New("storage is full")

// ErrNotVault means the directory holds no mailvault storage.
var ErrNotVault = errors.New("not a mailvault storage")

// ErrLocked means another process has the storage open.
var ErrLocked = badgerdb.ErrLocked

// ErrIndexDamaged means the index cannot be trusted (damaged, lost, or
// not matching the packs). The packs are the truth: repair rebuilds the
// index from them.
var ErrIndexDamaged = errors.New("the storage's index is damaged")

// ErrStorageDamaged means packs the index references are missing or cut
// short: some stored data is gone. Nothing is written into such a storage
// until it is repaired, so that no backup claims to hold what it lost.
var ErrStorageDamaged = errors.New("the storage is damaged")

// ErrReadOnly is returned by writes to a storage opened for reading.
var ErrReadOnly = errors.New("the storage is open for reading only")

const (
	configFile    = "vault.json"
	configCopy    = "vault.copy.json"
	formatVersion = 2
	indexDir      = "index"
	keyEpoch      = "meta/epoch"
)

// Chunking are the content-defined chunking bounds. Messages smaller than
// MinSize are one chunk, so identical messages dedupe whole; in bigger ones
// an attachment shared with another message dedupes by its chunks.
type Chunking struct {
	Polynomial  uint64 `json:"polynomial"`
	MinSize     uint   `json:"min_size"`
	MaxSize     uint   `json:"max_size"`
	AverageBits int    `json:"average_bits"`
}

type encryption struct {
	Cipher   string      `json:"cipher"`
	KDF      KDF         `json:"kdf"`
	Password wrappedKey  `json:"password"`
	Recovery *wrappedKey `json:"recovery,omitempty"`
}

// settings is vault.json.
type settings struct {
	Format      int              `json:"format"`
	ID          string           `json:"id"`
	Created     time.Time        `json:"created"`
	Compression string           `json:"compression"`
	Chunking    Chunking         `json:"chunking"`
	Encryption  *encryption      `json:"encryption,omitempty"`
	Retention   domain.Retention `json:"retention"`
}

// settingsFile is settings with a checksum of itself: a flipped digit in
// the chunker polynomial or a key must not go unnoticed.
type settingsFile struct {
	settings
	Checksum string `json:"checksum"`
}

func (s settings) checksum() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// CreateOptions say how a new storage is made.
type CreateOptions struct {
	// Password protects the storage; nil creates an unencrypted one.
	Password []byte
	// NoCompression stores chunks as they are.
	NoCompression bool
	// KDF overrides DefaultKDF (tests use a cheap one).
	KDF       *KDF
	Retention domain.Retention
	// Remote puts the storage in object storage: DIR keeps its index and
	// the pack being written.
	Remote *RemoteConfig
}

// OpenOptions say how an existing storage is opened.
type OpenOptions struct {
	Password []byte
	// RecoveryKey opens the storage instead of the password.
	RecoveryKey string
	// ReadOnly opens for reading: nothing in the storage changes, not one
	// byte (ls, find, export, restore, verify).
	ReadOnly bool
	// ForCheck opens a storage whose index is damaged or lost (verify,
	// repair): the damage is kept in Health instead of failing the open.
	ForCheck bool
	// Exclusive keeps every other process out of a storage in object
	// storage while this one has it open (prune; repair always does).
	Exclusive bool
}

// Vault is an open storage. It is safe for concurrent use.
type Vault struct {
	dir      string
	set      settings
	readOnly bool
	dataKey  []byte       // nil: not encrypted
	packSize int64        // a pack is sealed when it reaches this size
	db       *badgerdb.DB // nil when the index could not be opened (ForCheck)
	codec    *codec
	pol      chunker.Pol
	packs    packWriter
	epoch    string
	health   Health
	space    badgerdb.SpaceGauge // free space, read from the disk every spaceRecheck bytes
	// remote holds the sealed packs and the settings when the storage is
	// in object storage (remote.json); nil for a local storage.
	remote    Remote
	remoteCfg *RemoteConfig
	// lock is this process's lock object in the remote (nil: local, or
	// a reader the bucket would not let write one).
	lock *storageLock
	// rewriteNoted: this open left its rewrite marker (writers.go).
	rewriteNoted bool
}

// spaceRecheck is how much a storage writes between two free-space
// readings; MinFree leaves room for far more than that.
const spaceRecheck = 8 << 20

// Health is what opening the storage found wrong with it.
type Health struct {
	// Settings are problems with vault.json or its copy (one good copy
	// is enough to open; repair rewrites the other).
	Settings []string
	// Index is why the index cannot be trusted ("" when it can).
	Index string
	// MissingPacks and CutPacks are packs the index knows that are gone or
	// shorter than when they were sealed: data was lost.
	MissingPacks []string
	CutPacks     []string
	// UnknownPacks are pack files the index does not know.
	UnknownPacks []string
}

// Exists reports whether dir holds a storage.
func Exists(dir string) bool {
	for _, f := range []string{configFile, configCopy, remoteFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// Create makes a new storage in dir (which must not hold one) and opens it.
// With a password it returns the recovery key, to be shown once.
func Create(dir string, o CreateOptions) (v *Vault, recoveryKey string, err error) {
	if Exists(dir) {
		return nil, "", fmt.Errorf("create storage %s: a storage exists there already", dir)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "data")); err == nil && len(entries) > 0 {
		return nil, "", fmt.Errorf("create storage %s: it holds pack files but no settings (vault.json): this is a damaged storage, not an empty directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", storageErr("create storage", dir, err)
	}
	var remote Remote
	if o.Remote != nil {
		if remote, err = prepareRemote(dir, *o.Remote); err != nil {
			return nil, "", err
		}
		defer func() {
			if err != nil {
				// Not a storage: nothing of it stays to be taken for one
				// (the bucket got no settings, so a retry starts anew).
				for _, f := range []string{remoteFile, configFile, configCopy, indexDir} {
					os.RemoveAll(filepath.Join(dir, f))
				}
			}
		}()
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return nil, "", err
	}
	s := settings{Format: formatVersion, ID: randomID(8), Created: time.Now().UTC(), Compression: "zstd",
		Chunking: Chunking{Polynomial: uint64(pol), MinSize: 8 << 10, MaxSize: 512 << 10, AverageBits: 14}, Retention: o.Retention}
	if o.NoCompression {
		s.Compression = "none"
	}
	var dataKey []byte
	if o.Password != nil {
		if len(o.Password) == 0 {
			return nil, "", errors.New("create storage: the password is empty")
		}
		kdf := DefaultKDF
		if o.KDF != nil {
			kdf = *o.KDF
		}
		dataKey = make([]byte, 32)
		if _, err := rand.Read(dataKey); err != nil {
			return nil, "", err
		}
		pw, err := wrapWithPassword(kdf, o.Password, dataKey)
		if err != nil {
			return nil, "", err
		}
		raw, printed, err := newRecoveryKey()
		if err != nil {
			return nil, "", err
		}
		nonce, box, err := seal(recoveryKEK(raw), dataKey, keyAAD)
		if err != nil {
			return nil, "", err
		}
		s.Encryption = &encryption{Cipher: "aes-256-gcm", KDF: kdf, Password: pw, Recovery: &wrappedKey{Nonce: nonce, Box: box}}
		recoveryKey = printed
	}
	// The index first: a crash before the settings are written leaves a
	// directory that is not yet a storage, never a storage without index.
	v = &Vault{dir: dir, set: s, dataKey: dataKey, space: badgerdb.SpaceGauge{Dir: dir, Recheck: spaceRecheck}, remote: remote, remoteCfg: o.Remote}
	if err := v.openIndex(dataKey, false, true); err != nil {
		return nil, "", err
	}
	if err := v.update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpoch), []byte(v.epoch)) }); err != nil {
		v.Close()
		return nil, "", storageErr("create storage index", dir, err)
	}
	if err := v.saveSettings(s); err != nil {
		v.Close()
		return nil, "", err
	}
	if remote != nil {
		if err := v.takeLock(false, false); err != nil {
			v.Close()
			return nil, "", fmt.Errorf("create storage %s: %w", dir, err)
		}
	}
	return v, recoveryKey, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Open opens the storage in dir with its password (nil for an unencrypted
// storage) for reading and writing. A wrong password returns
// ErrWrongPassword and changes nothing.
func Open(dir string, password []byte) (*Vault, error) {
	return OpenWith(dir, OpenOptions{Password: password})
}

// OpenWithRecoveryKey opens an encrypted storage with the key printed when
// it was created.
func OpenWithRecoveryKey(dir, recoveryKey string) (*Vault, error) {
	return OpenWith(dir, OpenOptions{RecoveryKey: recoveryKey})
}

// OpenWith opens the storage in dir as o says. A writer refuses a storage
// whose index or packs are damaged (ErrIndexDamaged, ErrStorageDamaged); a
// reader refuses a damaged index (it would list less than there is) but
// reads a storage with missing packs, item by item.
func OpenWith(dir string, o OpenOptions) (*Vault, error) {
	rc, err := readRemoteConfig(dir)
	if err != nil {
		return nil, err
	}
	var remote Remote
	if rc != nil {
		if remote, err = openRemote(*rc); err != nil {
			return nil, fmt.Errorf("open storage %s: %w", dir, err)
		}
		if err := pullSettings(dir, remote); err != nil {
			return nil, fmt.Errorf("open storage %s: %w", dir, err)
		}
	}
	s, problems, interrupted, err := readSettings(dir)
	if err != nil {
		return nil, err
	}
	var dataKey []byte
	if s.Encryption != nil {
		switch {
		case o.RecoveryKey != "":
			if s.Encryption.Recovery == nil {
				return nil, fmt.Errorf("open storage %s: it has no recovery key", dir)
			}
			raw, err := parseRecoveryKey(o.RecoveryKey)
			if err != nil {
				return nil, err
			}
			if dataKey, err = s.Encryption.Recovery.unwrap(recoveryKEK(raw)); err != nil {
				return nil, fmt.Errorf("open storage %s: wrong recovery key: %w", dir, ErrWrongPassword)
			}
		case len(o.Password) == 0:
			return nil, fmt.Errorf("open storage %s: %w", dir, ErrPasswordRequired)
		default:
			if dataKey, err = s.Encryption.Password.unwrap(s.Encryption.KDF.derive(o.Password, s.Encryption.Password.Salt)); err != nil {
				return nil, fmt.Errorf("open storage %s: %w", dir, err)
			}
		}
	} else if o.RecoveryKey != "" {
		return nil, fmt.Errorf("open storage %s: it is not encrypted and has no recovery key", dir)
	}
	v := &Vault{dir: dir, set: s, readOnly: o.ReadOnly, dataKey: dataKey, space: badgerdb.SpaceGauge{Dir: dir, Recheck: spaceRecheck}, remote: remote, remoteCfg: rc}
	v.health.Settings = problems
	if remote != nil {
		// Before the index is read: what the bucket holds may change
		// under a reader, and under a prune, otherwise.
		if err := v.takeLock(o.Exclusive || o.ForCheck && !o.ReadOnly, o.ReadOnly); err != nil {
			return nil, fmt.Errorf("open storage %s: %w", dir, err)
		}
	}
	opened, err := v.open(o)
	if err != nil {
		v.releaseLock()
		return opened, err
	}
	if interrupted && rc == nil && !o.ReadOnly && !o.ForCheck {
		// A write of the two copies was interrupted (a kill while the
		// storage was created, or its settings changed): the good copy
		// is whole, and a writer finishes the write before it goes on.
		if err := writeSettings(dir, s); err != nil {
			opened.Close()
			return nil, err
		}
		opened.health.Settings = nil
	}
	return opened, nil
}

// open opens the index of a Vault OpenWith made, checks it, and brings it
// up to date with the object storage.
func (v *Vault) open(o OpenOptions) (*Vault, error) {
	dir, remote := v.dir, v.remote
	if remote != nil && !indexPresent(dir) {
		// A new machine (or a lost cache): the packs are the truth, and
		// the index is rebuilt from them before anything else.
		if err := v.buildLocalIndex(); err != nil {
			return nil, fmt.Errorf("open storage %s: build its index from %s: %w", dir, remote.Where(), err)
		}
	}
	// An object storage's index is this directory's cache, not the
	// storage: it is opened for writing even to read, so that what other
	// writers (cluster workers) stored is adopted first (Refresh).
	if err := v.openIndex(v.dataKey, o.ReadOnly && remote == nil, false); err != nil {
		if !o.ForCheck || errors.Is(err, ErrLocked) {
			return nil, err
		}
		v.health.Index = err.Error()
		v.db = nil
		return v, nil
	}
	if err := v.checkHealth(); err != nil {
		v.Close()
		return nil, err
	}
	if remote != nil && v.health.Index == "" {
		if _, err := v.Refresh(); err != nil {
			v.Close()
			return nil, fmt.Errorf("storage %s: %w", dir, err)
		}
		v.health.UnknownPacks = nil
	}
	h := v.health
	switch {
	case o.ForCheck:
	case h.Index != "":
		v.Close()
		return nil, fmt.Errorf("storage %s: %w: %s", dir, ErrIndexDamaged, h.Index)
	case !o.ReadOnly && (len(h.MissingPacks) > 0 || len(h.CutPacks) > 0):
		v.Close()
		return nil, fmt.Errorf("storage %s: %w: %d pack(s) missing, %d cut short; nothing more is written into it until it is repaired", dir, ErrStorageDamaged, len(h.MissingPacks), len(h.CutPacks))
	}
	if !o.ReadOnly && h.Index == "" {
		if err := v.sealLeftoverPacks(); err != nil {
			v.Close()
			return nil, storageErr("seal the packs a killed writer left open", dir, err)
		}
		if err := v.uploadSealedPacks(); err != nil {
			v.Close()
			return nil, fmt.Errorf("storage %s: send up the packs a stopped writer left: %w", dir, err)
		}
	}
	return v, nil
}

// openIndex opens (create: makes) the index. A read-only open of an index
// a killed writer left unfinished falls back to a writer's open, which
// finishes Badger's recovery: nothing of the storage's content changes.
func (v *Vault) openIndex(dataKey []byte, readOnly, create bool) error {
	c, err := newCodec(dataKey, v.set.Compression == "zstd")
	if err != nil {
		return err
	}
	v.codec, v.pol = c, chunker.Pol(v.set.Chunking.Polynomial)
	dir := filepath.Join(v.dir, indexDir)
	if !create {
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
				return fmt.Errorf("storage %s: %w: the index directory is missing", v.dir, ErrIndexDamaged)
			}
		}
	}
	// The table builders' buffers (a memtable's flush buffers its whole
	// table, twice its size at first; a compaction one per table it writes)
	// are Go heap. With 8 MB memtables and tables doubling in size per level
	// they kept the heap at the process's soft limit from a few hundred
	// thousand items on, and the garbage collector ran every few megabytes
	// allocated: at 400,000 items 4,339 collections and a fifth of the CPU.
	// Memtables of 4 MB and tables of 2 MB at every level (more, smaller
	// files) leave room under the limit: 312 collections.
	bo := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithBaseTableSize(2 << 20).
		// Key-value separation: a version's record (a few hundred bytes)
		// goes to the value log once; the LSM tree keeps keys, chunk
		// reference counts and pointers, so its compactions stay small in
		// memory and in bytes rewritten however many items are stored.
		// Prune collects the value log's garbage.
		WithValueThreshold(256).
		WithValueLogFileSize(32 << 20).
		WithNumCompactors(2).
		// No block compression: the LSM tree holds keys and value
		// pointers, which compress little, and a compressing table
		// builder holds each block twice until its table is written.
		WithCompression(options.None).
		WithReadOnly(readOnly)
	bo.TableSizeMultiplier = 1 // see the builders above
	if dataKey != nil {
		// Badger's own encryption at rest: the index holds folder names,
		// subjects and senders, so it is sealed like the chunks.
		bo = bo.WithEncryptionKey(subkey(dataKey, "mailvault index encryption")).WithEncryptionKeyRotationDuration(30 * 24 * time.Hour)
	}
	if !readOnly {
		if err := os.MkdirAll(filepath.Join(v.dir, "data"), 0o700); err != nil {
			return storageErr("open storage", v.dir, err)
		}
	}
	db, err := badgerdb.OpenStrict(bo)
	if readOnly && errors.Is(err, badgerdb.ErrNotClosedCleanly) {
		db, err = badgerdb.OpenStrict(bo.WithReadOnly(false))
	}
	switch {
	case errors.Is(err, badgerdb.ErrLocked):
		return fmt.Errorf("open storage %s: %w", v.dir, ErrLocked)
	case errors.Is(err, badgerdb.ErrDamaged):
		return fmt.Errorf("storage %s: %w: %v", v.dir, ErrIndexDamaged, err)
	case err != nil:
		return storageErr("open storage index", v.dir, err)
	}
	v.db = db
	if create {
		v.epoch = randomID(8)
	}
	return nil
}

// checkHealth compares the index with the pack files: the index must have
// its epoch (an index that lost its files opens empty), know every pack
// file, and every pack it knows must be there, whole. It reads directory
// entries and index records, no data.
func (v *Vault) checkHealth() error {
	h := &v.health
	err := v.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keyEpoch))
		if errors.Is(err, badger.ErrKeyNotFound) {
			h.Index = "it has lost its contents (no epoch record): its files were deleted, replaced or truncated"
			return nil
		}
		if err != nil {
			return err
		}
		b, err := it.ValueCopy(nil)
		v.epoch = string(b)
		return err
	})
	if err != nil {
		h.Index = err.Error()
		return nil
	}
	files := map[string]int64{}
	if err := v.eachPackFile(func(pack string, size int64) error {
		files[pack] = size
		return nil
	}); err != nil {
		return fmt.Errorf("list the packs of %s: %w", v.dir, err)
	}
	known := map[string]bool{}
	err = v.eachPackRecord(func(pack string, rec packRecord) error {
		known[pack] = true
		size, ok := files[pack]
		switch {
		case rec.State == packDoomed || rec.State == packSetAside:
			// Being deleted by a prune that was stopped: nothing references it.
		case !ok:
			h.MissingPacks = append(h.MissingPacks, pack)
		case rec.State == packSealed && size < rec.Size:
			h.CutPacks = append(h.CutPacks, pack)
		}
		return nil
	})
	if err != nil {
		h.Index = err.Error()
		return nil
	}
	for pack := range files {
		if !known[pack] {
			h.UnknownPacks = append(h.UnknownPacks, pack)
		}
	}
	if len(h.UnknownPacks) > 0 && h.Index == "" && v.remote == nil {
		// (In object storage, packs this index does not know are other
		// writers'; OpenWith adopts them.)
		h.Index = fmt.Sprintf("it does not know %d pack file(s) in data/ (for example %s)", len(h.UnknownPacks), h.UnknownPacks[0])
	}
	return nil
}

// Health is what opening the storage found wrong with it.
func (v *Vault) Health() Health { return v.health }

// Close closes the index; a writer seals its pack first.
func (v *Vault) Close() error {
	var perr error
	if !v.readOnly && v.db != nil {
		perr = v.closePack()
	}
	// After the last pack is up: a prune waiting for this process must
	// find everything it stored.
	v.releaseLock()
	if v.codec != nil {
		v.codec.dec.Close()
	}
	if v.db != nil {
		if err := v.db.Close(); err != nil {
			return err
		}
	}
	return perr
}

// Dir is the storage directory.
func (v *Vault) Dir() string { return v.dir }

// ID is the storage's id, made when it was created.
func (v *Vault) ID() string { return v.set.ID }

// Generation names the index's generation: a rebuilt or repaired index
// (which may hold less than before) starts a new one, so the next backup
// lists every folder again and fetches whatever the storage does not hold.
func (v *Vault) Generation() string { return v.epoch }

// Encrypted reports whether the storage has a password.
func (v *Vault) Encrypted() bool { return v.set.Encryption != nil }

// Retention is the storage's retention policy.
func (v *Vault) Retention() domain.Retention { return v.set.Retention }

// SetRetention records a new retention policy; pruning applies it.
func (v *Vault) SetRetention(r domain.Retention) error {
	if v.readOnly {
		return ErrReadOnly
	}
	s := v.set
	s.Retention = r
	return v.saveSettings(s)
}

// ChangePassword re-wraps the data key under a new password; no data is
// rewritten. The old password must be right.
func (v *Vault) ChangePassword(old, next []byte) error {
	if v.set.Encryption == nil {
		return errors.New("this storage is not encrypted; create an encrypted one and copy into it")
	}
	if len(next) == 0 {
		return errors.New("the new password is empty")
	}
	e := *v.set.Encryption
	dataKey, err := e.Password.unwrap(e.KDF.derive(old, e.Password.Salt))
	if err != nil {
		return err
	}
	if e.Password, err = wrapWithPassword(e.KDF, next, dataKey); err != nil {
		return err
	}
	s := v.set
	s.Encryption = &e
	return v.saveSettings(s)
}

// saveSettings writes s locally and, for a storage in object storage,
// there too.
func (v *Vault) saveSettings(s settings) error {
	if err := writeSettings(v.dir, s); err != nil {
		return err
	}
	v.set = s
	return v.pushSettings()
}

// readSettings reads vault.json, or its copy when it is damaged; problems
// name what is wrong with either, and interrupted says that one copy is
// whole and the other missing or older: a write of the two stopped
// between them, not damage.
func readSettings(dir string) (_ settings, problems []string, interrupted bool, _ error) {
	var good []settings
	missing := 0
	for _, name := range []string{configFile, configCopy} {
		s, err := readSettingsFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing++
			problems = append(problems, name+" is missing")
		case err != nil:
			problems = append(problems, err.Error())
		default:
			good = append(good, s)
		}
	}
	switch {
	case missing == 2:
		if entries, err := os.ReadDir(filepath.Join(dir, "data")); err == nil && len(entries) > 0 {
			return settings{}, nil, false, fmt.Errorf("%s: both %s and %s are missing: the storage's settings (and, if it is encrypted, its key) are gone", dir, configFile, configCopy)
		}
		return settings{}, nil, false, fmt.Errorf("%s: %w (no %s)", dir, ErrNotVault, configFile)
	case len(good) == 0:
		return settings{}, nil, false, fmt.Errorf("%s: the storage's settings are damaged in both copies: %v", dir, problems)
	case len(good) == 2 && good[0].checksum() != good[1].checksum():
		// Both check out but differ: a crash between writing the two.
		// vault.json is written last, so it is the newer.
		problems = []string{configCopy + " is older than " + configFile + " (a change was interrupted)"}
		interrupted = true
	case len(good) == 2:
		problems = nil
	case missing == 1:
		interrupted = true
	}
	s := good[0]
	if s.Format != formatVersion {
		return s, nil, false, fmt.Errorf("%s: storage format %d is not supported by this mailvault (it reads format %d)", dir, s.Format, formatVersion)
	}
	if s.Chunking.Polynomial == 0 || s.Chunking.MinSize == 0 || s.Chunking.MaxSize < s.Chunking.MinSize ||
		s.Chunking.MaxSize > maxRecordSize {
		return s, nil, false, fmt.Errorf("%s/%s: bad chunking settings", dir, configFile)
	}
	return s, problems, interrupted, nil
}

func readSettingsFile(path string) (settings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return settings{}, err
	}
	var f settingsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return settings{}, fmt.Errorf("%s is damaged: %v", filepath.Base(path), err)
	}
	if f.settings.checksum() != f.Checksum {
		return settings{}, fmt.Errorf("%s is damaged: its checksum does not match its content", filepath.Base(path))
	}
	// Byte for byte as written: even a changed space is damage.
	if want, err := encodeSettings(f.settings); err != nil || !bytes.Equal(want, b) {
		return settings{}, fmt.Errorf("%s is damaged: it is not as mailvault wrote it", filepath.Base(path))
	}
	return f.settings, nil
}

// writeSettings replaces the copy, then vault.json, each atomically, so
// that a crash during a password change leaves at least one whole record
// of the old or the new key.
func writeSettings(dir string, s settings) error {
	b, err := encodeSettings(s)
	if err != nil {
		return err
	}
	for _, name := range []string{configCopy, configFile} {
		if err := atomicfile.Write(filepath.Join(dir, name), b); err != nil {
			return storageErr("write storage settings", filepath.Join(dir, name), err)
		}
	}
	return nil
}

func encodeSettings(s settings) ([]byte, error) {
	b, err := json.MarshalIndent(settingsFile{settings: s, Checksum: s.checksum()}, "", "  ")
	return append(b, '\n'), err
}

func storageErr(op, path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s %s: %w: %v", op, path, ErrFull, err)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// CheckPassword tells whether password opens the storage in dir, without
// opening its index (which another holder may have open).
func CheckPassword(dir string, password []byte) error {
	s, _, _, err := readSettings(dir)
	if err != nil {
		return err
	}
	if s.Encryption == nil {
		return nil
	}
	if len(password) == 0 {
		return ErrPasswordRequired
	}
	_, err = s.Encryption.Password.unwrap(s.Encryption.KDF.derive(password, s.Encryption.Password.Salt))
	return err
}
