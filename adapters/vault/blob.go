package vault

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A blob file holds one chunk: "MVB1", a flags byte, then the payload —
// zstd-compressed when that saves space, AES-256-GCM sealed (nonce first,
// the chunk id as additional data) when the storage has a password.
const blobMagic = "MVB1"

const (
	flagCompressed = 1 << 0
	flagEncrypted  = 1 << 1
)

// ErrDamaged marks a blob or index entry whose content does not check out.
var ErrDamaged = errors.New("damaged")

type codec struct {
	blobKey  []byte // nil: not encrypted
	idKey    []byte // nil: ids are plain SHA-256
	compress bool
	enc      *zstd.Encoder
	dec      *zstd.Decoder
}

func newCodec(dataKey []byte, compress bool) (*codec, error) {
	c := &codec{compress: compress}
	if dataKey != nil {
		c.blobKey = subkey(dataKey, "mailvault blob encryption")
		c.idKey = subkey(dataKey, "mailvault chunk ids")
	}
	var err error
	if c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1)); err != nil {
		return nil, err
	}
	if c.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20)); err != nil {
		return nil, err
	}
	return c, nil
}

// chunkID addresses a chunk by its content. With a password the id is a
// keyed hash, so the storage does not reveal which known files it holds.
func (c *codec) chunkID(plain []byte) string {
	if c.idKey == nil {
		sum := sha256.Sum256(plain)
		return hex.EncodeToString(sum[:])
	}
	m := hmac.New(sha256.New, c.idKey)
	m.Write(plain)
	return hex.EncodeToString(m.Sum(nil))
}

func (c *codec) encode(id string, plain []byte) ([]byte, error) {
	var flags byte
	payload := plain
	if c.compress {
		if z := c.enc.EncodeAll(plain, make([]byte, 0, len(plain)/2)); len(z) < len(plain) {
			payload, flags = z, flags|flagCompressed
		}
	}
	out := make([]byte, 0, len(payload)+48)
	if c.blobKey != nil {
		nonce, box, err := seal(c.blobKey, payload, id)
		if err != nil {
			return nil, err
		}
		flags |= flagEncrypted
		out = append(append(append(append(out, blobMagic...), flags), nonce...), box...)
		return out, nil
	}
	return append(append(append(out, blobMagic...), flags), payload...), nil
}

func (c *codec) decode(id string, raw []byte) ([]byte, error) {
	if len(raw) < len(blobMagic)+1 || string(raw[:len(blobMagic)]) != blobMagic {
		return nil, fmt.Errorf("chunk %s: not a mailvault blob: %w", short(id), ErrDamaged)
	}
	flags, payload := raw[len(blobMagic)], raw[len(blobMagic)+1:]
	if flags&flagEncrypted != 0 {
		if c.blobKey == nil {
			return nil, fmt.Errorf("chunk %s is encrypted but the storage is not", short(id))
		}
		gcm, err := newGCM(c.blobKey)
		if err != nil {
			return nil, err
		}
		if len(payload) < gcm.NonceSize() {
			return nil, fmt.Errorf("chunk %s: truncated: %w", short(id), ErrDamaged)
		}
		payload, err = gcm.Open(nil, payload[:gcm.NonceSize()], payload[gcm.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("chunk %s: authentication failed: %w", short(id), ErrDamaged)
		}
	} else if c.blobKey != nil {
		return nil, fmt.Errorf("chunk %s is not encrypted in an encrypted storage: %w", short(id), ErrDamaged)
	}
	plain := payload
	if flags&flagCompressed != 0 {
		var err error
		if plain, err = c.dec.DecodeAll(payload, nil); err != nil {
			return nil, fmt.Errorf("chunk %s: decompress: %v: %w", short(id), err, ErrDamaged)
		}
	}
	if got := c.chunkID(plain); got != id {
		return nil, fmt.Errorf("chunk %s: content hash is %s: %w", short(id), short(got), ErrDamaged)
	}
	return plain, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Chunks are appended to pack files, as restic does: a file per chunk would
// make the file system, not the disk, the limit (creating a file costs far
// more than appending 20 KB). A pack is named by a random id and written by
// one open storage at a time; it grows to packTarget, then the next starts.
// A crash leaves at worst a torn tail no index entry references.
const packTarget = 32 << 20

func (v *Vault) packPath(pack string) string {
	return filepath.Join(v.dir, "data", pack[:2], pack)
}

type packWriter struct {
	mu   sync.Mutex
	f    *os.File
	id   string
	size int64
}

// appendChunk writes an encoded chunk to the current pack.
func (v *Vault) appendChunk(raw []byte) (pack string, off int64, err error) {
	w := &v.packs
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil || w.size >= packTarget {
		if w.f != nil {
			w.f.Close()
			w.f = nil
		}
		var rnd [16]byte
		_, _ = rand.Read(rnd[:])
		id := hex.EncodeToString(rnd[:])
		path := v.packPath(id)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", 0, storageErr("create pack directory", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			return "", 0, storageErr("create pack", path, err)
		}
		w.f, w.id, w.size = f, id, 0
	}
	if _, err := w.f.Write(raw); err != nil {
		// The pack's tail is now unknown: start a new one next time.
		w.f.Close()
		w.f = nil
		return "", 0, storageErr("write pack", v.packPath(w.id), err)
	}
	off = w.size
	w.size += int64(len(raw))
	return w.id, off, nil
}

func (v *Vault) closePack() error {
	v.packs.mu.Lock()
	defer v.packs.mu.Unlock()
	if v.packs.f == nil {
		return nil
	}
	err := v.packs.f.Close()
	v.packs.f = nil
	return err
}

// currentPack is the pack being written, which prune must not remove.
func (v *Vault) currentPack() string {
	v.packs.mu.Lock()
	defer v.packs.mu.Unlock()
	if v.packs.f == nil {
		return ""
	}
	return v.packs.id
}

// readRaw reads a chunk's encoded bytes from its pack.
func (v *Vault) readRaw(id string, rec chunkRecord) ([]byte, error) {
	f, err := os.Open(v.packPath(rec.Pack))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("chunk %s: pack %s is missing: %w", short(id), short(rec.Pack), ErrDamaged)
		}
		return nil, fmt.Errorf("read chunk %s: %w", short(id), err)
	}
	defer f.Close()
	raw := make([]byte, rec.Stored)
	if _, err := f.ReadAt(raw, rec.Offset); err != nil {
		return nil, fmt.Errorf("chunk %s: pack %s is cut short at %d: %w", short(id), short(rec.Pack), rec.Offset, ErrDamaged)
	}
	return raw, nil
}

func (v *Vault) readChunk(id string) ([]byte, error) {
	rec, ok, err := v.chunk(id)
	if err != nil {
		return nil, err
	}
	if !ok || rec.Refs <= 0 {
		return nil, fmt.Errorf("chunk %s is not in the index: %w", short(id), ErrDamaged)
	}
	raw, err := v.readRaw(id, rec)
	if err != nil {
		return nil, err
	}
	plain, err := v.codec.decode(id, raw)
	if err != nil {
		return nil, fmt.Errorf("%w (pack %s, offset %d)", err, rec.Pack, rec.Offset)
	}
	return plain, nil
}
