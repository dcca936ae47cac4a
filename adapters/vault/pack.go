package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Pack files hold everything the storage keeps, so that the index is a
// cache that can be rebuilt from them alone (restic's design): the encoded
// chunks, a record of every item version (mailbox, folder, ids, format,
// size, hash, times, chunk list), deletion marks, and tombstones of the
// versions prune removed. Every entry carries its own header:
//
//	"MVE2"          entry marker: past damage, a reader finds the next entry
//	header length   2 bytes, big-endian
//	header          type (1) | payload length (4) | payload CRC-32C (4) |
//	                plain size (4: a chunk's size before encoding) |
//	                id length (1) | id, then the CRC-32C of those bytes;
//	                with a password the fields are sealed instead
//	                (AES-256-GCM, nonce first, the pack's id as additional
//	                data), so folder names and ids stay unreadable
//	payload
//
// A pack is named by a random id, registered in the index before its first
// entry is written, appended to by one open storage at a time, and sealed
// (its size recorded in the index) when it reaches packTarget or the
// storage closes. Chunks go to packs rather than a file each because
// creating files, not writing bytes, was the limit (15 MB/s).
const (
	entryMagic = "MVE2"
	packTarget = 32 << 20
	maxHeader  = 1024
	// entryOverhead bounds marker, length and header of an entry.
	entryOverhead = 6 + maxHeader
)

type entryType byte

const (
	entryChunk     entryType = 1 // an encoded chunk; id: the chunk id
	entryItem      entryType = 2 // a version record; id: the version id
	entryDeletion  entryType = 3 // a deletion mark; id: the item's key hash
	entryTombstone entryType = 4 // a version prune removed; id: the version id
)

func (t entryType) String() string {
	switch t {
	case entryChunk:
		return "chunk"
	case entryItem:
		return "item record"
	case entryDeletion:
		return "deletion mark"
	case entryTombstone:
		return "tombstone"
	}
	return fmt.Sprintf("entry type %d", byte(t))
}

// location is where a payload lies: pack, offset and length.
type location struct {
	Pack   string `json:"pack"`
	Offset int64  `json:"off"`
	Length int64  `json:"len"`
}

func (l location) end() int64 { return l.Offset + l.Length }

// entry is one entry of a pack as its header describes it.
type entry struct {
	Type  entryType
	ID    string
	Start int64 // the entry marker's offset
	location
	CRC   uint32
	Plain int64 // a chunk's size before encoding
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (c *codec) header(pack string, typ entryType, id string, plain int, payload []byte) ([]byte, error) {
	if len(id) > 255 {
		return nil, fmt.Errorf("entry id %q is too long", id)
	}
	h := make([]byte, 0, 14+len(id)+4)
	h = append(h, byte(typ))
	h = binary.BigEndian.AppendUint32(h, uint32(len(payload)))
	h = binary.BigEndian.AppendUint32(h, crc32.Checksum(payload, castagnoli))
	h = binary.BigEndian.AppendUint32(h, uint32(plain))
	h = append(h, byte(len(id)))
	h = append(h, id...)
	if c.headKey == nil {
		return binary.BigEndian.AppendUint32(h, crc32.Checksum(h, castagnoli)), nil
	}
	nonce, box, err := seal(c.headKey, h, "mailvault pack entry\x00"+pack)
	if err != nil {
		return nil, err
	}
	return append(nonce, box...), nil
}

// parseHeader reads a header written by header into e (type, id, payload
// length and checksum, plain size).
func (c *codec) parseHeader(pack string, h []byte, e *entry) error {
	bad := errors.New("its header does not check out")
	if c.headKey == nil {
		if len(h) < 18 || crc32.Checksum(h[:len(h)-4], castagnoli) != binary.BigEndian.Uint32(h[len(h)-4:]) {
			return bad
		}
		h = h[:len(h)-4]
	} else {
		gcm, err := newGCM(c.headKey)
		if err != nil {
			return err
		}
		if len(h) < gcm.NonceSize()+gcm.Overhead()+14 {
			return bad
		}
		plain, err := gcm.Open(nil, h[:gcm.NonceSize()], h[gcm.NonceSize():], []byte("mailvault pack entry\x00"+pack))
		if err != nil {
			return bad
		}
		h = plain
	}
	if len(h) < 14 || int(h[13]) != len(h)-14 {
		return bad
	}
	e.Type, e.ID = entryType(h[0]), string(h[14:])
	e.Length, e.CRC, e.Plain = int64(binary.BigEndian.Uint32(h[1:5])), binary.BigEndian.Uint32(h[5:9]), int64(binary.BigEndian.Uint32(h[9:13]))
	return nil
}

func (v *Vault) packLimit() int64 {
	if v.packSize > 0 {
		return v.packSize
	}
	return packTargetFromEnv()
}

// packTargetFromEnv is packTarget, or MAILVAULT_PACK_BYTES (at least 64
// KiB) where it is set: smaller packs go up to object storage sooner (and
// let tests see many uploads in a small backup).
var packTargetFromEnv = sync.OnceValue(func() int64 {
	if n, err := strconv.ParseInt(os.Getenv("MAILVAULT_PACK_BYTES"), 10, 64); err == nil && n >= 64<<10 {
		return n
	}
	return packTarget
})

func (v *Vault) packPath(pack string) string {
	if len(pack) < 2 {
		return filepath.Join(v.dir, "data", "__", pack)
	}
	return filepath.Join(v.dir, "data", pack[:2], pack)
}

// packRecord is what the index knows of a pack file.
type packRecord struct {
	State string `json:"state"` // packOpen or packSealed
	// Size is a sealed pack's length; ValidEnd where its last complete
	// entry ends (a killed writer leaves a torn tail after it, which
	// holds nothing the index references).
	Size     int64 `json:"size,omitempty"`
	ValidEnd int64 `json:"valid_end,omitempty"`
	// Uploaded: the pack is in the remote (object storage), not local;
	// Version is its object version there, RetainUntil when its lock
	// expires (zero: unlocked, or unknown after an index rebuild).
	Uploaded    bool      `json:"uploaded,omitempty"`
	Version     string    `json:"version,omitempty"`
	RetainUntil time.Time `json:"retain_until,omitzero"`
}

const (
	packOpen   = "open"
	packSealed = "sealed"
)

type packWriter struct {
	mu   sync.Mutex
	f    *os.File
	id   string
	size int64 // the pack's length, buffered entries included
	// pending are entries added by bufferEntry and not yet written; the
	// pack's file holds size-len(pending) bytes.
	pending []byte
}

// pendingLimit is how much bufferEntry holds before it writes.
const pendingLimit = 1 << 20

// appendEntry writes one entry to the current pack, starting a new pack
// when there is none or the current one is full.
func (v *Vault) appendEntry(typ entryType, id string, plain int, payload []byte) (location, error) {
	return v.addEntry(typ, id, plain, payload, true)
}

// bufferEntry is appendEntry for a batch: the entry joins the pack's
// buffer, written at flushEntries (or when the buffer fills, or with the
// next appendEntry), so that a batch of items costs a write, not two per
// item. Nothing that refers to a buffered entry may be committed to the
// index before flushEntries has returned.
func (v *Vault) bufferEntry(typ entryType, id string, plain int, payload []byte) (location, error) {
	return v.addEntry(typ, id, plain, payload, false)
}

func (v *Vault) addEntry(typ entryType, id string, plain int, payload []byte, write bool) (location, error) {
	w := &v.packs
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil || w.size >= v.packLimit() {
		if err := v.startPack(); err != nil {
			return location{}, err
		}
	}
	h, err := v.codec.header(w.id, typ, id, plain, payload)
	if err != nil {
		return location{}, err
	}
	start := len(w.pending)
	w.pending = append(w.pending, entryMagic...)
	w.pending = binary.BigEndian.AppendUint16(w.pending, uint16(len(h)))
	w.pending = append(w.pending, h...)
	loc := location{Pack: w.id, Offset: w.size + int64(len(w.pending)-start), Length: int64(len(payload))}
	w.pending = append(w.pending, payload...)
	w.size += int64(len(w.pending) - start)
	if write || len(w.pending) >= pendingLimit {
		if err := v.writePending(); err != nil {
			return location{}, err
		}
	}
	return loc, nil
}

// flushEntries writes the entries bufferEntry holds.
func (v *Vault) flushEntries() error {
	v.packs.mu.Lock()
	defer v.packs.mu.Unlock()
	return v.writePending()
}

// writePending writes the buffered entries. Callers hold packs.mu.
func (v *Vault) writePending() error {
	w := &v.packs
	if len(w.pending) == 0 || w.f == nil {
		return nil
	}
	_, err := w.f.Write(w.pending)
	if err != nil {
		// The pack's tail is now unknown: seal it where it was whole.
		w.size -= int64(len(w.pending))
		w.pending = w.pending[:0]
		path := v.packPath(w.id)
		v.endPack()
		return storageErr("write pack", path, err)
	}
	w.pending = w.pending[:0]
	if cap(w.pending) > 2*pendingLimit {
		w.pending = nil // one large entry need not stay held
	}
	return nil
}

// startPack seals the current pack and starts a new one, registered in the
// index before anything is written to it. Callers hold packs.mu.
func (v *Vault) startPack() error {
	if err := v.endPack(); err != nil {
		return err
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	id := hex.EncodeToString(rnd[:])
	path := v.packPath(id)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return storageErr("create pack directory", path, err)
	}
	if err := v.update(func(txn *badger.Txn) error {
		return putJSON(txn, packKey(id), packRecord{State: packOpen})
	}); err != nil {
		return storageErr("register pack", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return storageErr("create pack", path, err)
	}
	v.packs.f, v.packs.id, v.packs.size = f, id, 0
	return nil
}

// endPack closes the current pack and records it sealed. Callers hold
// packs.mu.
func (v *Vault) endPack() error {
	w := &v.packs
	if w.f == nil {
		return nil
	}
	if err := v.writePending(); err != nil {
		return err // writePending sealed the pack where it was whole
	}
	serr := w.f.Sync()
	cerr := w.f.Close()
	w.f = nil
	info, err := os.Stat(v.packPath(w.id))
	size := w.size
	if err == nil {
		size = info.Size()
	}
	rec := packRecord{State: packSealed, Size: size, ValidEnd: w.size}
	if err := v.update(func(txn *badger.Txn) error { return putJSON(txn, packKey(w.id), rec) }); err != nil {
		return storageErr("seal pack", v.packPath(w.id), err)
	}
	if serr != nil {
		return storageErr("sync pack", v.packPath(w.id), serr)
	}
	if cerr != nil {
		return cerr
	}
	if v.remote != nil {
		// A failed upload leaves the pack sealed and local: it goes up at
		// the next close or open, and this write fails, so no run says it
		// finished while its data is not where it was asked to be.
		return v.uploadPack(w.id, rec)
	}
	return nil
}

// syncPack writes the buffered entries and syncs the pack being written.
func (v *Vault) syncPack() error {
	v.packs.mu.Lock()
	defer v.packs.mu.Unlock()
	if err := v.writePending(); err != nil {
		return err
	}
	if v.packs.f == nil {
		return nil
	}
	if err := v.packs.f.Sync(); err != nil {
		return storageErr("sync pack", v.packPath(v.packs.id), err)
	}
	return nil
}

func (v *Vault) closePack() error {
	v.packs.mu.Lock()
	defer v.packs.mu.Unlock()
	return v.endPack()
}

// currentPack is the pack being written, which prune must not touch.
func (v *Vault) currentPack() string {
	v.packs.mu.Lock()
	defer v.packs.mu.Unlock()
	if v.packs.f == nil {
		return ""
	}
	return v.packs.id
}

// readPayload reads the bytes at loc.
func (v *Vault) readPayload(loc location) ([]byte, error) {
	f, err := os.Open(v.packPath(loc.Pack))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && v.remote != nil {
			return v.readRemotePayload(loc)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pack %s is missing: %w", short(loc.Pack), ErrDamaged)
		}
		return nil, fmt.Errorf("read pack %s: %w", short(loc.Pack), err)
	}
	defer f.Close()
	raw := make([]byte, loc.Length)
	if _, err := f.ReadAt(raw, loc.Offset); err != nil {
		return nil, fmt.Errorf("pack %s is cut short at %d: %w", short(loc.Pack), loc.Offset, ErrDamaged)
	}
	return raw, nil
}

// packScan reads the entries of one pack file.
type packScan struct {
	v    *Vault
	f    *os.File
	pack string
	end  int64 // where to stop: the file's size, or a sealed pack's valid end
	// remote: f is a downloaded copy of an uploaded pack.
	remote bool
}

func (v *Vault) openScan(pack string, limit int64) (*packScan, int64, error) {
	f, err := os.Open(v.packPath(pack))
	remote := false
	if errors.Is(err, fs.ErrNotExist) && v.remote != nil {
		f, err = v.downloadPack(pack)
		remote = true
	}
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	end := info.Size()
	if limit > 0 && limit < end {
		end = limit
	}
	return &packScan{v: v, f: f, pack: pack, end: end, remote: remote}, info.Size(), nil
}

func (s *packScan) Close() error { return s.f.Close() }

// at reads the entry whose marker is at pos; problem says why there is none.
func (s *packScan) at(pos int64) (e entry, problem string) {
	var pre [6]byte
	if pos+6 > s.end {
		return e, "cut short"
	}
	if _, err := s.f.ReadAt(pre[:], pos); err != nil {
		return e, "unreadable: " + err.Error()
	}
	if string(pre[:4]) != entryMagic {
		return e, "no entry marker where an entry should start"
	}
	hlen := int64(binary.BigEndian.Uint16(pre[4:]))
	if hlen > maxHeader {
		return e, "entry header length is damaged"
	}
	if pos+6+hlen > s.end {
		return e, "cut short"
	}
	h := make([]byte, hlen)
	if _, err := s.f.ReadAt(h, pos+6); err != nil {
		return e, "unreadable: " + err.Error()
	}
	if err := s.v.codec.parseHeader(s.pack, h, &e); err != nil {
		return entry{}, "entry " + err.Error()
	}
	e.Start, e.Pack, e.Offset = pos, s.pack, pos+6+hlen
	if e.end() > s.end {
		return e, "cut short: an entry runs past the end of the file"
	}
	return e, ""
}

// next finds the first entry at or after from whose header checks out.
func (s *packScan) next(from int64) int64 {
	buf := make([]byte, 1<<20)
	for pos := from; pos < s.end; {
		n, _ := s.f.ReadAt(buf[:min(int64(len(buf)), s.end-pos)], pos)
		if n < len(entryMagic) {
			return s.end
		}
		for i := 0; ; {
			j := bytes.Index(buf[i:n], []byte(entryMagic))
			if j < 0 {
				break
			}
			if _, problem := s.at(pos + int64(i+j)); problem == "" {
				return pos + int64(i+j)
			}
			i += j + 1
		}
		pos += int64(n - len(entryMagic) + 1)
	}
	return s.end
}

// scan calls fn for each entry whose header checks out, in order, and
// damage for each stretch that holds none (a damaged header, a cut).
// With payloads, fn gets each entry's payload, or payloadErr when it does
// not match the header's checksum.
func (s *packScan) scan(payloads bool, fn func(e entry, payload []byte, payloadErr error) error, damage func(from, to int64, problem string)) error {
	for pos := int64(0); pos < s.end; {
		e, problem := s.at(pos)
		if problem != "" {
			to := s.end
			if problem != "cut short" {
				to = s.next(pos + 1)
			}
			damage(pos, to, problem)
			pos = to
			continue
		}
		var payload []byte
		var perr error
		if payloads {
			payload = make([]byte, e.Length)
			if _, err := s.f.ReadAt(payload, e.Offset); err != nil && !errors.Is(err, io.EOF) {
				perr = fmt.Errorf("unreadable: %v", err)
			} else if crc32.Checksum(payload, castagnoli) != e.CRC {
				perr = fmt.Errorf("its %s's bytes do not match their checksum: %w", e.Type, ErrDamaged)
			}
		}
		if err := fn(e, payload, perr); err != nil {
			return err
		}
		pos = e.end()
	}
	return nil
}

// eachPackFile calls fn for every pack file with its size: the local
// ones, then the remote's that are not also local (an upload whose local
// copy was not dropped yet).
func (v *Vault) eachPackFile(fn func(pack string, size int64) error) error {
	if v.remote == nil {
		return v.eachLocalPackFile(fn)
	}
	local := map[string]bool{}
	if err := v.eachLocalPackFile(func(pack string, size int64) error {
		local[pack] = true
		return fn(pack, size)
	}); err != nil {
		return err
	}
	return v.eachRemotePack(func(pack string, size int64) error {
		if local[pack] {
			return nil
		}
		return fn(pack, size)
	})
}

func (v *Vault) eachLocalPackFile(fn func(pack string, size int64) error) error {
	return filepath.WalkDir(filepath.Join(v.dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || d.Name() == "" || d.Name()[0] == '.' {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(d.Name(), info.Size())
	})
}

// eachPackRecord calls fn with every pack the index knows.
func (v *Vault) eachPackRecord(fn func(pack string, rec packRecord) error) error {
	return v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixPack), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var rec packRecord
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
				return fmt.Errorf("index record of pack %s: %v: %w", it.Item().Key()[len(prefixPack):], err, ErrIndexDamaged)
			}
			if err := fn(string(it.Item().Key()[len(prefixPack):]), rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// sealLeftoverPacks seals the packs a killed writer left open, each where
// its last complete entry ends.
func (v *Vault) sealLeftoverPacks() error {
	var open []string
	if err := v.eachPackRecord(func(pack string, rec packRecord) error {
		if rec.State == packOpen {
			open = append(open, pack)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, pack := range open {
		rec := packRecord{State: packSealed}
		s, size, err := v.openScan(pack, 0)
		if err == nil {
			rec.Size = size
			err = s.scan(false, func(e entry, _ []byte, _ error) error {
				rec.ValidEnd = e.end()
				return nil
			}, func(int64, int64, string) {})
			s.Close()
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Registered, never written: nothing was lost with it.
			err = v.update(func(txn *badger.Txn) error { return txn.Delete(packKey(pack)) })
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := v.update(func(txn *badger.Txn) error { return putJSON(txn, packKey(pack), rec) }); err != nil {
			return err
		}
	}
	return nil
}
