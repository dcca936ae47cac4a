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

func (v *Vault) blobPath(id string) string {
	return filepath.Join(v.dir, "data", id[:2], id)
}

// writeBlob stores a chunk file atomically: a killed process leaves either
// the whole file or a temporary one that the next open removes.
func (v *Vault) writeBlob(id string, raw []byte) error {
	path := v.blobPath(id)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return storageErr("create blob directory", path, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(v.dir, incoming, hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		os.Remove(tmp)
		return storageErr("write blob", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return storageErr("commit blob", path, err)
	}
	return nil
}

func (v *Vault) readChunk(id string) ([]byte, error) {
	raw, err := os.ReadFile(v.blobPath(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("chunk %s is missing: %w", short(id), ErrDamaged)
		}
		return nil, fmt.Errorf("read chunk %s: %w", short(id), err)
	}
	return v.codec.decode(id, raw)
}
