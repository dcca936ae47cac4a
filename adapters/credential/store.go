package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailvault/mailvault/internal/atomicfile"
)

// Store keeps secrets encrypted at rest (AES-256-GCM) in a directory. The
// key comes from outside the directory when one is given (a key file, an
// environment variable, a systemd credential: see Key), so that a copy of
// the data directory does not decrypt them; otherwise from a key of the
// store's own, created at first use with mode 0600 beside the secrets. Each
// secret is bound to its name, so a file copied to another name does not
// decrypt.
type Store struct {
	dir      string
	external Key
}

// NewStore keeps secrets under dir, encrypted under the external key if it
// is given (Key.Given).
func NewStore(dir string, external Key) *Store { return &Store{dir: dir, external: external} }

// ErrNoSecret is returned for a name without a stored secret.
var ErrNoSecret = errors.New("no secret stored")

// ErrKeyNeeded: the store was moved to a key from outside the data
// directory, and that key was not given.
var ErrKeyNeeded = errors.New("the secret store's key is kept outside the data directory and was not given")

// ErrWrongKey: the key given is not the one the store's secrets are under.
var ErrWrongKey = errors.New("the secrets key given is not the one the secret store was encrypted with")

const (
	localKeyFile = "key"
	// keyIDFile names the outside key the store is under: a hash of the
	// key, which says nothing about it but tells the right key from a
	// wrong one before any secret is opened.
	keyIDFile = "key-id"
)

// KeyFileWarning names a loose mode on the store's own key file, or nil.
func (s *Store) KeyFileWarning() error {
	if s.external.Given() {
		return s.external.warning
	}
	return ModeWarning(filepath.Join(s.dir, localKeyFile))
}

func (s *Store) localKey(create bool) ([]byte, error) {
	path := filepath.Join(s.dir, localKeyFile)
	k, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("create the secret store: %w", err)
		}
		k = make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create the secret store key: %w", err)
		}
		if _, err := f.Write(k); err != nil {
			f.Close()
			return nil, fmt.Errorf("write the secret store key: %w", err)
		}
		return k, f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("read the secret store key: %w", err)
	}
	if len(k) != 32 {
		return nil, errors.New("the secret store key is damaged")
	}
	return k, nil
}

// key returns the AES key the store's secrets are under, moving them from
// the store's own key to the outside key the first time one is given.
func (s *Store) key() ([]byte, error) {
	id, err := os.ReadFile(filepath.Join(s.dir, keyIDFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the secret store's key id: %w", err)
	}
	recorded := strings.TrimSpace(string(id))
	if !s.external.Given() {
		if recorded != "" {
			return nil, ErrKeyNeeded
		}
		return s.localKey(true)
	}
	if recorded != "" && recorded != s.external.id() {
		return nil, ErrWrongKey
	}
	if recorded == "" {
		if err := s.moveToExternal(); err != nil {
			return nil, err
		}
	}
	return s.external.aesKey, nil
}

// moveToExternal re-encrypts every secret under the outside key, records
// the key's id, and removes the store's own key, in that order: a move
// cut short is finished by the next one (a secret already moved opens with
// the outside key).
func (s *Store) moveToExternal() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create the secret store: %w", err)
	}
	local, err := s.localKey(false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if local != nil {
		entries, err := os.ReadDir(s.dir)
		if err != nil {
			return fmt.Errorf("read the secret store: %w", err)
		}
		for _, e := range entries {
			hexName, ok := strings.CutSuffix(e.Name(), ".bin")
			raw, herr := hex.DecodeString(hexName)
			if !ok || herr != nil {
				continue
			}
			name := string(raw)
			plain, err := s.open(local, name)
			if err != nil {
				if _, again := s.open(s.external.aesKey, name); again == nil {
					continue // moved by a move cut short
				}
				return fmt.Errorf("move the secret of %s to the outside key: %w", name, err)
			}
			if err := s.seal(s.external.aesKey, name, plain); err != nil {
				return err
			}
		}
	}
	if err := atomicfile.Write(filepath.Join(s.dir, keyIDFile), []byte(s.external.id()+"\n")); err != nil {
		return fmt.Errorf("record the secret store's key id: %w", err)
	}
	if err := os.Remove(filepath.Join(s.dir, localKeyFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the secret store's own key: %w", err)
	}
	return nil
}

func (s *Store) file(name string) string {
	return filepath.Join(s.dir, hex.EncodeToString([]byte(name))+".bin")
}

func aead(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Store) seal(key []byte, name string, plain []byte) error {
	g, err := aead(key)
	if err != nil {
		return err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := g.Seal(nonce, nonce, plain, []byte(name))
	if err := atomicfile.Write(s.file(name), out); err != nil {
		return fmt.Errorf("store the secret of %s: %w", name, err)
	}
	return nil
}

func (s *Store) open(key []byte, name string) ([]byte, error) {
	b, err := os.ReadFile(s.file(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w for %s", ErrNoSecret, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read the secret of %s: %w", name, err)
	}
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(b) < g.NonceSize() {
		return nil, fmt.Errorf("the stored secret of %s is damaged", name)
	}
	plain, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("the stored secret of %s does not decrypt (damaged, or another data directory's key)", name)
	}
	return plain, nil
}

// Put stores secret under name, replacing any earlier one.
func (s *Store) Put(name string, secret Secret) error {
	k, err := s.key()
	if err != nil {
		return err
	}
	return s.seal(k, name, []byte(secret.value))
}

// Get returns the secret stored under name.
func (s *Store) Get(name string) (Secret, error) {
	if _, err := os.Stat(s.file(name)); errors.Is(err, fs.ErrNotExist) {
		return Secret{}, fmt.Errorf("%w for %s", ErrNoSecret, name)
	}
	k, err := s.key()
	if err != nil {
		return Secret{}, err
	}
	plain, err := s.open(k, name)
	if err != nil {
		return Secret{}, err
	}
	return Secret{string(plain)}, nil
}

// Delete removes the secret stored under name.
func (s *Store) Delete(name string) error {
	err := os.Remove(s.file(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Key is the secret store's key material from outside the data directory.
type Key struct {
	aesKey []byte
	from   string // where it came from, for messages
	// warning names a loose mode on the file it was read from.
	warning error
}

// Given reports whether a key was given.
func (k Key) Given() bool { return k.aesKey != nil }

// From says where the key came from (a path or a variable's name).
func (k Key) From() string { return k.from }

func (k Key) id() string {
	sum := sha256.Sum256(append([]byte("mailvault secrets key id\x00"), k.aesKey...))
	return hex.EncodeToString(sum[:12])
}

// Names of the places a key from outside the data directory is looked for.
const (
	KeyFileEnv = "MAILVAULT_SECRETS_KEY_FILE"
	KeyEnv     = "MAILVAULT_SECRETS_KEY"
	// KeyCredential is the systemd credential (LoadCredential= or
	// LoadCredentialEncrypted=) read from $CREDENTIALS_DIRECTORY.
	KeyCredential = "mailvault-secrets-key"
)

// minKeyMaterial: a key is random text of at least this many bytes (for
// example `head -c 32 /dev/urandom | base64`), never a password.
const minKeyMaterial = 32

// FindKey looks for the secret store's key outside the data directory: the
// file named by flagFile, else the file in $MAILVAULT_SECRETS_KEY_FILE,
// else the value of $MAILVAULT_SECRETS_KEY, else the systemd credential
// mailvault-secrets-key. None of them: Key{} (the store keeps its own key).
func FindKey(flagFile string, getenv func(string) string) (Key, error) {
	fromFile := func(path, how string) (Key, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return Key{}, fmt.Errorf("read the secrets key (%s): %w", how, err)
		}
		k, err := keyFrom(b, path)
		if err != nil {
			return Key{}, err
		}
		k.warning = ModeWarning(path)
		return k, nil
	}
	switch {
	case flagFile != "":
		return fromFile(flagFile, "--secrets-key-file")
	case getenv(KeyFileEnv) != "":
		return fromFile(getenv(KeyFileEnv), KeyFileEnv)
	case getenv(KeyEnv) != "":
		return keyFrom([]byte(getenv(KeyEnv)), KeyEnv)
	case getenv("CREDENTIALS_DIRECTORY") != "":
		path := filepath.Join(getenv("CREDENTIALS_DIRECTORY"), KeyCredential)
		if _, err := os.Stat(path); err == nil {
			return fromFile(path, "systemd credential "+KeyCredential)
		}
	}
	return Key{}, nil
}

func keyFrom(material []byte, from string) (Key, error) {
	m := strings.TrimSpace(string(material))
	if len(m) < minKeyMaterial {
		return Key{}, fmt.Errorf("the secrets key from %s is %d bytes: it must be random text of at least %d (for example: head -c 32 /dev/urandom | base64)",
			from, len(m), minKeyMaterial)
	}
	k, err := hkdf.Key(sha256.New, []byte(m), nil, "mailvault secret store v1", 32)
	if err != nil {
		return Key{}, err
	}
	return Key{aesKey: k, from: from}, nil
}

// ErrLooseMode: a file holding a secret can be read by other users.
var ErrLooseMode = errors.New("can be read by other users")

// ModeWarning names a secret-holding file that others than its owner can
// read or write (mode bits beyond 0600), or returns nil.
func ModeWarning(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return fmt.Errorf("%s (mode %04o) %w: chmod 600 %s", path, fi.Mode().Perm(), ErrLooseMode, path)
}

// String keeps the key out of every print.
func (k Key) String() string { return "[secrets key from " + k.from + "]" }

// GoString keeps the key out of %#v.
func (k Key) GoString() string { return k.String() }
