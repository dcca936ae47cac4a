package vault

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Problem is one thing verify found wrong.
type Problem struct {
	// Item is the damaged version (empty for problems of chunks alone).
	Item    *Version `json:"item,omitempty"`
	Chunk   string   `json:"chunk,omitempty"`
	Problem string   `json:"problem"`
	// Damage is false for problems that lose nothing (an unreferenced file).
	Damage bool `json:"damage"`
}

// VerifyResult counts what verify checked.
type VerifyResult struct {
	Versions      int `json:"versions"`
	Chunks        int `json:"chunks"`
	ChunksRead    int `json:"chunks_read"`
	DamagedItems  int `json:"damaged_items"`
	DamagedChunks int `json:"damaged_chunks"`
	Unreferenced  int `json:"unreferenced_packs"`
	// UnreferencedBytes are bytes in packs no chunk references (pruned
	// chunks, torn writes): prune reclaims them by repacking.
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
}

// Verify checks every index entry: each version's chunks are in the index
// with the right reference counts and their files exist. With readData it
// also reads every chunk, checks its authentication tag and content hash,
// and checks every item's hash. report is called for each problem, naming
// the damaged item and what a damaged chunk affects.
func (v *Vault) Verify(readData bool, report func(Problem)) (VerifyResult, error) {
	var res VerifyResult
	refs := map[string]int64{}
	chunkState := map[string]error{} // chunk id -> nil when good
	damagedBy := map[string]int{}
	err := v.Walk("", func(ver Version) error {
		res.Versions++
		bad := ""
		for _, id := range ver.Chunks {
			refs[id]++
			st, seen := chunkState[id]
			if !seen {
				st = v.checkChunk(id, readData)
				chunkState[id] = st
				if readData {
					res.ChunksRead++
				}
			}
			if st != nil && bad == "" {
				bad = st.Error()
			}
			if st != nil {
				damagedBy[id]++
			}
		}
		if bad == "" && readData {
			if _, err := v.Read(ver); err != nil {
				bad = err.Error()
			}
		}
		if bad != "" {
			res.DamagedItems++
			ver := ver
			report(Problem{Item: &ver, Problem: bad, Damage: true})
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for id, st := range chunkState {
		if st != nil {
			res.DamagedChunks++
			report(Problem{Chunk: id, Problem: fmt.Sprintf("%v; it affects %d stored item version(s)", st, damagedBy[id]), Damage: true})
		}
	}
	// Reference counts and files nobody references.
	indexed := map[string]bool{}
	err = v.eachChunk(func(id string, rec chunkRecord, err error) error {
		if err != nil {
			report(Problem{Chunk: id, Problem: "its index record is unreadable", Damage: true})
			return nil
		}
		if rec.Refs > 0 {
			indexed[id] = true
			res.Chunks++
		}
		if rec.Refs != refs[id] {
			report(Problem{Chunk: id, Problem: fmt.Sprintf("the index counts %d references, the items hold %d (prune would misjudge it)", rec.Refs, refs[id]), Damage: rec.Refs < refs[id]})
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for id := range refs {
		if !indexed[id] {
			report(Problem{Chunk: id, Problem: "items reference it but the index has no record of it", Damage: true})
		}
	}
	live, err := v.packUsage()
	if err != nil {
		return res, err
	}
	cur := v.currentPack()
	err = v.eachPack(func(pack, _ string, size int64) error {
		switch {
		case live[pack] == 0 && pack != cur:
			res.Unreferenced++
			report(Problem{Chunk: pack, Problem: fmt.Sprintf("pack %s holds no chunk an item references (%d bytes; prune removes it)", short(pack), size)})
		case size > live[pack] && pack != cur:
			res.UnreferencedBytes += size - live[pack]
		}
		return nil
	})
	return res, err
}

// checkChunk tells whether a chunk's pack holds its bytes and, with
// readData, whether they decrypt and hash to its id.
func (v *Vault) checkChunk(id string, readData bool) error {
	if readData {
		_, err := v.readChunk(id)
		return err
	}
	rec, ok, err := v.chunk(id)
	if err != nil {
		return err
	}
	if !ok || rec.Refs <= 0 {
		return fmt.Errorf("chunk %s is not in the index: %w", short(id), ErrDamaged)
	}
	fi, err := os.Stat(v.packPath(rec.Pack))
	if err != nil {
		return fmt.Errorf("chunk %s: pack %s is missing: %w", short(id), short(rec.Pack), ErrDamaged)
	}
	if fi.Size() < rec.Offset+rec.Stored {
		return fmt.Errorf("chunk %s: pack %s is cut short: %w", short(id), short(rec.Pack), ErrDamaged)
	}
	return nil
}

// packUsage sums, per pack, the bytes of the chunks the index references.
func (v *Vault) packUsage() (map[string]int64, error) {
	live := map[string]int64{}
	err := v.eachChunk(func(_ string, rec chunkRecord, err error) error {
		if err == nil && rec.Refs > 0 {
			live[rec.Pack] += rec.Stored
		}
		return err
	})
	return live, err
}

// eachPack calls fn for every pack file with its size.
func (v *Vault) eachPack(fn func(pack, path string, size int64) error) error {
	return filepath.WalkDir(filepath.Join(v.dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(d.Name(), p, info.Size())
	})
}
