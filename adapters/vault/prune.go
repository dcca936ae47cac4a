package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Pruned is one version pruning removes (or, in a dry run, would remove).
type Pruned struct {
	Version Version
	Reason  string // domain.PruneDeleted or domain.PruneVersions
}

// PruneResult sums up a prune.
type PruneResult struct {
	Versions     int   `json:"versions"`
	Bytes        int64 `json:"bytes"`         // item bytes of the removed versions
	FreedChunks  int   `json:"freed_chunks"`  // chunks no longer referenced
	FreedBytes   int64 `json:"freed_bytes"`   // their encoded bytes
	Unreferenced int   `json:"packs_removed"` // pack files deleted (or rewritten)
	// ReclaimedBytes is the disk space repacking gave back.
	ReclaimedBytes int64 `json:"reclaimed_bytes"`
	// Kept are packs that looked unreferenced but could not be proven so
	// (an entry the index still points at, or a header that does not
	// read): they stay.
	Kept []string `json:"kept_packs,omitempty"`
	// Locked are packs with nothing live (or little) left that stay
	// because their retention lock has not expired; a prune after it
	// reclaims them.
	Locked      int   `json:"locked_packs,omitempty"`
	LockedBytes int64 `json:"locked_bytes,omitempty"`
	DryRun      bool  `json:"dry_run"`
}

// ErrCheckFailed means prune found the storage damaged and did nothing:
// deleting packs on the word of a damaged index could delete data.
var ErrCheckFailed = errors.New("the storage fails its check; prune changes nothing until it is repaired")

// Prune applies the retention policy at now. It first checks the storage
// (index against packs, every pack's headers) and refuses a damaged one.
// fn is called for each version it removes, before it is removed, so the
// caller can record it; a dry run calls fn and changes nothing.
func (v *Vault) Prune(now time.Time, dryRun bool, fn func(Pruned) error) (PruneResult, error) {
	res := PruneResult{DryRun: dryRun}
	if v.readOnly && !dryRun {
		return res, ErrReadOnly
	}
	if v.remote != nil && !dryRun && (v.lock == nil || !v.lock.exclusive) {
		// Another process's newest version may use a chunk this index
		// holds no reference to.
		return res, fmt.Errorf("prune %s: %w: it is pruned open alone (OpenOptions.Exclusive)", v.remote.Where(), ErrInUse)
	}
	if problems, err := v.quickCheck(); err != nil {
		return res, err
	} else if len(problems) > 0 {
		return res, fmt.Errorf("%w: %s", ErrCheckFailed, problems[0].Problem)
	}
	var doomed []Pruned
	var group []Version
	flush := func() {
		if len(group) == 0 {
			return
		}
		times := make([]time.Time, len(group))
		for i, g := range group {
			times[i] = g.StoredAt
		}
		for i, reason := range v.set.Retention.Prune(times, group[0].DeletedAt, now) {
			if reason != "" {
				doomed = append(doomed, Pruned{Version: group[i], Reason: reason})
			}
		}
		group = group[:0]
	}
	err := v.Walk("", func(ver Version) error {
		if len(group) > 0 && (group[0].Mailbox != ver.Mailbox || group[0].Source != ver.Source || group[0].FolderID != ver.FolderID || group[0].ItemID != ver.ItemID) {
			flush()
		}
		group = append(group, ver)
		return nil
	})
	if err != nil {
		return res, err
	}
	flush()
	for _, p := range doomed {
		if err := fn(p); err != nil {
			return res, err
		}
		res.Versions++
		res.Bytes += p.Version.Size
		if dryRun {
			continue
		}
		freed, err := v.remove(p.Version)
		if err != nil {
			return res, err
		}
		for _, size := range freed {
			res.FreedChunks++
			res.FreedBytes += size
		}
	}
	if !dryRun {
		if err := v.repack(&res, now); err != nil {
			return res, err
		}
		v.collectIndexGarbage()
		if res.Versions > 0 && v.remote != nil {
			// The storage's other users take in what changed (the
			// tombstones), once what was moved is up.
			if err := v.Seal(); err != nil {
				return res, err
			}
			if err := v.noteRewrite("prune", nil); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// collectIndexGarbage gives back the index's value-log space that removed
// versions held: Badger rewrites a value-log file once at least half of it
// is garbage. Nothing is lost when it finds nothing to do or stops early.
func (v *Vault) collectIndexGarbage() {
	for i := 0; i < 64; i++ {
		if v.db.RunValueLogGC(0.5) != nil {
			return
		}
	}
}

// remove deletes one version: a tombstone goes into the current pack first
// (so a rebuilt index does not bring the version back while its record
// exists), then the index forgets it, and returns the chunks no version
// references any more (with their encoded sizes). Pack space is reclaimed
// by repack, after the index no longer points there.
func (v *Vault) remove(ver Version) (map[string]int64, error) {
	tomb, err := v.writeRecord(entryTombstone, ver.ID, tombstoneName(ver.ID), tombstoneBody{ID: ver.ID})
	if err != nil {
		return nil, err
	}
	var freed map[string]int64
	err = v.update(func(txn *badger.Txn) error {
		freed = map[string]int64{}
		vk := ver.key()
		if _, err := txn.Get(vk); errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		for _, id := range ver.Chunks {
			rec, ok, err := getChunk(txn, id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			rec.Refs--
			if rec.Refs <= 0 {
				freed[id] = rec.Length
				if err := txn.Delete([]byte(prefixChunk + id)); err != nil {
					return err
				}
				continue
			}
			if err := putJSON(txn, []byte(prefixChunk+id), rec); err != nil {
				return err
			}
		}
		if err := txn.Delete(vk); err != nil {
			return err
		}
		if err := txn.Delete([]byte(prefixID + ver.ID)); err != nil {
			return err
		}
		if err := putJSON(txn, []byte(prefixTomb+ver.ID), tombstoneRecord{Record: tomb, RecordPack: ver.Record.Pack}); err != nil {
			return err
		}
		// The deletion mark goes with the item's last version.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: itemPrefix(ver.Source, ver.Mailbox, ver.FolderID, ver.ItemID)})
		it.Rewind()
		last := !it.Valid()
		it.Close()
		if last {
			return txn.Delete(deletedKey(ver.Source, ver.Mailbox, ver.FolderID, ver.ItemID))
		}
		return nil
	})
	return freed, err
}

// repackThreshold: a pack whose live entries fill less than this share of
// it is rewritten.
const repackThreshold = 0.5

// repack reclaims the space of what nothing references: packs with no live
// entry are deleted; packs mostly dead have their live entries copied (as
// they are, still sealed) to the current pack, the index pointed at the
// copies, then are deleted. A pack is deleted only after reading each of
// its entry headers and finding none the index points at; a crash at any
// point leaves packs nothing references, never a reference to a missing
// pack.
func (v *Vault) repack(res *PruneResult, now time.Time) error {
	live := map[string]int64{}
	if err := v.eachReference(func(r reference) error {
		live[r.Pack] += r.Length + entryOverhead
		return nil
	}); err != nil {
		return err
	}
	states := map[string]packRecord{}
	if err := v.eachPackRecord(func(pack string, rec packRecord) error {
		states[pack] = rec
		return nil
	}); err != nil {
		return err
	}
	sizes := map[string]int64{}
	var doomed, sparse []string
	cur := v.currentPack()
	for pack, rec := range states {
		if rec.State == packDoomed {
			// A prune before was stopped while deleting it: it was proven
			// unreferenced then.
			if err := v.deletePack(pack, now); err != nil && !errors.Is(err, ErrRetained) {
				return err
			}
		}
	}
	err := v.eachPackFile(func(pack string, size int64) error {
		if pack == cur || states[pack].State != packSealed {
			return nil // being written, or not the index's to judge
		}
		sizes[pack] = size
		if states[pack].locked(now) && float64(live[pack]) < repackThreshold*float64(size) {
			// Copying its live entries out would only add a copy: the
			// locked pack cannot go before its lock expires.
			res.Locked++
			res.LockedBytes += size - min(live[pack], size)
			return nil
		}
		switch {
		case live[pack] == 0:
			doomed = append(doomed, pack)
		case float64(live[pack]) < repackThreshold*float64(size):
			sparse = append(sparse, pack)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(sparse) > 0 {
		set := map[string]bool{}
		for _, p := range sparse {
			set[p] = true
		}
		if err := v.moveEntries(set); err != nil {
			return err
		}
		doomed = append(doomed, sparse...)
	}
	for _, pack := range doomed {
		ok, err := v.provenUnreferenced(pack)
		if err != nil {
			return err
		}
		if !ok {
			res.Kept = append(res.Kept, pack)
			continue
		}
		if err := v.deletePack(pack, now); errors.Is(err, ErrRetained) {
			// The server holds a lock the index did not know (an index
			// rebuilt from the packs): the pack stays, still known.
			res.Locked++
			res.LockedBytes += sizes[pack] - min(live[pack], sizes[pack])
			continue
		} else if err != nil {
			return err
		}
		res.Unreferenced++
		res.ReclaimedBytes += sizes[pack] - min(live[pack], sizes[pack])
	}
	return v.dropSpentTombstones()
}

// moveEntries copies every live entry of the given packs to the current
// pack.
func (v *Vault) moveEntries(packs map[string]bool) error {
	var moves []reference
	if err := v.eachReference(func(r reference) error {
		if packs[r.Pack] {
			moves = append(moves, r)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range moves {
		raw, err := v.readPayload(r.location)
		if err != nil {
			return fmt.Errorf("repack: %s %s: %w", r.Type, short(r.ID), err)
		}
		if err := v.copyEntry(r, raw); err != nil {
			return err
		}
	}
	return nil
}

// provenUnreferenced reads every entry header of a pack and tells whether
// the index points at none of them. A header that does not read, or a
// stretch of the file that is not entries, proves nothing: the pack stays.
func (v *Vault) provenUnreferenced(pack string) (bool, error) {
	s, _, err := v.openScan(pack, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer s.Close()
	proven := true
	err = v.db.View(func(txn *badger.Txn) error {
		return s.scan(false, func(e entry, _ []byte, _ error) error {
			_, referenced, err := v.referenceOf(txn, e, func() ([]byte, error) { return v.readPayload(e.location) })
			if err != nil || referenced {
				proven = false
				return errStopScan
			}
			return nil
		}, func(from, to int64, problem string) {
			// A killed writer's torn tail, past the pack's last whole
			// entry, holds nothing the index could reference.
			var rec packRecord
			_, _ = getJSON(txn, packKey(pack), &rec)
			if !(problem == "cut short" || from >= rec.ValidEnd && rec.ValidEnd > 0) {
				proven = false
			}
		})
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return proven, err
}

var errStopScan = errors.New("stop scan")

// deletePack removes a pack file and then its index record; a crash
// between leaves a record of a pack that is gone, which the health check
// takes for lost data: so the record is marked doomed first.
//
// An uploaded pack whose retention lock holds is not touched: deletePack
// returns ErrRetained (the server would refuse it anyway, and an index
// rebuilt from the packs knows no lock times, so the server's refusal is
// taken the same way and the pack stays known).
func (v *Vault) deletePack(pack string, now time.Time) error {
	rec, _, err := v.packRecordOf(pack)
	if err != nil {
		return err
	}
	if rec.locked(now) {
		return fmt.Errorf("pack %s until %s: %w", short(pack), rec.RetainUntil.Format(time.RFC3339), ErrRetained)
	}
	kept := rec
	doomed := rec
	doomed.State = packDoomed
	if err := v.update(func(txn *badger.Txn) error { return putJSON(txn, packKey(pack), doomed) }); err != nil {
		return err
	}
	if err := os.Remove(v.packPath(pack)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pack %s: %w", short(pack), err)
	}
	if rec.Uploaded && v.remote != nil {
		// The marker goes first: the other directories must not take a
		// pack this prune deletes for damage, even if it stops here.
		if err := v.noteRewrite("prune", nil); err != nil {
			return err
		}
		if err := v.deleteRemotePack(pack, rec); err != nil {
			if errors.Is(err, ErrRetained) && kept.State != packDoomed {
				if rerr := v.update(func(txn *badger.Txn) error { return putJSON(txn, packKey(pack), kept) }); rerr != nil {
					return rerr
				}
			}
			return fmt.Errorf("remove pack %s from %s: %w", short(pack), v.remote.Where(), err)
		}
	}
	return v.update(func(txn *badger.Txn) error { return txn.Delete(packKey(pack)) })
}

// packGone reports whether a pack is neither local nor known to the index
// (deletePack forgets a pack only once its file and object are gone).
func (v *Vault) packGone(pack string) (bool, error) {
	if _, err := os.Stat(v.packPath(pack)); err == nil {
		return false, nil
	}
	_, known, err := v.packRecordOf(pack)
	return !known, err
}

// packRecordOf reads what the index knows of a pack (false: nothing).
func (v *Vault) packRecordOf(pack string) (rec packRecord, known bool, err error) {
	err = v.db.View(func(txn *badger.Txn) error {
		known, err = getJSON(txn, packKey(pack), &rec)
		return err
	})
	return rec, known, err
}

// packDoomed marks a pack being deleted: its file may be there or not.
const packDoomed = "doomed"

// dropSpentTombstones forgets tombstones whose pruned record's pack is
// gone: nothing can bring that version back any more.
func (v *Vault) dropSpentTombstones() error {
	var spent [][]byte
	err := v.eachPrefix(prefixTomb, func(k, val []byte) error {
		var t tombstoneRecord
		if err := json.Unmarshal(val, &t); err != nil {
			return err
		}
		if gone, err := v.packGone(t.RecordPack); err != nil {
			return err
		} else if gone {
			spent = append(spent, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range spent {
		if err := v.update(func(txn *badger.Txn) error { return txn.Delete(k) }); err != nil {
			return err
		}
	}
	return nil
}
