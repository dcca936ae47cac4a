package vault

import (
	"bytes"
	"errors"
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
