package vault

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	Bytes        int64 `json:"bytes"`        // item bytes of the removed versions
	FreedChunks  int   `json:"freed_chunks"` // chunks no longer referenced
	FreedBytes   int64 `json:"freed_bytes"`  // bytes of their files
	Unreferenced int   `json:"unreferenced"` // orphan files removed
	DryRun       bool  `json:"dry_run"`
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
		for id, size := range freed {
			if err := os.Remove(v.blobPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("remove chunk %s: %w", short(id), err)
			}
			res.FreedChunks++
			res.FreedBytes += size
		}
	}
	if !dryRun {
		n, err := v.removeUnreferenced()
		res.Unreferenced = n
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

// removeUnreferenced deletes chunk files the index does not reference.
func (v *Vault) removeUnreferenced() (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(v.dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		known, err := v.chunkKnown(d.Name())
		if err != nil || known {
			return err
		}
		n++
		return os.Remove(p)
	})
	return n, err
}
