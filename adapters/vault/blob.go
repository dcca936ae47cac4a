package vault

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// A blob is one encoded chunk or record: "MVB1", a flags byte, then the
// payload: zstd-compressed (records, and chunks of near-random bytes:
// S2-compressed) when that saves space, AES-256-GCM sealed (nonce
// first, the blob's name as additional data, so a sealed blob cannot pass
// for another) when the storage has a password.
const blobMagic = "MVB1"

const (
	flagCompressed = 1 << 0
	flagEncrypted  = 1 << 1
	flagS2         = 1 << 2
)

// ErrDamaged marks a blob or index entry whose content does not check out.
var ErrDamaged = errors.New("damaged")

type codec struct {
	blobKey  []byte // nil: not encrypted
	idKey    []byte // nil: ids are plain SHA-256
	headKey  []byte // seals pack entry headers
	compress bool
	enc      *zstd.Encoder
	dec      *zstd.Decoder
}

func newCodec(dataKey []byte, compress bool) (*codec, error) {
	c := &codec{compress: compress}
	if dataKey != nil {
		c.blobKey = subkey(dataKey, "mailvault blob encryption")
		c.idKey = subkey(dataKey, "mailvault chunk ids")
		c.headKey = subkey(dataKey, "mailvault pack entry headers")
	}
	var err error
	// zstd's fastest level: on the 2-6 KB chunks of a mailbox's items,
	// where its per-call set-up dominates, it takes a seventh less CPU
	// than the default level and wrote fewer bytes on the scale
	// benchmark's tenant; on plain text alone it writes about a tenth more.
	if c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
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

// encode makes a blob of plain, bound to name (a chunk's id, or the name
// of a record).
func (c *codec) encode(name string, plain []byte) ([]byte, error) {
	if !c.compress {
		return c.wrap(name, plain, 0)
	}
	if nearRandom(plain) {
		// Mostly bytes that are compressed already (images, PDFs, Office
		// files: most of a mailbox's bytes). zstd would spend five times
		// S2's CPU on such a chunk to save at most 2.5 % more; S2 still
		// takes the repeats and the text around them.
		return c.wrapS2(name, plain)
	}
	if z := c.enc.EncodeAll(plain, make([]byte, 0, len(plain)/2)); len(z) < len(plain) {
		return c.wrap(name, z, flagCompressed)
	}
	return c.wrap(name, plain, 0)
}

// randomBits is the order-0 entropy, in bits per byte, from which a chunk
// counts as near-random: about half of it text at most, where S2 leaves
// it within 2.5 % of zstd's size (mixes of text and random bytes, 4 to
// 64 KiB), and base64 (6 bits), which neither shrinks, is below it.
const randomBits = 6.5

// nearRandom estimates, from the frequencies of the bytes in up to 8 spans
// of 512 bytes spread over the chunk, whether it is near-random: a few
// microseconds where compressing costs tens.
func nearRandom(b []byte) bool {
	var counts [256]uint32
	n := 0
	if len(b) <= entropySample {
		for _, c := range b {
			counts[c]++
		}
		n = len(b)
	} else {
		const spans = entropySample / entropySpan
		step := (len(b) - entropySpan) / (spans - 1)
		for i := 0; i < spans; i++ {
			for _, c := range b[i*step : i*step+entropySpan] {
				counts[c]++
			}
		}
		n = entropySample
	}
	if n < 256 {
		return false // too few bytes to tell; zstd costs little on them
	}
	// H = log2(n) - sum(k log2 k)/n, from a table: a logarithm per byte
	// value was half of this function's time.
	sum := 0.0
	for _, k := range counts {
		sum += kLog2K[k]
	}
	return math.Log2(float64(n))-sum/float64(n) >= randomBits
}

const entropySpan, entropySample = 512, 8 * 512

// kLog2K[k] is k*log2(k), for every count a sample can hold.
var kLog2K = func() (t [entropySample + 1]float64) {
	for k := 2; k <= entropySample; k++ {
		t[k] = float64(k) * math.Log2(float64(k))
	}
	return t
}()

// encodeRecord makes a blob of a record: a few hundred bytes of JSON, where
// zstd's per-call set-up costs more CPU than the content's own chunk, so
// records take S2, which saves a third of their bytes for a tenth of the CPU.
func (c *codec) encodeRecord(name string, plain []byte) ([]byte, error) {
	if !c.compress {
		return c.wrap(name, plain, 0)
	}
	return c.wrapS2(name, plain)
}

// wrapS2 seals plain S2-compressed, or as it is when S2 does not shrink it.
func (c *codec) wrapS2(name string, plain []byte) ([]byte, error) {
	if z := s2.Encode(nil, plain); len(z) < len(plain) {
		return c.wrap(name, z, flagS2)
	}
	return c.wrap(name, plain, 0)
}

// wrap seals payload (already compressed when flags say so) under name.
func (c *codec) wrap(name string, payload []byte, flags byte) ([]byte, error) {
	out := make([]byte, 0, len(payload)+48)
	if c.blobKey != nil {
		nonce, box, err := seal(c.blobKey, payload, name)
		if err != nil {
			return nil, err
		}
		flags |= flagEncrypted
		out = append(append(append(append(out, blobMagic...), flags), nonce...), box...)
		return out, nil
	}
	return append(append(append(out, blobMagic...), flags), payload...), nil
}

// decodeChunk decodes a chunk's blob and checks that its content hashes
// to its id.
func (c *codec) decodeChunk(id string, raw []byte) ([]byte, error) {
	plain, err := c.decode(id, raw)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", short(id), err)
	}
	if got := c.chunkID(plain); got != id {
		return nil, fmt.Errorf("chunk %s: content hash is %s: %w", short(id), short(got), ErrDamaged)
	}
	return plain, nil
}

// decode opens a blob made under name.
func (c *codec) decode(name string, raw []byte) ([]byte, error) {
	if len(raw) < len(blobMagic)+1 || string(raw[:len(blobMagic)]) != blobMagic {
		return nil, fmt.Errorf("not a mailvault blob: %w", ErrDamaged)
	}
	flags, payload := raw[len(blobMagic)], raw[len(blobMagic)+1:]
	if flags&flagEncrypted != 0 {
		if c.blobKey == nil {
			return nil, fmt.Errorf("encrypted in a storage that is not: %w", ErrDamaged)
		}
		gcm, err := newGCM(c.blobKey)
		if err != nil {
			return nil, err
		}
		if len(payload) < gcm.NonceSize() {
			return nil, fmt.Errorf("cut short: %w", ErrDamaged)
		}
		payload, err = gcm.Open(nil, payload[:gcm.NonceSize()], payload[gcm.NonceSize():], []byte(name))
		if err != nil {
			return nil, fmt.Errorf("authentication failed: %w", ErrDamaged)
		}
	} else if c.blobKey != nil {
		return nil, fmt.Errorf("not encrypted in an encrypted storage: %w", ErrDamaged)
	}
	plain := payload
	switch {
	case flags&flagCompressed != 0 && flags&flagS2 != 0:
		return nil, fmt.Errorf("flags %#x name two compressions: %w", flags, ErrDamaged)
	case flags&flagCompressed != 0:
		var err error
		if plain, err = c.dec.DecodeAll(payload, nil); err != nil {
			return nil, fmt.Errorf("decompress: %v: %w", err, ErrDamaged)
		}
	case flags&flagS2 != 0:
		n, err := s2.DecodedLen(payload)
		if err != nil || n > maxRecordSize {
			return nil, fmt.Errorf("decompress: S2 length %d: %w", n, ErrDamaged)
		}
		if plain, err = s2.Decode(nil, payload); err != nil {
			return nil, fmt.Errorf("decompress: %v: %w", err, ErrDamaged)
		}
	}
	return plain, nil
}

// maxRecordSize bounds an S2 blob's decoded size (a record, or a chunk of
// at most the chunker's 512 KiB), so that a damaged length cannot make a
// reader allocate gigabytes.
const maxRecordSize = 16 << 20

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
