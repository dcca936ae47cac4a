package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// RepairResult says what a repair did.
type RepairResult struct {
	SettingsRewritten bool `json:"settings_rewritten"`
	IndexRebuilt      bool `json:"index_rebuilt"`
	// OldIndex is where the damaged index was set aside.
	OldIndex string `json:"old_index,omitempty"`
	// PacksRewritten are damaged packs whose intact entries were copied to
	// new packs; SetAside where the damaged files went.
	PacksRewritten   int      `json:"packs_rewritten"`
	SetAside         []string `json:"set_aside,omitempty"`
	EntriesCopied    int      `json:"entries_copied"`
	RecordsRewritten int      `json:"records_rewritten"`
	// Lost counts the item versions whose content could not be read back:
	// they are gone from the index (named through the callback), so the
	// next backup fetches them again if the mailbox still has them.
	Lost     int `json:"lost"`
	Versions int `json:"versions"`
}

// Repair makes a damaged storage consistent and whole where its data
// allows: the settings are written again from their good copy; an index
// that cannot be trusted (or any, with rebuildIndex) is rebuilt from the
// packs, the old one set aside; every pack is read, and the intact entries
// of damaged packs are copied to new packs, records the index still holds
// are written again, and damaged pack files are moved to DIR/damaged.
// Versions whose content is lost are removed, each passed to lost first;
// the index then starts a new generation (Scope), so the next backup lists
// every folder again. The storage must be open for checking (ForCheck) and
// writing.
func (v *Vault) Repair(rebuildIndex bool, lost func(Version) error) (RepairResult, error) {
	var res RepairResult
	if v.readOnly {
		return res, ErrReadOnly
	}
	if len(v.health.Settings) > 0 {
		if err := v.saveSettings(v.set); err != nil {
			return res, err
		}
		res.SettingsRewritten = true
		v.health.Settings = nil
	}
	if rebuildIndex || v.db == nil || v.health.Index != "" {
		old, err := v.rebuildIndex()
		if err != nil {
			return res, fmt.Errorf("rebuild the index: %w", err)
		}
		res.IndexRebuilt, res.OldIndex = true, old
	}
	lostChunks, err := v.salvage(&res)
	if err != nil {
		return res, err
	}
	// Versions whose chunks are lost (or that reference a chunk the index
	// does not know) cannot be read back.
	var doomed []Version
	err = v.Walk("", func(ver Version) error {
		for _, id := range ver.Chunks {
			if lostChunks[id] {
				doomed = append(doomed, ver)
				return nil
			}
			if ok, err := v.chunkKnown(id); err != nil || !ok {
				doomed = append(doomed, ver)
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for _, ver := range doomed {
		if err := lost(ver); err != nil {
			return res, err
		}
		if _, err := v.remove(ver); err != nil {
			return res, err
		}
		res.Lost++
	}
	if res.Lost > 0 || res.IndexRebuilt {
		if err := v.newEpoch(); err != nil {
			return res, err
		}
	}
	v.health.MissingPacks, v.health.CutPacks, v.health.UnknownPacks, v.health.Index = nil, nil, nil, ""
	if v.remote != nil && (res.IndexRebuilt || res.PacksRewritten > 0 || res.RecordsRewritten > 0 || res.Lost > 0) {
		// The storage's other users take in what changed.
		var aside []string
		if err := v.eachPackRecord(func(pack string, rec packRecord) error {
			if rec.State == packSetAside {
				aside = append(aside, pack)
			}
			return nil
		}); err != nil {
			return res, err
		}
		if err := v.Seal(); err != nil {
			return res, err
		}
		v.rewriteNoted = false // a marker of its own, with the packs set aside
		if err := v.noteRewrite("repair", aside); err != nil {
			return res, err
		}
	}
	st, err := v.Stats()
	res.Versions = st.Versions
	return res, err
}

func (v *Vault) newEpoch() error {
	epoch := randomID(8)
	if err := v.update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpoch), []byte(epoch)) }); err != nil {
		return err
	}
	v.epoch = epoch
	return nil
}

// rebuildIndex sets the index aside and builds a new one from the packs:
// every chunk, version record, deletion mark and tombstone whose entry
// reads and checks out. Returns where the old index went.
func (v *Vault) rebuildIndex() (string, error) {
	if v.db != nil {
		if err := v.closePack(); err != nil {
			return "", err
		}
		v.db.Close()
		v.db = nil
	}
	dir := filepath.Join(v.dir, indexDir)
	old := ""
	if _, err := os.Stat(dir); err == nil {
		base := filepath.Join(v.dir, "index.damaged-"+time.Now().UTC().Format("20060102T150405"))
		old = base
		for n := 2; ; n++ {
			if _, err := os.Stat(old); errors.Is(err, fs.ErrNotExist) {
				break
			}
			old = fmt.Sprintf("%s-%d", base, n)
		}
		if err := os.Rename(dir, old); err != nil {
			return "", fmt.Errorf("set the damaged index aside: %w", err)
		}
	}
	if err := v.openIndex(v.dataKey, false, true); err != nil {
		return old, err
	}
	if err := v.update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpoch), []byte(v.epoch)) }); err != nil {
		return old, err
	}
	// A new index has taken in no rewrite marker: all of them are read
	// (before the packs), for the packs another repair set aside.
	var markers []string
	setAside := map[string]bool{}
	if v.remote != nil {
		var err error
		if markers, setAside, err = v.unseenRewrites(); err != nil {
			return old, err
		}
	}
	tombs := map[string]location{}
	wb := v.db.NewWriteBatch()
	defer wb.Cancel()
	set := func(key []byte, val any) error {
		b, err := json.Marshal(val)
		if err != nil {
			return err
		}
		return wb.Set(key, b)
	}
	err := v.eachPackFile(func(pack string, size int64) error {
		if setAside[pack] {
			return set(packKey(pack), packRecord{State: packSetAside, Uploaded: true})
		}
		s, _, err := v.openScan(pack, 0)
		if err != nil {
			return err
		}
		defer s.Close()
		rec := packRecord{State: packSealed, Size: size, Uploaded: s.remote}
		err = s.scan(true, func(e entry, payload []byte, perr error) error {
			if perr != nil {
				return nil // salvage finds it again and says so
			}
			rec.ValidEnd = e.end()
			r, ok := v.entryRecord(e, payload)
			switch {
			case !ok:
				return nil
			case r.tombstone:
				tombs[e.ID] = e.location
				return nil
			case r.version != nil:
				if err := set(r.key, *r.version); err != nil {
					return err
				}
				return wb.Set([]byte(prefixID+r.version.ID), r.key)
			}
			return set(r.key, r.value)
		}, func(int64, int64, string) {})
		if err != nil {
			return err
		}
		return set(packKey(pack), rec)
	})
	if err != nil {
		return old, err
	}
	if err := wb.Flush(); err != nil {
		return old, err
	}
	if err := v.applyTombstones(tombs); err != nil {
		return old, err
	}
	if err := v.recountReferences(); err != nil {
		return old, err
	}
	if err := v.noteRewritesSeen(markers); err != nil {
		return old, err
	}
	v.health = Health{}
	return old, nil
}

// applyTombstones takes back the versions prune removed: each tombstone
// (by version id, where it lies) deletes its version from the index and is
// kept while the pruned record's pack exists.
func (v *Vault) applyTombstones(tombs map[string]location) error {
	for id, loc := range tombs {
		err := v.update(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte(prefixID + id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil // its record is gone: the tombstone is spent
			}
			if err != nil {
				return err
			}
			vk, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			var ver Version
			if _, err := getJSON(txn, vk, &ver); err != nil {
				return err
			}
			if err := txn.Delete(vk); err != nil {
				return err
			}
			if err := txn.Delete([]byte(prefixID + id)); err != nil {
				return err
			}
			return putJSON(txn, []byte(prefixTomb+id), tombstoneRecord{Record: loc, RecordPack: ver.Record.Pack})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// recountReferences sets every chunk's reference count from the versions
// the index holds; a chunk nothing references is not live, and neither is
// a deletion mark of an item with no version.
func (v *Vault) recountReferences() error {
	counts := map[[32]byte]int64{}
	items := map[string]bool{}
	if err := v.Walk("", func(ver Version) error {
		items[string(deletedKey(ver.Source, ver.Mailbox, ver.FolderID, ver.ItemID))] = true
		for _, id := range ver.Chunks {
			counts[chunkKey(id)]++
		}
		return nil
	}); err != nil {
		return err
	}
	wb2 := v.db.NewWriteBatch()
	defer wb2.Cancel()
	err := v.eachPrefix(prefixChunk, func(k, val []byte) error {
		var rec chunkRecord
		if err := json.Unmarshal(val, &rec); err != nil {
			return err
		}
		rec.Refs = counts[chunkKey(string(k[len(prefixChunk):]))]
		if rec.Refs == 0 {
			return wb2.Delete(k)
		}
		b, _ := json.Marshal(rec)
		return wb2.Set(k, b)
	})
	if err != nil {
		return err
	}
	err = v.eachPrefix(prefixDeleted, func(k, _ []byte) error {
		if !items[string(k)] {
			return wb2.Delete(k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return wb2.Flush()
}

// salvage reads every pack and every entry the index references (through
// inspect, the code verify runs); the intact entries of damaged packs are
// copied to new packs, records whose entries are lost written again from
// the index, and the damaged files set aside. Returns the chunks whose
// content is lost.
func (v *Vault) salvage(res *RepairResult) (map[string]bool, error) {
	_, f, err := v.inspect(true, func(Problem) {})
	if err != nil {
		return nil, err
	}
	lostChunks := map[string]bool{}
	for id := range f.badChunks {
		lostChunks[id] = true
	}
	if len(f.damagedPacks) == 0 {
		return lostChunks, nil
	}
	refs := map[string]map[int64]reference{} // damaged pack -> offset -> reference
	if err := v.eachReference(func(r reference) error {
		if f.damagedPacks[r.Pack] {
			if refs[r.Pack] == nil {
				refs[r.Pack] = map[int64]reference{}
			}
			refs[r.Pack][r.Offset] = r
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for pack, byOffset := range refs {
		// The entries that read whole, checksum and all, are copied as
		// they are.
		if s, _, err := v.openScan(pack, 0); err == nil {
			err = s.scan(true, func(e entry, payload []byte, perr error) error {
				r, ok := byOffset[e.Offset]
				if !ok || r.Type != e.Type || r.ID != e.ID || perr != nil || v.checkPayload(e, payload) != nil {
					return nil
				}
				if err := v.copyEntry(r, payload); err != nil {
					return err
				}
				res.EntriesCopied++
				delete(byOffset, e.Offset)
				return nil
			}, func(int64, int64, string) {})
			s.Close()
			if err != nil {
				return nil, err
			}
		}
		// The rest: a chunk whose header is damaged may still decode (its
		// content hash proves it); a record is written again from the
		// index's copy; a chunk that does neither is lost.
		for _, r := range byOffset {
			if r.Type == entryChunk {
				raw, err := v.readPayload(r.location)
				if err == nil && !lostChunks[r.ID] {
					_, err = v.codec.decodeChunk(r.ID, raw)
				}
				if err != nil || lostChunks[r.ID] {
					lostChunks[r.ID] = true
					continue
				}
				if err := v.copyEntry(r, raw); err != nil {
					return nil, err
				}
				res.EntriesCopied++
				continue
			}
			if err := v.rewriteRecord(r); err != nil {
				return nil, err
			}
			res.RecordsRewritten++
		}
	}
	aside := filepath.Join(v.dir, "damaged")
	var packs []string
	for pack := range f.damagedPacks {
		packs = append(packs, pack)
	}
	sort.Strings(packs)
	for _, pack := range packs {
		res.PacksRewritten++
		if _, err := os.Stat(v.packPath(pack)); err == nil {
			if err := os.MkdirAll(aside, 0o700); err != nil {
				return nil, err
			}
			to := filepath.Join(aside, pack)
			if err := os.Rename(v.packPath(pack), to); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("set damaged pack %s aside: %w", short(pack), err)
			}
			res.SetAside = append(res.SetAside, to)
		}
		if v.remote != nil {
			if gone, err := v.setAsideRemote(pack); err != nil {
				return nil, err
			} else if !gone {
				res.SetAside = append(res.SetAside, v.remote.Where()+"/"+packObject(pack))
				continue
			}
		}
		if err := v.update(func(txn *badger.Txn) error { return txn.Delete(packKey(pack)) }); err != nil {
			return nil, err
		}
	}
	return lostChunks, nil
}

// indexRecord is what one pack entry stands for in the index.
type indexRecord struct {
	key     []byte
	value   any      // a chunk's or a deletion's record
	version *Version // an item version's record (key is its version key)
	// tombstone: a pruned version's mark (its id is the entry's).
	tombstone bool
}

// entryRecord reads one pack entry as the index record it stands for;
// false for an entry that does not decode (salvage and verify name those).
func (v *Vault) entryRecord(e entry, payload []byte) (indexRecord, bool) {
	switch e.Type {
	case entryChunk:
		return indexRecord{key: []byte(prefixChunk + e.ID), value: chunkRecord{Size: e.Plain, location: e.location}}, true
	case entryItem:
		b, err := v.codec.decode(itemRecordName(e.ID), payload)
		var ver Version
		if err != nil || json.Unmarshal(b, &ver) != nil || ver.ID != e.ID {
			return indexRecord{}, false
		}
		ver.Record = e.location
		return indexRecord{key: ver.key(), version: &ver}, true
	case entryDeletion:
		b, err := v.codec.decode(deletionNameOfID(e.ID), payload)
		var d deletionRecord
		if err != nil || json.Unmarshal(b, &d) != nil {
			return indexRecord{}, false
		}
		d.Record = e.location
		return indexRecord{key: deletedKey(d.Source, d.Mailbox, d.FolderID, d.ItemID), value: d}, true
	case entryTombstone:
		if _, err := v.codec.decode(tombstoneName(e.ID), payload); err == nil {
			return indexRecord{tombstone: true}, true
		}
	}
	return indexRecord{}, false
}
