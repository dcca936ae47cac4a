package vault

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// reference is a pack entry the index points at: a live chunk, the record
// of a stored version, a deletion mark or a tombstone.
type reference struct {
	Type  entryType
	Key   []byte // the index key that holds the location
	ID    string // the entry's id
	Plain int64  // a chunk's plain size
	location
}

// eachReference calls fn with every pack location the index references.
func (v *Vault) eachReference(fn func(r reference) error) error { return v.eachLocated(false, fn) }

// eachLocated calls fn with every pack location the index holds: those it
// references, and with dead set also the chunks no version references any
// more (prune collects them; until then their location is in the index).
func (v *Vault) eachLocated(dead bool, fn func(r reference) error) error {
	err := v.eachPrefix(prefixChunk, func(k, val []byte) error {
		var rec chunkRecord
		if err := json.Unmarshal(val, &rec); err != nil {
			return fmt.Errorf("index entry %q: %v: %w", k, err, ErrIndexDamaged)
		}
		if rec.Refs <= 0 && !dead {
			return nil
		}
		return fn(reference{Type: entryChunk, Key: k, ID: string(k[len(prefixChunk):]), Plain: rec.Size, location: rec.location})
	})
	if err != nil {
		return err
	}
	err = v.eachPrefix(prefixVersion, func(k, val []byte) error {
		var ver Version
		if err := json.Unmarshal(val, &ver); err != nil {
			return fmt.Errorf("index entry %q: %v: %w", k, err, ErrIndexDamaged)
		}
		return fn(reference{Type: entryItem, Key: k, ID: ver.ID, location: ver.Record})
	})
	if err != nil {
		return err
	}
	err = v.eachPrefix(prefixDeleted, func(k, val []byte) error {
		var d deletionRecord
		if err := json.Unmarshal(val, &d); err != nil {
			return fmt.Errorf("index entry %q: %v: %w", k, err, ErrIndexDamaged)
		}
		return fn(reference{Type: entryDeletion, Key: k, ID: deletionID(d.Source, d.Mailbox, d.FolderID, d.ItemID), location: d.Record})
	})
	if err != nil {
		return err
	}
	return v.eachPrefix(prefixTomb, func(k, val []byte) error {
		var t tombstoneRecord
		if err := json.Unmarshal(val, &t); err != nil {
			return fmt.Errorf("index entry %q: %v: %w", k, err, ErrIndexDamaged)
		}
		return fn(reference{Type: entryTombstone, Key: k, ID: string(k[len(prefixTomb):]), location: t.Record})
	})
}

// referenceOf finds the index's reference to the entry e, if the index
// still points at it there. payload is read for deletion marks only (their
// index key is inside).
func (v *Vault) referenceOf(txn *badger.Txn, e entry, payload func() ([]byte, error)) (reference, bool, error) {
	var key []byte
	switch e.Type {
	case entryChunk:
		key = []byte(prefixChunk + e.ID)
	case entryItem:
		it, err := txn.Get([]byte(prefixID + e.ID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return reference{}, false, nil
		}
		if err != nil {
			return reference{}, false, err
		}
		if key, err = it.ValueCopy(nil); err != nil {
			return reference{}, false, err
		}
	case entryDeletion:
		raw, err := payload()
		if err != nil {
			return reference{}, false, err
		}
		var d deletionRecord
		if b, err := v.codec.decode(deletionNameOfID(e.ID), raw); err != nil || json.Unmarshal(b, &d) != nil {
			return reference{}, false, fmt.Errorf("deletion mark %s in pack %s does not decode: %w", e.ID, short(e.Pack), ErrDamaged)
		}
		key = deletedKey(d.Source, d.Mailbox, d.FolderID, d.ItemID)
	case entryTombstone:
		key = []byte(prefixTomb + e.ID)
	default:
		return reference{}, false, fmt.Errorf("pack %s: unknown entry type %d at %d: %w", short(e.Pack), e.Type, e.Start, ErrDamaged)
	}
	r, ok, err := v.referenceAt(txn, e.Type, key)
	if err != nil || !ok {
		return r, false, err
	}
	return r, r.location == e.location, nil
}

// referenceAt reads the reference held by one index key.
func (v *Vault) referenceAt(txn *badger.Txn, typ entryType, key []byte) (reference, bool, error) {
	r := reference{Type: typ, Key: key}
	var ok bool
	var err error
	switch typ {
	case entryChunk:
		var rec chunkRecord
		ok, err = getJSON(txn, key, &rec)
		ok = ok && rec.Refs > 0
		r.ID, r.Plain, r.location = string(key[len(prefixChunk):]), rec.Size, rec.location
	case entryItem:
		var ver Version
		ok, err = getJSON(txn, key, &ver)
		r.ID, r.location = ver.ID, ver.Record
	case entryDeletion:
		var d deletionRecord
		ok, err = getJSON(txn, key, &d)
		r.ID, r.location = deletionID(d.Source, d.Mailbox, d.FolderID, d.ItemID), d.Record
	case entryTombstone:
		var t tombstoneRecord
		ok, err = getJSON(txn, key, &t)
		r.ID, r.location = string(key[len(prefixTomb):]), t.Record
	}
	return r, ok, err
}

// deletion marks are named by their item's key; the entry's id is a hash
// of it, so the name is rebuilt from the id.
func deletionNameOfID(id string) string { return "deleted/" + id }

// relocate points the reference r at loc, if it still points where r
// says (a concurrent change wins otherwise).
func (v *Vault) relocate(r reference, loc location) error {
	return v.update(func(txn *badger.Txn) error {
		cur, ok, err := v.referenceAt(txn, r.Type, r.Key)
		if err != nil || !ok || cur.location != r.location {
			return err
		}
		return setLocation(txn, r.Type, r.Key, loc)
	})
}

// setLocation rewrites the location held by an index key.
func setLocation(txn *badger.Txn, typ entryType, key []byte, loc location) error {
	var rec any
	switch typ {
	case entryChunk:
		var c chunkRecord
		if _, err := getJSON(txn, key, &c); err != nil {
			return err
		}
		c.location = loc
		rec = c
	case entryItem:
		var ver Version
		if _, err := getJSON(txn, key, &ver); err != nil {
			return err
		}
		ver.Record = loc
		rec = ver
	case entryDeletion:
		var d deletionRecord
		if _, err := getJSON(txn, key, &d); err != nil {
			return err
		}
		d.Record = loc
		rec = d
	case entryTombstone:
		var t tombstoneRecord
		if _, err := getJSON(txn, key, &t); err != nil {
			return err
		}
		t.Record = loc
		rec = t
	}
	return putJSON(txn, key, rec)
}

// copyEntry copies a referenced entry, as it is (still sealed), to the
// current pack and points the index at the copy.
func (v *Vault) copyEntry(r reference, raw []byte) error {
	loc, err := v.appendEntry(r.Type, r.ID, int(r.Plain), raw)
	if err != nil {
		return err
	}
	return v.relocate(r, loc)
}

// rewriteRecord writes the index's own copy of a record (a version, a
// deletion mark, a tombstone) to the current pack, for a record whose pack
// entry is lost or damaged.
func (v *Vault) rewriteRecord(r reference) error {
	var loc location
	err := v.db.View(func(txn *badger.Txn) error {
		var err error
		switch r.Type {
		case entryItem:
			var ver Version
			if _, err = getJSON(txn, r.Key, &ver); err == nil {
				ver.Record = location{}
				loc, err = v.writeRecord(entryItem, ver.ID, itemRecordName(ver.ID), ver)
			}
		case entryDeletion:
			var d deletionRecord
			if _, err = getJSON(txn, r.Key, &d); err == nil {
				d.Record = location{}
				loc, err = v.writeRecord(entryDeletion, r.ID, deletionNameOfID(r.ID), d)
			}
		case entryTombstone:
			var t tombstoneRecord
			if _, err = getJSON(txn, r.Key, &t); err == nil {
				loc, err = v.writeRecord(entryTombstone, r.ID, tombstoneName(r.ID), tombstoneBody{ID: r.ID})
			}
		default:
			err = fmt.Errorf("a %s cannot be rewritten from the index", r.Type)
		}
		return err
	})
	if err != nil {
		return err
	}
	return v.relocate(r, loc)
}

// tombstoneBody is a tombstone's record: the pruned version's id.
type tombstoneBody struct {
	ID string `json:"id"`
}
