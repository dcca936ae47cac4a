package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// recordDictionarySHA256 pins the dictionary's bytes: records written
// against it need exactly them to be read back.
const recordDictionarySHA256 = "862b705bbc7f135779a9f838d21ae4633fe53913cf4cfe57a9ceb7c09c50c3a7"

func TestRecordDictionaryIsFixed(t *testing.T) {
	sum := sha256.Sum256(recordDictionary)
	if got := hex.EncodeToString(sum[:]); got != recordDictionarySHA256 {
		t.Fatalf("records.zdict changed (sha256 %s): records written against the old one could no longer be read; add a new mark and id instead", got)
	}
}

// A small record of the usual shape compresses several times against the
// dictionary, and reads back as written.
func TestSmallRecordsCompressAgainstTheDictionary(t *testing.T) {
	rec := &Record{Seq: 4711, Topic: "events", UUID: "646842bdf08d5211d23d7916c26e7b5d", Metadata: map[string]string{"run": "20261206T082936-4de2a3"},
		Payload: []byte(`{"type":"folder_completed","schema":2,"id":"6c5f6900ecdd1d1ecf1fab11c432ddb5","run":"20261206T082936-4de2a3","time":"2026-12-06T08:29:36.387191038Z",` +
			`"mailbox":"user000@contoso.test","folder":"Inbox","folder_id":"AAMkAFafcfe9102a015d4d7f3d771f","kind":"mail","pass":"20261206T082936-4de2a3"}`)}
	enc, err := encodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	plain := len(rec.Payload) + 100
	if enc[0] != recordMarkS2Dict || len(enc)*2 > plain {
		t.Fatalf("a %d-byte record is stored in %d bytes (mark %d)", plain, len(enc), enc[0])
	}
	back, err := decodeRecord(eventKey(rec.Seq), enc)
	if err != nil || back.UUID != rec.UUID || !bytes.Equal(back.Payload, rec.Payload) || back.Metadata["run"] != rec.Metadata["run"] {
		t.Fatalf("read back %+v, %v", back, err)
	}
}

// TestBuildRecordDictionary writes records.zdict from the logs named in
// MAILVAULT_RECORD_DICT_FROM (comma-separated data/log directories): a few
// records of each kind of event, spread over each log, with the
// simulators' loopback hosts written as Graph's. It is how the dictionary
// was made; running it again makes a different one, which needs a new
// mark (see recordMarkS2Dict).
func TestBuildRecordDictionary(t *testing.T) {
	from := os.Getenv("MAILVAULT_RECORD_DICT_FROM")
	if from == "" {
		t.Skip("MAILVAULT_RECORD_DICT_FROM is not set")
	}
	byType := map[string][][]byte{}
	typeOf := regexp.MustCompile(`"type":"([a-z_]+)"`)
	for _, dir := range strings.Split(from, ",") {
		l, err := Open(Options{Dir: dir, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		err = l.Scan(All(), 0, func(r Record) error {
			enc, err := encodeRecord(&r)
			if err != nil {
				return err
			}
			plain := enc[5:]
			switch enc[0] {
			case recordMarkS2Dict:
				plain, _ = s2Dict.Decode(nil, enc[5:])
			case recordMarkZstd:
				plain, _ = zstdDecoder.DecodeAll(enc[5:], nil)
			}
			m := typeOf.FindSubmatch(r.Payload)
			if m == nil {
				return nil
			}
			byType[string(m[1])] = append(byType[string(m[1])], plain)
			return nil
		})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	loopback := regexp.MustCompile(`https://127\.0\.0\.1:[0-9]+`)
	// The most frequent kinds last: zstd finds recent matches cheapest.
	types := make([]string, 0, len(byType))
	for k := range byType {
		types = append(types, k)
	}
	sort.Slice(types, func(a, b int) bool { return len(byType[types[a]]) < len(byType[types[b]]) })
	var dict []byte
	for _, k := range types {
		recs := byType[k]
		for i := 0; i < 4 && i < len(recs); i++ {
			r := recs[i*len(recs)/4]
			if len(r) > 2048 {
				continue
			}
			dict = append(dict, loopback.ReplaceAll(r, []byte("https://graph.microsoft.com"))...)
		}
	}
	if len(dict) > 32<<10 {
		dict = dict[len(dict)-32<<10:]
	}
	if err := os.WriteFile("records.zdict", dict, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(dict)
	t.Logf("records.zdict: %d bytes from %d kinds, sha256 %s", len(dict), len(types), hex.EncodeToString(sum[:]))
}
