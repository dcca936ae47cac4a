package vault

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/restic/chunker"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
)

// Index keys. Names from the server are joined with NUL, which no mailbox,
// source, folder id or item id contains. The mailbox comes first so that
// one mailbox's versions are one range; the source (the connection's
// identity: type and tenant or server) next, so that one mailbox backed up
// through Graph and through EWS is two independent backups.
const (
	prefixVersion = "v/" // mailbox NUL source NUL folderID NUL itemID NUL changeKey -> Version
	prefixID      = "i/" // version id -> version key
	prefixChunk   = "c/" // chunk id -> chunkRecord
	prefixDeleted = "d/" // mailbox NUL source NUL folderID NUL itemID -> deletionRecord
	prefixTomb    = "t/" // version id -> tombstoneRecord
	prefixPack    = "p/" // pack id -> packRecord
)

// Version is one stored version of one item.
type Version struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Mailbox    string    `json:"mailbox"`
	FolderPath string    `json:"folder"`
	FolderID   string    `json:"folder_id"`
	ItemID     string    `json:"item_id"`
	ChangeKey  string    `json:"ck"`
	Kind       string    `json:"kind"`
	Format     string    `json:"format"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Chunks     []string  `json:"chunks"`
	StoredAt   time.Time `json:"stored_at"`
	ItemTime   time.Time `json:"item_time,omitzero"`
	itemformat.Summary
	// Record is where a pack holds this version's record (index only).
	Record location `json:"rec,omitzero"`
	// DeletedAt is set by the index when the source deleted the item.
	DeletedAt time.Time `json:"-"`
}

type chunkRecord struct {
	Refs int64 `json:"refs"`
	Size int64 `json:"size"` // plain bytes
	location
}

// deletionRecord is a deletion mark in the index and in its pack.
type deletionRecord struct {
	Source   string    `json:"source"`
	Mailbox  string    `json:"mailbox"`
	FolderID string    `json:"folder_id"`
	ItemID   string    `json:"item_id"`
	At       time.Time `json:"at"`
	Record   location  `json:"rec,omitzero"`
}

// tombstoneRecord keeps a pruned version from coming back when the index is
// rebuilt, for as long as the pack holding its record exists.
type tombstoneRecord struct {
	Record     location `json:"rec"`         // the tombstone's own entry
	RecordPack string   `json:"record_pack"` // where the pruned version's record is
}

func join(parts ...string) string { return strings.Join(parts, "\x00") }

func versionKey(source, mailbox, folderID, itemID, changeKey string) []byte {
	return []byte(prefixVersion + join(mailbox, source, folderID, itemID, changeKey))
}

func (ver Version) key() []byte {
	return versionKey(ver.Source, ver.Mailbox, ver.FolderID, ver.ItemID, ver.ChangeKey)
}

func itemPrefix(source, mailbox, folderID, itemID string) []byte {
	return []byte(prefixVersion + join(mailbox, source, folderID, itemID) + "\x00")
}

func deletedKey(source, mailbox, folderID, itemID string) []byte {
	return []byte(prefixDeleted + join(mailbox, source, folderID, itemID))
}

func packKey(pack string) []byte { return []byte(prefixPack + pack) }

// VersionID is the short id ls and find print and restore and export take.
func VersionID(source, mailbox, folderID, itemID, changeKey string) string {
	sum := sha256.Sum256([]byte(join(source, mailbox, folderID, itemID, changeKey)))
	return hex.EncodeToString(sum[:8])
}

// Names of the records' blobs: a sealed record cannot pass for another.
func itemRecordName(versionID string) string { return "item/" + versionID }
func tombstoneName(versionID string) string  { return "tombstone/" + versionID }

func deletionID(source, mailbox, folderID, itemID string) string {
	sum := sha256.Sum256([]byte(join(source, mailbox, folderID, itemID)))
	return hex.EncodeToString(sum[:8])
}

type piece struct {
	id   string
	data []byte
}

// split cuts content at content-defined boundaries (Rabin fingerprints, as
// restic does), so the same attachment inside two messages yields the same
// chunks even when the headers before it differ in length.
func (v *Vault) split(content []byte) ([]piece, error) {
	if uint(len(content)) <= v.set.Chunking.MinSize {
		return []piece{{id: v.codec.chunkID(content), data: content}}, nil
	}
	c := chunker.NewWithBoundaries(bytes.NewReader(content), v.pol, v.set.Chunking.MinSize, v.set.Chunking.MaxSize)
	c.SetAverageBits(v.set.Chunking.AverageBits)
	var out []piece
	buf := make([]byte, v.set.Chunking.MaxSize)
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		data := append([]byte(nil), ch.Data...)
		out = append(out, piece{id: v.codec.chunkID(data), data: data})
	}
}

// Has tells whether the storage holds this version of the item. The
// version's record is not read: a key lookup answers.
func (v *Vault) Has(k domain.ItemKey) (bool, error) {
	var ok bool
	err := v.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(versionKey(k.Source, k.Mailbox, k.FolderID, k.ItemID, k.ChangeKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok, err
}

// Put stores one item version unless it is stored already (then Existed is
// set and nothing is written); see PutBatch.
func (v *Vault) Put(k domain.ItemKey, content []byte) (domain.PutResult, error) {
	res, err := v.PutBatch([]domain.ItemKey{k}, [][]byte{content})
	return res[0], err
}

// maxSetsPerCommit bounds one index transaction well below what Badger
// accepts in one (a fraction of a memtable).
const maxSetsPerCommit = 2000

// PutBatch stores item versions unless they are stored already (then
// Existed is set and nothing is written for them): a fetched batch costs
// one lookup transaction, one pass over the pack, and one index commit,
// however many items it holds. The chunks and the versions' records go
// into the pack before the index entries that reference them commit, so a
// crash leaves at worst entries nothing references (prune reclaims them),
// never an index entry without its data. Results are in the order of keys.
func (v *Vault) PutBatch(keys []domain.ItemKey, contents [][]byte) ([]domain.PutResult, error) {
	res := make([]domain.PutResult, len(keys))
	for i, content := range contents {
		sum := sha256.Sum256(content)
		res[i] = domain.PutResult{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}
	}
	if v.readOnly {
		return res, ErrReadOnly
	}
	var todo []*pendingPut
	var total int64
	seen := map[string]bool{} // the same version twice in one batch is stored once
	// One write transaction asks what the storage has and, when the batch
	// fits in one commit, records what it stored: its reads are checked for
	// conflicts at commit, so nothing needs asking twice (each question is
	// a point lookup through every level of the index, the larger part of
	// a batch's index cost once millions of items are stored).
	txn := v.db.NewTransaction(true)
	defer txn.Discard()
	for i, k := range keys {
		vk := versionKey(k.Source, k.Mailbox, k.FolderID, k.ItemID, k.ChangeKey)
		switch _, err := txn.Get(vk); {
		case err == nil || seen[string(vk)]:
			res[i].Existed = true
			continue
		case !errors.Is(err, badger.ErrKeyNotFound):
			return res, err
		}
		seen[string(vk)] = true
		todo = append(todo, &pendingPut{i: i, vk: vk})
		total += res[i].Size
	}
	if len(todo) == 0 {
		return res, nil
	}
	if free, ok := v.space.Free(2*total, MinFree); ok && free < MinFree+2*total {
		// Badger writes its index through memory-mapped files, and a write
		// into a mapping on a full disk kills the process (SIGBUS) instead
		// of returning an error: stop while there is room to stop cleanly.
		return res, fmt.Errorf("store item in %s: %w: %s free, mailvault keeps %s for the index", v.dir, ErrFull, mib(free), mib(MinFree))
	}
	// Which chunks the storage has: asked once per chunk.
	stored := map[string]location{} // a zero location: stored before
	asked := map[string]chunkRecord{}
	var err error
	for _, p := range todo {
		if p.pieces, err = v.split(contents[p.i]); err != nil {
			return res, fmt.Errorf("split item: %w", err)
		}
	}
	for _, p := range todo {
		for _, pc := range p.pieces {
			if _, done := asked[pc.id]; done {
				continue
			}
			rec, ok, err := getChunk(txn, pc.id)
			if err != nil {
				return res, err
			}
			asked[pc.id] = rec
			if ok && rec.Refs > 0 {
				stored[pc.id] = location{}
			}
		}
	}
	now := time.Now().UTC()
	for _, p := range todo {
		for _, pc := range p.pieces {
			if _, done := stored[pc.id]; done {
				continue
			}
			raw, err := v.codec.encode(pc.id, pc.data)
			if err != nil {
				return res, err
			}
			loc, err := v.bufferEntry(entryChunk, pc.id, len(pc.data), raw)
			if err != nil {
				return res, err
			}
			stored[pc.id] = loc
		}
		k, r := keys[p.i], res[p.i]
		p.ver = Version{ID: VersionID(k.Source, k.Mailbox, k.FolderID, k.ItemID, k.ChangeKey), Source: k.Source, Mailbox: k.Mailbox,
			FolderPath: k.FolderPath, FolderID: k.FolderID, ItemID: k.ItemID, ChangeKey: k.ChangeKey, Kind: k.Kind, Format: k.Format,
			Size: r.Size, SHA256: r.SHA256, StoredAt: now, ItemTime: k.Time, Summary: itemformat.Summarize(k.Format, contents[p.i])}
		for _, pc := range p.pieces {
			p.ver.Chunks = append(p.ver.Chunks, pc.id)
		}
		if p.ver.Record, err = v.bufferRecord(entryItem, p.ver.ID, itemRecordName(p.ver.ID), p.ver); err != nil {
			return res, err
		}
		if p.body, err = json.Marshal(p.ver); err != nil {
			return res, err
		}
	}
	// The entries are in the pack before the index refers to them.
	if err := v.flushEntries(); err != nil {
		return res, err
	}
	// record writes a group's index entries in txn. With known, the
	// chunks' records are those asked above in the same transaction (its
	// commit fails if another changed them meanwhile); without, they are
	// asked again, as are the versions (a concurrent Put may have stored
	// them).
	record := func(txn *badger.Txn, group []*pendingPut, known map[string]chunkRecord) error {
		counted := map[string]chunkRecord{} // chunks shared by items of the group
		for _, p := range group {
			r := &res[p.i]
			r.Existed, r.NewBytes = false, 0
			if known == nil {
				if _, err := txn.Get(p.vk); err == nil {
					r.Existed = true // stored by a concurrent Put meanwhile
					continue
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
			}
			for _, pc := range p.pieces {
				rec, ok := counted[pc.id]
				if !ok && known != nil {
					rec = known[pc.id]
				} else if !ok {
					var err error
					if rec, _, err = getChunk(txn, pc.id); err != nil {
						return err
					}
				}
				if rec.Refs == 0 {
					loc := stored[pc.id]
					if loc.Pack == "" {
						// Known when checked, pruned since: its entry is gone.
						return errRetryPut
					}
					rec.Size, rec.location = int64(len(pc.data)), loc
					r.NewBytes += loc.Length
				}
				rec.Refs++
				counted[pc.id] = rec
				if err := putJSON(txn, []byte(prefixChunk+pc.id), rec); err != nil {
					return err
				}
			}
			if err := txn.Set(p.vk, p.body); err != nil {
				return err
			}
			if err := txn.Set([]byte(prefixID+p.ver.ID), p.vk); err != nil {
				return err
			}
		}
		return nil
	}
	groups := commitGroups(todo)
	if len(groups) == 1 {
		err := record(txn, todo, asked)
		if err == nil {
			err = txn.Commit()
		}
		switch {
		case err == nil:
			return res, nil
		case !errors.Is(err, badger.ErrConflict) && !errors.Is(err, errRetryPut):
			return res, storageErr("record item in the index", v.dir, err)
		}
		// A concurrent Put or prune changed what was asked: record again,
		// asking anew (the entries written above stay usable).
	}
	txn.Discard()
	start := 0
	for _, group := range groups {
		err = v.update(func(txn *badger.Txn) error { return record(txn, group, nil) })
		if errors.Is(err, errRetryPut) {
			// A prune raced the batch: store what is left item by item,
			// each asking again what the storage has.
			for _, p := range todo[start:] {
				r, err := v.PutBatch(keys[p.i:p.i+1], contents[p.i:p.i+1])
				res[p.i] = r[0]
				if err != nil {
					return res, err
				}
			}
			return res, nil
		}
		if err != nil {
			return res, storageErr("record item in the index", v.dir, err)
		}
		start += len(group)
	}
	return res, nil
}

// pendingPut is a version PutBatch stores: its place in the batch, its
// index key, its chunks, and its record.
type pendingPut struct {
	i      int
	vk     []byte
	pieces []piece
	ver    Version
	body   []byte
}

// commitGroups splits a batch's versions into index commits: one, unless
// the batch is too large for one transaction.
func commitGroups(todo []*pendingPut) [][]*pendingPut {
	var groups [][]*pendingPut
	for start := 0; start < len(todo); {
		end, sets := start, 0
		for end < len(todo) && (end == start || sets+len(todo[end].pieces)+2 <= maxSetsPerCommit) {
			sets += len(todo[end].pieces) + 2
			end++
		}
		groups = append(groups, todo[start:end])
		start = end
	}
	return groups
}

// writeRecord writes a record (a version, a deletion mark, a tombstone) to
// the current pack; rec must not hold its own location yet.
func (v *Vault) writeRecord(typ entryType, id, name string, rec any) (location, error) {
	raw, err := v.encodeRecord(name, rec)
	if err != nil {
		return location{}, err
	}
	return v.appendEntry(typ, id, 0, raw)
}

// bufferRecord is writeRecord through bufferEntry.
func (v *Vault) bufferRecord(typ entryType, id, name string, rec any) (location, error) {
	raw, err := v.encodeRecord(name, rec)
	if err != nil {
		return location{}, err
	}
	return v.bufferEntry(typ, id, 0, raw)
}

func (v *Vault) encodeRecord(name string, rec any) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return v.codec.encodeRecord(name, b)
}

var errRetryPut = errors.New("chunk removed meanwhile")

// MinFree is the free space a storage keeps for its index's memory-mapped
// tables and logs; items are refused (ErrFull) below it.
const MinFree = 32 << 20

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// update runs fn in a transaction, again when a concurrent one conflicted.
func (v *Vault) update(fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := v.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < 100 {
			continue
		}
		return err
	}
}

func (v *Vault) chunkKnown(id string) (bool, error) {
	rec, ok, err := v.chunk(id)
	return ok && rec.Refs > 0, err
}

func (v *Vault) chunk(id string) (chunkRecord, bool, error) {
	var rec chunkRecord
	var ok bool
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		rec, ok, err = getChunk(txn, id)
		return err
	})
	return rec, ok, err
}

func getChunk(txn *badger.Txn, id string) (chunkRecord, bool, error) {
	var rec chunkRecord
	ok, err := getJSON(txn, []byte(prefixChunk+id), &rec)
	return rec, ok, err
}

func getJSON(txn *badger.Txn, key []byte, v any) (bool, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, it.Value(func(b []byte) error {
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("index entry %q: %v: %w", key, err, ErrIndexDamaged)
		}
		return nil
	})
}

// getMeta reads one JSON value of the index's own bookkeeping; a missing
// key leaves val as it is.
func (v *Vault) getMeta(key string, val any) error {
	return v.db.View(func(txn *badger.Txn) error {
		_, err := getJSON(txn, []byte(key), val)
		return err
	})
}

func putJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

func (v *Vault) get(vk []byte) (Version, bool, error) {
	var ver Version
	var ok bool
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		ok, err = getJSON(txn, vk, &ver)
		return err
	})
	return ver, ok, err
}

// ErrNoVersion means no stored version has the id.
var ErrNoVersion = errors.New("no stored item has this id")

// Lookup finds a version by the id ls and find print.
func (v *Vault) Lookup(id string) (Version, error) {
	var vk []byte
	err := v.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(prefixID + strings.ToLower(id)))
		if err != nil {
			return err
		}
		vk, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Version{}, fmt.Errorf("%s: %w", id, ErrNoVersion)
	}
	if err != nil {
		return Version{}, err
	}
	ver, ok, err := v.get(vk)
	if err == nil && !ok {
		err = fmt.Errorf("%s: %w", id, ErrNoVersion)
	}
	return ver, err
}

// Read returns the content of a version, checking every chunk. Damage is
// an error wrapping ErrDamaged that names the item.
func (v *Vault) Read(ver Version) ([]byte, error) {
	out := make([]byte, 0, ver.Size)
	for _, id := range ver.Chunks {
		b, err := v.readChunk(id)
		if err != nil {
			return nil, fmt.Errorf("item %s (%s/%s): %w", ver.ID, ver.Mailbox, ver.FolderPath, err)
		}
		out = append(out, b...)
	}
	if sum := sha256.Sum256(out); hex.EncodeToString(sum[:]) != ver.SHA256 {
		return nil, fmt.Errorf("item %s: content hash does not match the index: %w", ver.ID, ErrDamaged)
	}
	return out, nil
}

func (v *Vault) readChunk(id string) ([]byte, error) {
	rec, ok, err := v.chunk(id)
	if err != nil {
		return nil, err
	}
	if !ok || rec.Refs <= 0 {
		return nil, fmt.Errorf("chunk %s is not in the index: %w", short(id), ErrDamaged)
	}
	raw, err := v.readPayload(rec.location)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", short(id), err)
	}
	plain, err := v.codec.decodeChunk(id, raw)
	if err != nil {
		return nil, fmt.Errorf("%w (pack %s, offset %d)", err, short(rec.Pack), rec.Offset)
	}
	return plain, nil
}

// Walk calls fn for every stored version whose mailbox is mailbox (all
// when empty), in index order: by mailbox, source, folder id, item id. It
// streams: memory does not grow with the storage.
func (v *Vault) Walk(mailbox string, fn func(Version) error) error {
	prefix := []byte(prefixVersion)
	if mailbox != "" {
		prefix = []byte(prefixVersion + mailbox + "\x00")
	}
	return v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var ver Version
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &ver) }); err != nil {
				return fmt.Errorf("index entry %q: %v: %w", it.Item().Key(), err, ErrIndexDamaged)
			}
			var d deletionRecord
			if ok, err := getJSON(txn, deletedKey(ver.Source, ver.Mailbox, ver.FolderID, ver.ItemID), &d); err != nil {
				return err
			} else if ok {
				ver.DeletedAt = d.At
			}
			if err := fn(ver); err != nil {
				return err
			}
		}
		return nil
	})
}

// Versions lists every stored version of ver's item (the same source,
// mailbox, folder and item id), oldest first: read under the item's own
// prefix of the index, so its cost does not grow with the mailbox.
func (v *Vault) Versions(ver Version) ([]Version, error) {
	var out []Version
	err := v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: itemPrefix(ver.Source, ver.Mailbox, ver.FolderID, ver.ItemID), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var o Version
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &o) }); err != nil {
				return fmt.Errorf("index entry %q: %v: %w", it.Item().Key(), err, ErrIndexDamaged)
			}
			out = append(out, o)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].StoredAt.Before(out[j].StoredAt) })
	return out, err
}

// MarkDeleted records that the source deleted an item; retention counts
// from then. A second mark keeps the first date. The mark goes into a pack
// too, so a rebuilt index keeps it.
func (v *Vault) MarkDeleted(k domain.ItemKey, at time.Time) error {
	if v.readOnly {
		return ErrReadOnly
	}
	dk := deletedKey(k.Source, k.Mailbox, k.FolderID, k.ItemID)
	var d deletionRecord
	err := v.db.View(func(txn *badger.Txn) error {
		ok, err := getJSON(txn, dk, &d)
		if ok {
			err = errMarked
		}
		return err
	})
	if errors.Is(err, errMarked) {
		return nil
	}
	if err != nil {
		return err
	}
	d = deletionRecord{Source: k.Source, Mailbox: k.Mailbox, FolderID: k.FolderID, ItemID: k.ItemID, At: at.UTC()}
	id := deletionID(k.Source, k.Mailbox, k.FolderID, k.ItemID)
	if d.Record, err = v.writeRecord(entryDeletion, id, deletionNameOfID(id), d); err != nil {
		return err
	}
	return v.update(func(txn *badger.Txn) error {
		if _, err := txn.Get(dk); err == nil {
			return nil
		}
		return putJSON(txn, dk, d)
	})
}

var errMarked = errors.New("marked already")

// Stats are the storage's totals.
type Stats struct {
	Versions int   `json:"versions"`
	Items    int   `json:"items"`
	Logical  int64 `json:"logical_bytes"` // sum of item sizes
	Chunks   int   `json:"chunks"`
	Unique   int64 `json:"unique_bytes"` // plain bytes of distinct chunks
	Stored   int64 `json:"stored_bytes"` // encoded bytes of the live chunks
}

// DedupRatio is logical bytes over unique bytes (1 when nothing repeats).
func (s Stats) DedupRatio() float64 {
	if s.Unique == 0 {
		return 1
	}
	return float64(s.Logical) / float64(s.Unique)
}

// Stats counts the index.
func (v *Vault) Stats() (Stats, error) {
	var s Stats
	lastItem := ""
	err := v.Walk("", func(ver Version) error {
		s.Versions++
		s.Logical += ver.Size
		if k := join(ver.Mailbox, ver.Source, ver.FolderID, ver.ItemID); k != lastItem {
			s.Items++
			lastItem = k
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	err = v.eachChunk(func(_ string, rec chunkRecord, err error) error {
		if err != nil {
			return err
		}
		if rec.Refs > 0 {
			s.Chunks++
			s.Unique += rec.Size
			s.Stored += rec.Length
		}
		return nil
	})
	return s, err
}

// eachChunk calls fn with every chunk record of the index, in id order;
// err is set, with a zero record, when a record does not decode.
func (v *Vault) eachChunk(fn func(id string, rec chunkRecord, err error) error) error {
	return v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixChunk), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var rec chunkRecord
			err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) })
			if err != nil {
				rec = chunkRecord{}
			}
			if err := fn(string(it.Item().Key()[len(prefixChunk):]), rec, err); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachPrefix calls fn with every key and value under prefix.
func (v *Vault) eachPrefix(prefix string, fn func(key, val []byte) error) error {
	return v.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			val, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(it.Item().KeyCopy(nil), val); err != nil {
				return err
			}
		}
		return nil
	})
}
