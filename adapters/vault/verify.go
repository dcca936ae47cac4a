package vault

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mailvault/mailvault/adapters/badgerdb"
)

// Problem is one thing verify found wrong.
type Problem struct {
	// Item is the affected version (empty for problems of chunks, packs,
	// the index or the settings alone).
	Item  *Version `json:"item,omitempty"`
	Chunk string   `json:"chunk,omitempty"`
	Pack  string   `json:"pack,omitempty"`
	// File is the damaged file of the index or the settings.
	File    string `json:"file,omitempty"`
	Problem string `json:"problem"`
	// Damage is false for notes that lose nothing (a torn tail, a pack
	// prune will reclaim).
	Damage bool `json:"damage"`
	// Lost says the item's content cannot be read back from the storage.
	// Repair removes it from the index, so that the next backup fetches it
	// again if the mailbox still has it.
	Lost bool `json:"lost,omitempty"`
}

// VerifyResult counts what verify checked and found.
type VerifyResult struct {
	Versions   int `json:"versions"`
	Chunks     int `json:"chunks"`
	ChunksRead int `json:"chunks_read"`
	Packs      int `json:"packs"`
	// DamagedItems are versions whose content is lost.
	DamagedItems  int `json:"damaged_items"`
	DamagedChunks int `json:"damaged_chunks"`
	DamagedPacks  int `json:"damaged_packs"`
	// RepairableItems have intact content but a damaged record in their
	// pack: the index still has it, and repair writes it again.
	RepairableItems int  `json:"repairable_items"`
	IndexDamaged    bool `json:"index_damaged"`
	SettingsDamaged bool `json:"settings_damaged"`
	// RecordsInPacks counts the item versions the packs describe, when
	// the index cannot be used: what rebuilding the index brings back.
	RecordsInPacks int `json:"records_in_packs,omitempty"`
	Unreferenced   int `json:"unreferenced_packs"`
	// UnreferencedBytes are bytes in packs nothing references (pruned
	// chunks, torn writes): prune reclaims them by repacking.
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
}

// Healthy tells whether nothing is damaged.
func (r VerifyResult) Healthy() bool {
	return r.DamagedItems == 0 && r.DamagedChunks == 0 && r.DamagedPacks == 0 && r.RepairableItems == 0 &&
		!r.IndexDamaged && !r.SettingsDamaged
}

// Verify checks the whole storage and calls report for every problem: the
// settings and their copy; the index's files (against the checksums of its
// last clean close) and its records; every pack the index knows is there
// and whole, every pack file is known; every entry header of every pack
// reads, and every entry the index references is where it says. With
// readData it also reads every entry, checks its checksum, and decodes
// every chunk the index references (authentication tag and content hash).
// Each item whose content is lost is named; each damaged chunk says how
// many versions it takes with it.
func (v *Vault) Verify(readData bool, report func(Problem)) (VerifyResult, error) {
	res, _, err := v.inspect(readData, report)
	return res, err
}

// findings are what inspect found, for repair to act on.
type findings struct {
	damagedPacks map[string]bool   // missing, cut short, or with damaged entries
	badChunks    map[string]string // chunk id -> why its content is lost
	badRecords   map[string]string // version id -> why its pack record is
}

func (v *Vault) inspect(readData bool, report func(Problem)) (VerifyResult, *findings, error) {
	var res VerifyResult
	if v.db != nil {
		// Files may have gone since the storage was opened.
		v.health = Health{Settings: v.health.Settings}
		if err := v.checkHealth(); err != nil {
			return res, nil, err
		}
	}
	f := &findings{damagedPacks: map[string]bool{}, badChunks: map[string]string{}, badRecords: map[string]string{}}
	damage := func(p Problem) {
		p.Damage = true
		report(p)
	}
	for _, s := range v.health.Settings {
		res.SettingsDamaged = true
		damage(Problem{File: configFile, Problem: s + "; the other copy is intact and repair writes this one again"})
	}
	if v.db == nil {
		res.IndexDamaged = true
		damage(Problem{File: indexDir, Problem: v.health.Index + "; repair rebuilds the index from the packs"})
		return res, f, v.verifyPacksOnly(readData, &res, report)
	}
	if v.readOnly {
		// A reader leaves the checksums of the last clean close in place:
		// every index file can be compared with them, byte for byte.
		if _, err := badgerdb.Check(filepath.Join(v.dir, indexDir), true, v.Encrypted()); err != nil {
			var de *badgerdb.DamagedError
			if !errors.As(err, &de) {
				return res, f, err
			}
			res.IndexDamaged = true
			damage(Problem{File: filepath.Join(indexDir, de.File), Problem: de.Problem + "; repair rebuilds the index from the packs"})
		}
	}
	if v.health.Index != "" {
		res.IndexDamaged = true
		damage(Problem{File: indexDir, Problem: v.health.Index + "; repair rebuilds the index from the packs"})
	}
	for _, p := range v.health.UnknownPacks {
		damage(Problem{Pack: p, Problem: "the index does not know this pack file; repair rebuilds the index from the packs"})
	}
	lostPacks := map[string]string{}
	for _, p := range v.health.MissingPacks {
		lostPacks[p] = "is missing"
	}
	for _, p := range v.health.CutPacks {
		lostPacks[p] = "is shorter than when it was sealed"
	}
	for p, why := range lostPacks {
		res.DamagedPacks++
		f.damagedPacks[p] = true
		damage(Problem{Pack: p, Problem: "pack " + why})
	}

	expect := map[string]int{}
	if err := v.eachReference(func(r reference) error {
		expect[r.Pack]++
		return nil
	}); err != nil {
		return res, f, err
	}
	states := map[string]packRecord{}
	if err := v.eachPackRecord(func(pack string, rec packRecord) error {
		states[pack] = rec
		return nil
	}); err != nil {
		return res, f, err
	}
	badChunks, badRecords := f.badChunks, f.badRecords
	cur := v.currentPack()
	var packs []string
	sizes := map[string]int64{}
	if err := v.eachPackFile(func(pack string, size int64) error {
		packs = append(packs, pack)
		sizes[pack] = size
		return nil
	}); err != nil {
		return res, f, err
	}
	for _, pack := range packs {
		if states[pack].State == packSetAside {
			continue // damaged, emptied by repair, kept by the remote
		}
		res.Packs++
		if err := v.verifyPack(pack, states[pack], pack == cur, readData, expect[pack], f, &res, report); err != nil {
			return res, f, err
		}
	}
	for p := range lostPacks {
		if err := v.eachReference(func(r reference) error {
			if r.Pack != p {
				return nil
			}
			if r.Type == entryChunk {
				if r.end() > sizes[p] || !v.chunkReadable(r, readData) {
					badChunks[r.ID] = fmt.Sprintf("its pack %s %s", short(p), lostPacks[p])
				}
			} else if r.Type == entryItem {
				badRecords[r.ID] = fmt.Sprintf("its record's pack %s %s", short(p), lostPacks[p])
			}
			return nil
		}); err != nil {
			return res, f, err
		}
	}

	// Every version: its chunks known and intact. The reference counts
	// the index keeps are checked against what the versions hold.
	refs := map[[32]byte]int64{}
	if err := v.eachChunk(func(id string, rec chunkRecord, err error) error {
		if err != nil {
			res.IndexDamaged = true
			damage(Problem{Chunk: id, Problem: "its index record does not decode; repair rebuilds the index"})
			return nil
		}
		if rec.Refs > 0 {
			res.Chunks++
			refs[chunkKey(id)] = rec.Refs
		}
		return nil
	}); err != nil {
		return res, f, err
	}
	affected := map[string]int{}
	err := v.Walk("", func(ver Version) error {
		res.Versions++
		lost := ""
		for _, id := range ver.Chunks {
			k := chunkKey(id)
			if _, ok := refs[k]; !ok && lost == "" {
				lost = fmt.Sprintf("chunk %s is not in the index", short(id))
			}
			refs[k]--
			if why, bad := badChunks[id]; bad {
				affected[id]++
				if lost == "" {
					lost = fmt.Sprintf("chunk %s: %s", short(id), why)
				}
			}
		}
		switch {
		case lost != "":
			res.DamagedItems++
			damage(Problem{Item: &ver, Problem: lost, Lost: true})
		case badRecords[ver.ID] != "":
			res.RepairableItems++
			damage(Problem{Item: &ver, Problem: badRecords[ver.ID] + "; its content is intact and repair writes the record again"})
		}
		return nil
	})
	if err != nil {
		return res, f, err
	}
	var mismatched []string
	for k, n := range refs {
		if n != 0 {
			mismatched = append(mismatched, hex.EncodeToString(k[:]))
		}
	}
	sort.Strings(mismatched)
	for _, id := range mismatched {
		res.IndexDamaged = true
		damage(Problem{Chunk: id, Problem: "the index's reference count does not match the items that hold it (prune would misjudge it); repair rebuilds the index"})
	}
	var ids []string
	for id := range badChunks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		res.DamagedChunks++
		damage(Problem{Chunk: id, Problem: fmt.Sprintf("%s; it affects %d stored item version(s)", badChunks[id], affected[id])})
	}
	return res, f, nil
}

func chunkKey(id string) [32]byte {
	var k [32]byte
	if n, err := hex.Decode(k[:], []byte(id)); err != nil || n != 32 {
		copy(k[:], id) // not an id this storage makes: still counted by its bytes
	}
	return k
}

// chunkReadable tells whether a referenced chunk's bytes can be read (and,
// with readData, decode), whatever its entry header says.
func (v *Vault) chunkReadable(r reference, readData bool) bool {
	raw, err := v.readPayload(r.location)
	if err != nil {
		return false
	}
	if !readData {
		return true
	}
	_, err = v.codec.decodeChunk(r.ID, raw)
	return err == nil
}

// verifyPack reads one pack's entries and checks those the index
// references.
func (v *Vault) verifyPack(pack string, rec packRecord, current, readData bool, expected int,
	f *findings, res *VerifyResult, report func(Problem)) error {
	badChunks, badRecords := f.badChunks, f.badRecords
	limit := int64(0)
	if rec.State == packSealed && rec.ValidEnd > 0 {
		limit = rec.ValidEnd
	}
	s, size, err := v.openScan(pack, limit)
	if err != nil {
		return err
	}
	defer s.Close()
	damaged := false
	found := 0
	seen := map[int64]bool{}
	var live int64
	err = v.db.View(func(txn *badger.Txn) error {
		return s.scan(readData, func(e entry, payload []byte, perr error) error {
			r, referenced, err := v.referenceOf(txn, e, func() ([]byte, error) {
				if payload != nil {
					return payload, nil
				}
				return v.readPayload(e.location)
			})
			if err != nil && !errors.Is(err, ErrDamaged) {
				return err
			}
			if !referenced {
				if perr != nil || err != nil {
					// Nothing needs these bytes, but the file is not as
					// written: repair rewrites the pack without them.
					damaged = true
					report(Problem{Pack: pack, Problem: fmt.Sprintf("an unreferenced %s at %d is damaged", e.Type, e.Offset), Damage: true})
				}
				return nil
			}
			found++
			seen[e.Offset] = true
			live += e.end() - e.Start
			if perr == nil && readData {
				perr = v.checkPayload(e, payload)
			}
			if readData && e.Type == entryChunk {
				res.ChunksRead++
			}
			if perr != nil {
				damaged = true
				v.markBad(r, perr.Error(), badChunks, badRecords)
				report(Problem{Pack: pack, Problem: fmt.Sprintf("the %s %s at %d: %v", e.Type, short(e.ID), e.Offset, perr), Damage: true})
			}
			return nil
		}, func(from, to int64, problem string) {
			if current && problem == "cut short" {
				return // the entry being written now
			}
			damaged = true
			report(Problem{Pack: pack, Problem: fmt.Sprintf("bytes %d to %d: %s", from, to, problem), Damage: true})
		})
	})
	if err != nil {
		return err
	}
	if found < expected {
		// The index points at entries this scan did not find: their
		// headers are damaged or their bytes gone.
		damaged = true
		if err := v.eachReference(func(r reference) error {
			if r.Pack != pack || seen[r.Offset] {
				return nil
			}
			why := fmt.Sprintf("its entry in pack %s at %d is damaged", short(pack), r.Offset)
			report(Problem{Pack: pack, Problem: fmt.Sprintf("the index references a %s %s at %d, where no whole entry is", r.Type, short(r.ID), r.Offset), Damage: true})
			if r.Type != entryChunk {
				v.markBad(r, why, badChunks, badRecords)
			} else if r.end() > size || !v.chunkReadable(r, readData) {
				badChunks[r.ID] = fmt.Sprintf("its bytes in pack %s at %d are gone or damaged", short(pack), r.Offset)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if damaged {
		res.DamagedPacks++
		f.damagedPacks[pack] = true
	}
	if !current && found == 0 && rec.State != packOpen {
		res.Unreferenced++
		when := "prune removes it"
		if rec.locked(time.Now()) {
			when = "locked until " + rec.RetainUntil.UTC().Format(time.RFC3339) + "; a prune after that removes it"
		}
		report(Problem{Pack: pack, Problem: fmt.Sprintf("pack %s holds nothing the index references (%d bytes; %s)", short(pack), size, when)})
	} else if !current {
		res.UnreferencedBytes += max(0, size-live)
	}
	return nil
}

// checkPayload decodes an entry's payload as what it is.
func (v *Vault) checkPayload(e entry, payload []byte) error {
	switch e.Type {
	case entryChunk:
		_, err := v.codec.decodeChunk(e.ID, payload)
		return err
	case entryItem:
		b, err := v.codec.decode(itemRecordName(e.ID), payload)
		if err == nil {
			var ver Version
			if json.Unmarshal(b, &ver) != nil || ver.ID != e.ID {
				err = fmt.Errorf("the record does not decode: %w", ErrDamaged)
			}
		}
		return err
	case entryDeletion:
		b, err := v.codec.decode(deletionNameOfID(e.ID), payload)
		var d deletionRecord
		if err == nil && (json.Unmarshal(b, &d) != nil || deletionID(d.Source, d.Mailbox, d.FolderID, d.ItemID) != e.ID) {
			err = fmt.Errorf("the deletion mark does not decode: %w", ErrDamaged)
		}
		return err
	case entryTombstone:
		b, err := v.codec.decode(tombstoneName(e.ID), payload)
		var t tombstoneBody
		if err == nil && (json.Unmarshal(b, &t) != nil || t.ID != e.ID) {
			err = fmt.Errorf("the tombstone does not decode: %w", ErrDamaged)
		}
		return err
	}
	return nil
}

func (v *Vault) markBad(r reference, why string, badChunks, badRecords map[string]string) {
	switch r.Type {
	case entryChunk:
		badChunks[r.ID] = why
	case entryItem:
		badRecords[r.ID] = why
	}
}

// verifyPacksOnly checks the packs of a storage whose index cannot be
// used, and counts the item versions a rebuilt index would hold.
func (v *Vault) verifyPacksOnly(readData bool, res *VerifyResult, report func(Problem)) error {
	tombs := map[string]bool{}
	items := map[string]bool{}
	err := v.eachPackFile(func(pack string, _ int64) error {
		res.Packs++
		s, _, err := v.openScan(pack, 0)
		if err != nil {
			return err
		}
		defer s.Close()
		damaged := false
		err = s.scan(readData, func(e entry, payload []byte, perr error) error {
			if perr == nil && readData {
				perr = v.checkPayload(e, payload)
			}
			if perr != nil {
				damaged = true
				report(Problem{Pack: pack, Problem: fmt.Sprintf("%s %s at %d: %v", e.Type, short(e.ID), e.Offset, perr), Damage: true})
				return nil
			}
			switch e.Type {
			case entryItem:
				items[e.ID] = true
			case entryTombstone:
				tombs[e.ID] = true
			case entryChunk:
				if readData {
					res.ChunksRead++
				}
			}
			return nil
		}, func(from, to int64, problem string) {
			damaged = true
			report(Problem{Pack: pack, Problem: fmt.Sprintf("bytes %d to %d: %s", from, to, problem), Damage: true})
		})
		if damaged {
			res.DamagedPacks++
		}
		return err
	})
	for id := range items {
		if !tombs[id] {
			res.RecordsInPacks++
		}
	}
	return err
}

// quickCheck is verify without reading data, returning what is damaged.
func (v *Vault) quickCheck() ([]Problem, error) {
	var problems []Problem
	_, err := v.Verify(false, func(p Problem) {
		if p.Damage {
			problems = append(problems, p)
		}
	})
	return problems, err
}
