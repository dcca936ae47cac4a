// Package vault is mailvault's storage: a directory the customer owns that
// keeps every version of every item, split into content-defined chunks that
// are stored once however many mailboxes or runs hold them, compressed with
// zstd and, with a password, sealed with AES-256-GCM.
//
// Layout:
//
//	DIR/vault.json   settings, the wrapped data key, the retention policy
//	DIR/index/       Badger (encrypted with a key derived from the data key):
//	                 item versions, chunk reference counts, deletion dates
//	DIR/data/xx/ID   pack files: encoded chunks appended one after another
//
// Item content never becomes a path: folder names live only in the index,
// so a folder called "../../etc" cannot place anything outside DIR.
package vault

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/restic/chunker"

	"github.com/mailvault/mailvault/adapters/badgerdb"
	"github.com/mailvault/mailvault/domain"
)

// ErrFull means the storage has no space left.
var ErrFull = errors.New("storage is full")

// ErrNotVault means the directory holds no mailvault storage.
var ErrNotVault = errors.New("not a mailvault storage")

// ErrLocked means another process has the storage open.
var ErrLocked = badgerdb.ErrLocked

const (
	configFile    = "vault.json"
	formatVersion = 1
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

// CreateOptions say how a new storage is made.
type CreateOptions struct {
	// Password protects the storage; nil creates an unencrypted one.
	Password []byte
	// NoCompression stores chunks as they are.
	NoCompression bool
	// KDF overrides DefaultKDF (tests use a cheap one).
	KDF       *KDF
	Retention domain.Retention
}

// Vault is an open storage. It is safe for concurrent use.
type Vault struct {
	dir   string
	set   settings
	db    *badger.DB
	codec *codec
	pol   chunker.Pol
	packs packWriter
}

// Exists reports whether dir holds a storage.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, configFile))
	return err == nil
}

// Create makes a new storage in dir (which must not hold one) and opens it.
// With a password it returns the recovery key, to be shown once.
func Create(dir string, o CreateOptions) (v *Vault, recoveryKey string, err error) {
	if Exists(dir) {
		return nil, "", fmt.Errorf("create storage %s: a storage exists there already", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", storageErr("create storage", dir, err)
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return nil, "", err
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	s := settings{Format: formatVersion, ID: fmt.Sprintf("%x", id), Created: time.Now().UTC(), Compression: "zstd",
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
	if err := writeSettings(dir, s); err != nil {
		return nil, "", err
	}
	v, err = open(dir, s, dataKey)
	return v, recoveryKey, err
}

// Open opens the storage in dir with its password (nil for an unencrypted
// storage). A wrong password returns ErrWrongPassword and changes nothing.
func Open(dir string, password []byte) (*Vault, error) {
	s, err := readSettings(dir)
	if err != nil {
		return nil, err
	}
	var dataKey []byte
	if s.Encryption != nil {
		if len(password) == 0 {
			return nil, fmt.Errorf("open storage %s: %w", dir, ErrPasswordRequired)
		}
		if dataKey, err = s.Encryption.Password.unwrap(s.Encryption.KDF.derive(password, s.Encryption.Password.Salt)); err != nil {
			return nil, fmt.Errorf("open storage %s: %w", dir, err)
		}
	}
	return open(dir, s, dataKey)
}

// OpenWithRecoveryKey opens an encrypted storage with the key printed when
// it was created.
func OpenWithRecoveryKey(dir, recoveryKey string) (*Vault, error) {
	s, err := readSettings(dir)
	if err != nil {
		return nil, err
	}
	if s.Encryption == nil || s.Encryption.Recovery == nil {
		return nil, fmt.Errorf("open storage %s: it has no recovery key", dir)
	}
	raw, err := parseRecoveryKey(recoveryKey)
	if err != nil {
		return nil, err
	}
	dataKey, err := s.Encryption.Recovery.unwrap(recoveryKEK(raw))
	if err != nil {
		return nil, fmt.Errorf("open storage %s: wrong recovery key: %w", dir, ErrWrongPassword)
	}
	return open(dir, s, dataKey)
}

func open(dir string, s settings, dataKey []byte) (*Vault, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, storageErr("open storage", dir, err)
	}
	bo := badger.DefaultOptions(filepath.Join(dir, "index")).
		WithLogger(nil).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithBaseTableSize(2 << 20).
		WithValueLogFileSize(32 << 20).
		WithNumCompactors(2)
	if dataKey != nil {
		// Badger's own encryption at rest: the index holds folder names,
		// subjects and senders, so it is sealed like the chunks.
		bo = bo.WithEncryptionKey(subkey(dataKey, "mailvault index encryption")).WithEncryptionKeyRotationDuration(30 * 24 * time.Hour)
	}
	db, err := badgerdb.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open storage %s: index: %w", dir, err)
	}
	c, err := newCodec(dataKey, s.Compression == "zstd")
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Vault{dir: dir, set: s, db: db, codec: c, pol: chunker.Pol(s.Chunking.Polynomial)}, nil
}

// Close closes the index.
func (v *Vault) Close() error {
	perr := v.closePack()
	v.codec.dec.Close()
	if err := v.db.Close(); err != nil {
		return err
	}
	return perr
}

// Dir is the storage directory.
func (v *Vault) Dir() string { return v.dir }

// Encrypted reports whether the storage has a password.
func (v *Vault) Encrypted() bool { return v.set.Encryption != nil }

// Retention is the storage's retention policy.
func (v *Vault) Retention() domain.Retention { return v.set.Retention }

// SetRetention records a new retention policy; pruning applies it.
func (v *Vault) SetRetention(r domain.Retention) error {
	s := v.set
	s.Retention = r
	if err := writeSettings(v.dir, s); err != nil {
		return err
	}
	v.set = s
	return nil
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
	if err := writeSettings(v.dir, s); err != nil {
		return err
	}
	v.set = s
	return nil
}

func readSettings(dir string) (settings, error) {
	var s settings
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("%s: %w (no %s)", dir, ErrNotVault, configFile)
	}
	if err != nil {
		return s, fmt.Errorf("read storage settings: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s/%s is damaged: %v", dir, configFile, err)
	}
	if s.Format != formatVersion {
		return s, fmt.Errorf("%s: storage format %d is not supported by this mailvault (it reads format %d)", dir, s.Format, formatVersion)
	}
	if s.Chunking.Polynomial == 0 || s.Chunking.MinSize == 0 || s.Chunking.MaxSize < s.Chunking.MinSize {
		return s, fmt.Errorf("%s/%s is damaged: bad chunking settings", dir, configFile)
	}
	return s, nil
}

// writeSettings replaces vault.json atomically, so that a crash during a
// password change leaves the old or the new key record, never half of one.
func writeSettings(dir string, s settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, configFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return storageErr("write storage settings", tmp, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return storageErr("write storage settings", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return storageErr("write storage settings", tmp, err)
	}
	if err := f.Close(); err != nil {
		return storageErr("write storage settings", tmp, err)
	}
	return os.Rename(tmp, filepath.Join(dir, configFile))
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
	s, err := readSettings(dir)
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
