package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Store keeps secrets encrypted at rest (AES-256-GCM) in a directory, under
// a key of its own created at first use with mode 0600. Each secret is bound
// to its name, so a file copied to another name does not decrypt.
type Store struct{ dir string }

// NewStore keeps secrets under dir.
func NewStore(dir string) *Store { return &Store{dir: dir} }

// ErrNoSecret is returned for a name without a stored secret.
var ErrNoSecret = errors.New("no secret stored")

func (s *Store) key() ([]byte, error) {
	path := filepath.Join(s.dir, "key")
	k, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
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

func (s *Store) file(name string) string {
	return filepath.Join(s.dir, hex.EncodeToString([]byte(name))+".bin")
}

func (s *Store) aead() (cipher.AEAD, error) {
	k, err := s.key()
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Put stores secret under name, replacing any earlier one.
func (s *Store) Put(name string, secret Secret) error {
	g, err := s.aead()
	if err != nil {
		return err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := g.Seal(nonce, nonce, []byte(secret.value), []byte(name))
	tmp := s.file(name) + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("store the secret of %s: %w", name, err)
	}
	return os.Rename(tmp, s.file(name))
}

// Get returns the secret stored under name.
func (s *Store) Get(name string) (Secret, error) {
	b, err := os.ReadFile(s.file(name))
	if errors.Is(err, fs.ErrNotExist) {
		return Secret{}, fmt.Errorf("%w for %s", ErrNoSecret, name)
	}
	if err != nil {
		return Secret{}, fmt.Errorf("read the secret of %s: %w", name, err)
	}
	g, err := s.aead()
	if err != nil {
		return Secret{}, err
	}
	if len(b) < g.NonceSize() {
		return Secret{}, fmt.Errorf("the stored secret of %s is damaged", name)
	}
	plain, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], []byte(name))
	if err != nil {
		return Secret{}, fmt.Errorf("the stored secret of %s does not decrypt (damaged, or another data directory's key)", name)
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
