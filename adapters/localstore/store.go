// Package localstore is the local storage target: a directory the customer
// owns, one file per item version, written atomically. Encryption, dedup and
// retention arrive with the vault; they will wrap this same port.
//
// Layout: ROOT/<mailbox>/<folder levels...>/<xx>/<key>.eml, where every name
// taken from the server is escaped so that a folder called ".." or "a/b"
// cannot leave its mailbox's directory, and <key> is a hash of the folder id,
// item id and change key.
package localstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mailvault/mailvault/domain"
)

// ErrFull means the storage has no space left.
var ErrFull = errors.New("storage is full")

// Store is a local directory target. It is safe for concurrent use.
type Store struct {
	root string
}

// incoming is where items are written before they are renamed into place.
// Whatever is in it when the storage opens was left by a killed process and
// is removed: those items were never recorded as stored.
const incoming = ".incoming"

// Open creates the root directory if needed and clears half-written items.
func Open(root string) (*Store, error) {
	in := filepath.Join(root, incoming)
	if err := os.RemoveAll(in); err != nil {
		return nil, fmt.Errorf("open storage %s: clear %s: %w", root, in, err)
	}
	if err := os.MkdirAll(in, 0o700); err != nil {
		return nil, fmt.Errorf("open storage %s: %w", root, err)
	}
	return &Store{root: root}, nil
}

// Root is the storage directory.
func (s *Store) Root() string { return s.root }

// escape makes a server-chosen name safe as one path element.
func escape(name string) string {
	var b strings.Builder
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '@', c == ' ', c == '+':
			b.WriteByte(c)
		case c == '.' && b.Len() > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "%"
	}
	return b.String()
}

// Path is where the item version is (or would be) stored.
func (s *Store) Path(k domain.ItemKey) string {
	parts := []string{s.root, escape(strings.ToLower(k.Mailbox))}
	for _, level := range strings.Split(k.FolderPath, "/") {
		parts = append(parts, escape(level))
	}
	sum := sha256.Sum256([]byte(k.FolderID + "\x00" + k.ItemID + "\x00" + k.ChangeKey))
	name := hex.EncodeToString(sum[:16])
	parts = append(parts, name[:2], name+".eml")
	return filepath.Join(parts...)
}

// Put stores content under k unless that version is already there. It writes
// to a temporary file and renames it into place, so a killed process leaves
// either the whole item or nothing.
// Existed in the result means the same version was already stored and
// nothing was written.
func (s *Store) Put(k domain.ItemKey, content []byte) (domain.PutResult, error) {
	sum := sha256.Sum256(content)
	res := domain.PutResult{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}
	path := s.Path(k)
	if fi, err := os.Stat(path); err == nil && fi.Size() == res.Size {
		res.Existed = true
		return res, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, storageErr("create folder directory", dir, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(s.root, incoming, hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		os.Remove(tmp)
		return res, storageErr("write item", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return res, storageErr("commit item", path, err)
	}
	return res, nil
}

func storageErr(op, path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s %s: %w: %v", op, path, ErrFull, err)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// Count walks the storage and counts stored item files (for tests and checks).
func (s *Store) Count() (int, error) {
	n := 0
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == incoming {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".eml") {
			n++
		}
		return nil
	})
	return n, err
}
