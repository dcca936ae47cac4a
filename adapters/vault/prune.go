package vault

import (
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
	DryRun         bool  `json:"dry_run"`
}

// Prune applies the retention policy at now. fn is called for each version
// it removes, before it is removed, so the caller can record it; a dry run
// calls fn and changes nothing.
func (v *Vault) Prune(now time.Time, dryRun bool, fn func(Pruned) error) (PruneResult, error) {
	res := PruneResult{DryRun: dryRun}
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
		if len(group) > 0 && (group[0].Mailbox != ver.Mailbox || group[0].FolderID != ver.FolderID || group[0].ItemID != ver.ItemID) {
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
		packs, reclaimed, err := v.repack()
		res.Unreferenced, res.ReclaimedBytes = packs, reclaimed
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// remove deletes one version from the index and returns the chunks that no
// version references any more (with their file sizes). The files go after
// the index commits: a crash between leaves unreferenced files, not
// references to missing files.
func (v *Vault) remove(ver Version) (map[string]int64, error) {
	var freed map[string]int64
	err := v.update(func(txn *badger.Txn) error {
		freed = map[string]int64{}
		vk := versionKey(ver.Mailbox, ver.FolderID, ver.ItemID, ver.ChangeKey)
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
				freed[id] = rec.Stored
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
		// The deletion date goes with the item's last version.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: itemPrefix(ver.Mailbox, ver.FolderID, ver.ItemID)})
		it.Rewind()
		last := !it.Valid()
		it.Close()
		if last {
			return txn.Delete(deletedKey(ver.Mailbox, ver.FolderID, ver.ItemID))
		}
		return nil
	})
	return freed, err
}

// repackThreshold: a pack whose live chunks fill less than this share of
// it is rewritten.
const repackThreshold = 0.5

// repack reclaims the space of freed chunks: packs nothing references are
// deleted; packs mostly dead have their live chunks copied (as they are,
// still sealed) to the current pack, the index pointed at the copies, and
// are deleted. The index moves before a pack goes, so a crash between
// leaves a pack nothing references, never a reference to a missing pack.
func (v *Vault) repack() (removed int, reclaimed int64, err error) {
	live, err := v.packUsage()
	if err != nil {
		return 0, 0, err
	}
	type packFile struct {
		path string
		size int64
	}
	var doomed, sparse []string
	files := map[string]packFile{}
	cur := v.currentPack()
	err = v.eachPack(func(pack, path string, size int64) error {
		if pack == cur {
			return nil
		}
		files[pack] = packFile{path, size}
		switch {
		case live[pack] == 0:
			doomed = append(doomed, pack)
		case float64(live[pack]) < repackThreshold*float64(size):
			sparse = append(sparse, pack)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if len(sparse) > 0 {
		set := map[string]bool{}
		for _, p := range sparse {
			set[p] = true
		}
		if err := v.moveChunks(set); err != nil {
			return 0, 0, err
		}
		doomed = append(doomed, sparse...)
	}
	for _, pack := range doomed {
		if err := os.Remove(files[pack].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, reclaimed, fmt.Errorf("remove pack %s: %w", short(pack), err)
		}
		removed++
		reclaimed += files[pack].size - live[pack]
	}
	return removed, reclaimed, nil
}

// moveChunks copies every live chunk of the given packs to the current pack.
func (v *Vault) moveChunks(packs map[string]bool) error {
	type move struct {
		id  string
		rec chunkRecord
	}
	var moves []move
	err := v.eachChunk(func(id string, rec chunkRecord, err error) error {
		if err != nil {
			return err
		}
		if rec.Refs > 0 && packs[rec.Pack] {
			moves = append(moves, move{id, rec})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range moves {
		raw, err := v.readRaw(m.id, m.rec)
		if err != nil {
			return fmt.Errorf("repack: %w", err)
		}
		pack, off, err := v.appendChunk(raw)
		if err != nil {
			return err
		}
		err = v.update(func(txn *badger.Txn) error {
			rec, ok, err := getChunk(txn, m.id)
			if err != nil || !ok {
				return err
			}
			rec.Pack, rec.Offset = pack, off
			return putJSON(txn, []byte(prefixChunk+m.id), rec)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
