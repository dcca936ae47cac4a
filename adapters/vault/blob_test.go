package vault

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// Records and chunks take different compressions; each blob names its own
// in its flags, so either decodes in any storage, sealed or not, and a
// blob whose flags or payload do not check out is named damaged.
func TestCodecRoundTripsRecordsAndChunks(t *testing.T) {
	record := bytes.Repeat([]byte(`{"id":"AAMkAGI2","folder":"Inbox","sha256":"00ff"}`), 8)
	chunk := bytes.Repeat([]byte("Subject: hello\r\n\r\nbody text "), 64)
	for _, tc := range []struct {
		name     string
		key      []byte
		compress bool
	}{
		{"plain", nil, false},
		{"compressed", nil, true},
		{"sealed", bytes.Repeat([]byte{7}, 32), false},
		{"sealed and compressed", bytes.Repeat([]byte{7}, 32), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newCodec(tc.key, tc.compress)
			if err != nil {
				t.Fatal(err)
			}
			for _, enc := range []struct {
				what   string
				encode func(string, []byte) ([]byte, error)
				plain  []byte
			}{{"record", c.encodeRecord, record}, {"chunk", c.encode, chunk}} {
				raw, err := enc.encode("name-1", enc.plain)
				if err != nil {
					t.Fatal(err)
				}
				if tc.compress && tc.key == nil && len(raw) >= len(enc.plain) {
					t.Errorf("%s: %d bytes encoded from %d: not compressed", enc.what, len(raw), len(enc.plain))
				}
				got, err := c.decode("name-1", raw)
				if err != nil || !bytes.Equal(got, enc.plain) {
					t.Fatalf("%s: decode = %d bytes, %v", enc.what, len(got), err)
				}
				if tc.key != nil {
					if _, err := c.decode("name-2", raw); !errors.Is(err, ErrDamaged) {
						t.Errorf("%s: decoded under another name: %v", enc.what, err)
					}
				}
			}
		})
	}
}

func TestCodecNamesBadCompressionDamaged(t *testing.T) {
	c, err := newCodec(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{
		"both compressions": append([]byte(blobMagic), flagCompressed|flagS2, 1, 2, 3),
		"s2 garbage":        append([]byte(blobMagic), flagS2, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"zstd garbage":      append([]byte(blobMagic), flagCompressed, 1, 2, 3, 4),
	} {
		if _, err := c.decode("x", raw); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: err = %v, want ErrDamaged", name, err)
		}
	}
}

// A chunk of near-random bytes (an attachment compressed already) takes
// S2, or no compression when nothing shrinks it; text, base64 and a chunk
// with two thirds of text take zstd. Each decodes to what went in.
func TestCodecCompressesChunksByWhatTheyHold(t *testing.T) {
	random := func(n int, seed uint64) []byte {
		r := rand.New(rand.NewPCG(seed, 1))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		words := strings.Fields("the quarterly budget review meeting moved to Thursday please bring the project report")
		var b []byte
		for i := 0; len(b) < n; i++ {
			b = append(append(b, words[i*7%len(words)]...), ' ')
		}
		return b[:n]
	}
	mix := func(textShare float64, n int) []byte {
		t := int(textShare * float64(n))
		return append(text(t), random(n-t, 3)...)
	}
	repeated := bytes.Repeat(random(2048, 4), 8) // near-random bytes, but the same twice and more
	const zstdTried = 0xff                       // zstd, or nothing if it did not shrink the chunk
	c, err := newCodec(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plain []byte
		flags byte
	}{
		{"text", text(20000), flagCompressed},
		// zstd is tried (this zstd finds nothing to take from it, either).
		{"base64 of random bytes", []byte(base64.StdEncoding.EncodeToString(random(15000, 5))), zstdTried},
		{"two thirds text", mix(0.67, 20000), flagCompressed},
		{"a tenth text", mix(0.1, 20000), flagS2},
		{"random", random(20000, 6), 0},
		{"random, big (sampled)", random(600000, 7), 0},
		{"random, repeated", repeated, flagS2},
		{"a tenth text, big (sampled)", mix(0.1, 400000), flagS2},
		{"too short to tell", random(200, 8), zstdTried},
	} {
		raw, err := c.encode("n", tc.plain)
		if err != nil {
			t.Fatal(err)
		}
		got := raw[len(blobMagic)]
		if tc.flags == zstdTried {
			if got&flagS2 != 0 {
				t.Errorf("%s: S2, not zstd", tc.name)
			}
		} else if got != tc.flags {
			t.Errorf("%s: flags %#x, want %#x (%d bytes from %d)", tc.name, got, tc.flags, len(raw), len(tc.plain))
		}
		back, err := c.decode("n", raw)
		if err != nil || !bytes.Equal(back, tc.plain) {
			t.Fatalf("%s: decode = %d bytes, %v", tc.name, len(back), err)
		}
	}
}
