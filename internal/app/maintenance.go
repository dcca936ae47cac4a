package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// NewRunID names a run: when it started, and random bits so that two runs
// started in one second differ.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// Group is a mailbox, or a folder of one, with what the storage holds of it.
type Group struct {
	Name  string `json:"name"`
	Items int    `json:"items"`
	Bytes int64  `json:"bytes"`
}

// Browse calls fn for every version the selection chooses: the newest of
// each item, or every version with AllVersions.
func (s *Service) Browse(_ context.Context, ref StorageRef, sel Selection, fn func(vault.Version) error) error {
	if err := sel.prepare(); err != nil {
		return err
	}
	return s.withStorage(ref, vault.ModeRead, func(v *vault.Vault) error { return eachSelected(v, &sel, fn) })
}

// StoredItem is one stored version read back, with every version of its
// item (oldest first).
type StoredItem struct {
	Version  vault.Version
	Content  []byte
	Versions []vault.Version
}

// Item reads one stored version, by the id ls and find print, checking
// every chunk: a version the storage does not hold is ErrNotFound, one it
// cannot give back intact wraps vault.ErrDamaged.
func (s *Service) Item(_ context.Context, ref StorageRef, id string) (StoredItem, error) {
	var it StoredItem
	err := s.withStorage(ref, vault.ModeRead, func(v *vault.Vault) error {
		var err error
		if it.Version, err = v.Lookup(id); errors.Is(err, vault.ErrNoVersion) {
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		} else if err != nil {
			return err
		}
		if it.Content, err = v.Read(it.Version); err != nil {
			return err
		}
		it.Versions, err = v.Versions(it.Version)
		return err
	})
	return it, err
}

// Groups counts what the selection chooses per mailbox or, when it names a
// mailbox, per folder of that mailbox; by name.
func (s *Service) Groups(ctx context.Context, ref StorageRef, sel Selection) ([]Group, error) {
	groups := map[string]*Group{}
	err := s.Browse(ctx, ref, sel, func(ver vault.Version) error {
		name := ver.Mailbox
		if sel.Mailbox != "" {
			name = ver.Mailbox + "/" + ver.FolderPath
		}
		gr, ok := groups[name]
		if !ok {
			gr = &Group{Name: name}
			groups[name] = gr
		}
		gr.Items++
		gr.Bytes += ver.Size
		return nil
	})
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Verified is what Verify found.
type Verified struct {
	vault.VerifyResult
	// Problems are every problem found, in the order found.
	Problems []vault.Problem
}

// Verify checks a storage (with readData, every byte of it) and changes
// nothing; onProblem hears each problem as it is found. A damaged storage
// is a result, not an error: Healthy says so.
func (s *Service) Verify(_ context.Context, ref StorageRef, readData bool, onProblem func(vault.Problem)) (Verified, error) {
	var out Verified
	err := s.withStorage(ref, vault.ModeCheck, func(v *vault.Vault) error {
		res, err := v.Verify(readData, func(p vault.Problem) {
			out.Problems = append(out.Problems, p)
			if onProblem != nil {
				onProblem(p)
			}
		})
		out.VerifyResult = res
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return nil
	})
	return out, err
}

// Pruned is what Prune removed, or with a dry run would remove.
type Pruned struct {
	vault.PruneResult
	Policy domain.Retention
}

// Prune applies the storage's retention policy. Every version it removes
// is recorded in the log before it goes; onPruned hears each. A dry run
// records and removes nothing.
func (s *Service) Prune(ctx context.Context, ref StorageRef, dryRun bool, onPruned func(vault.Pruned)) (Pruned, error) {
	var out Pruned
	err := s.withStorage(ref, vault.ModePrune, func(v *vault.Vault) error {
		now := s.now().UTC()
		run := "prune-" + NewRunID(now)
		out.Policy = v.Retention()
		if !dryRun {
			if err := projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.PruneStarted, ID: domain.DeriveID(run, "start"), Run: run, Time: now, Reason: v.Retention().String()}); err != nil {
				return err
			}
		}
		res, err := v.Prune(now, dryRun, func(p vault.Pruned) error {
			if onPruned != nil {
				onPruned(p)
			}
			if dryRun {
				return nil
			}
			return projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.VersionPruned, ID: domain.DeriveID(run, p.Version.ID), Run: run, Time: s.now().UTC(),
				Mailbox: p.Version.Mailbox, Folder: p.Version.FolderPath, FolderID: p.Version.FolderID, ItemID: p.Version.ItemID,
				ChangeKey: p.Version.ChangeKey, Size: p.Version.Size, SHA256: p.Version.SHA256, Reason: p.Reason})
		})
		out.PruneResult = res
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if dryRun {
			return nil
		}
		return projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.PruneFinished, ID: domain.DeriveID(run, "end"), Run: run, Time: s.now().UTC(),
			Count: res.Versions, Bytes: res.FreedBytes})
	})
	return out, err
}

// Repaired is what Repair did, and what it could not keep.
type Repaired struct {
	vault.RepairResult
	Lost []vault.Version
}

// Repair makes a damaged storage whole where its data allows (with
// rebuild, the index is rebuilt from the packs even when it looks sound).
// Every version it cannot keep is recorded in the log (ids, sizes and
// hashes, never content) and given to onLost.
func (s *Service) Repair(ctx context.Context, ref StorageRef, rebuild bool, onLost func(vault.Version)) (Repaired, error) {
	var out Repaired
	err := s.withStorage(ref, vault.ModeRepair, func(v *vault.Vault) error {
		now := s.now().UTC()
		run := "repair-" + NewRunID(now)
		if err := projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.RepairStarted, ID: domain.DeriveID(run, "start"), Run: run, Time: now, Reason: v.Dir()}); err != nil {
			return err
		}
		res, err := v.Repair(rebuild, func(ver vault.Version) error {
			out.Lost = append(out.Lost, ver)
			if onLost != nil {
				onLost(ver)
			}
			return projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.VersionLost, ID: domain.DeriveID(run, ver.ID), Run: run, Time: s.now().UTC(),
				Mailbox: ver.Mailbox, Folder: ver.FolderPath, FolderID: ver.FolderID, ItemID: ver.ItemID, ChangeKey: ver.ChangeKey,
				Size: ver.Size, SHA256: ver.SHA256, Reason: "damaged in the storage"})
		})
		out.RepairResult = res
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		return projections.RecordOps(ctx, s.Log, domain.Event{Type: domain.RepairFinished, ID: domain.DeriveID(run, "end"), Run: run, Time: s.now().UTC(),
			Count: res.Lost, Reason: fmt.Sprintf("index rebuilt: %v; packs rewritten: %d; records rewritten: %d", res.IndexRebuilt, res.PacksRewritten, res.RecordsRewritten)})
	})
	return out, err
}

// StorageStats is what a storage holds and how it is kept.
type StorageStats struct {
	vault.Stats
	Dir       string
	Encrypted bool
	Retention domain.Retention
	// Objects says where an object-storage storage's packs are ("": in Dir).
	Objects string
}

// StorageStats reads a storage's statistics.
func (s *Service) StorageStats(_ context.Context, ref StorageRef) (StorageStats, error) {
	var out StorageStats
	err := s.withStorage(ref, vault.ModeRead, func(v *vault.Vault) error {
		st, err := v.Stats()
		out = StorageStats{Stats: st, Dir: v.Dir(), Encrypted: v.Encrypted(), Retention: v.Retention(), Objects: v.Location()}
		return err
	})
	return out, err
}

// ChangeStoragePassword sets a storage's password (ref's key holds the old
// one, or the recovery key); a named storage's new password is kept in the
// secret store.
func (s *Service) ChangeStoragePassword(_ context.Context, ref StorageRef, newPassword credential.Secret) error {
	r, err := s.resolve(ref)
	if err != nil {
		return err
	}
	r.Mode = vault.ModeRead // the key record changes, not the index
	v, err := s.open(r)
	if err != nil {
		return err
	}
	defer s.Vaults.Release(v)
	if err := v.ChangePassword(r.Password, []byte(newPassword.Reveal())); err != nil {
		return err
	}
	if byName(ref.Storage) {
		if err := s.Secrets.Put(StorageSecretName(ref.Storage), newPassword); err != nil {
			return fmt.Errorf("the password changed, but keeping it in the secret store failed: %w", err)
		}
	}
	return nil
}

// RetentionChange is a change of retention policy: nil fields keep the
// current setting. KeepDeleted is a period (30d, 1y) or "forever".
type RetentionChange struct {
	KeepVersions *int    `json:"keep_versions,omitempty"`
	KeepDeleted  *string `json:"keep_deleted,omitempty"`
}

// ParseRetention reads a retention policy as the command line gives it.
func ParseRetention(keepVersions int, keepDeleted string) (domain.Retention, error) {
	r := domain.Retention{KeepVersions: keepVersions}
	if keepDeleted != "" && keepDeleted != "forever" {
		p, err := domain.ParsePeriod(keepDeleted)
		if err != nil {
			return r, Invalid("--keep-deleted: %v", err)
		}
		r.KeepDeletedFor = &p
	}
	if err := r.Validate(); err != nil {
		return r, Invalid("%v", err)
	}
	return r, nil
}

// StorageRetention changes a storage's retention policy as ch says, and
// returns the policy in force.
func (s *Service) StorageRetention(_ context.Context, ref StorageRef, ch RetentionChange) (domain.Retention, error) {
	var out domain.Retention
	err := s.withStorage(ref, vault.ModeWrite, func(v *vault.Vault) error {
		if ch.KeepVersions != nil || ch.KeepDeleted != nil {
			cur := v.Retention()
			versions, deleted := cur.KeepVersions, ""
			if cur.KeepDeletedFor != nil {
				deleted = cur.KeepDeletedFor.String()
			}
			if ch.KeepVersions != nil {
				versions = *ch.KeepVersions
			}
			if ch.KeepDeleted != nil {
				deleted = *ch.KeepDeleted
			}
			r, err := ParseRetention(versions, deleted)
			if err != nil {
				return err
			}
			if err := v.SetRetention(r); err != nil {
				return err
			}
		}
		out = v.Retention()
		return nil
	})
	return out, err
}
