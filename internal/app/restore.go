package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailvault/mailvault/adapters/export"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// Progress hears how far an operation over stored items has got.
type Progress interface {
	// Start gives the number of items the operation will go through.
	Start(total int)
	// Add counts one item done, of this size.
	Add(bytes int64)
	Stop()
}

// RestoreRun is a restore: what, from which storage, to which server.
type RestoreRun struct {
	StorageRef
	Selection Selection `json:"filter"`
	// To is the connection restored to.
	To string `json:"to"`
	// TargetMailbox: another mailbox than the item's own ("" its own).
	TargetMailbox string `json:"target_mailbox,omitempty"`
	// Collisions: what to do with an item already there (skip, replace,
	// duplicate).
	Collisions string `json:"collisions"`
	// Into: a folder the items are restored under ("" their own folders).
	Into string `json:"into,omitempty"`
	// Job names the backup job whose storage this is ("" the only job
	// backing up into the storage, if one is).
	Job string `json:"job,omitempty"`
}

// Restored is what a restore did.
type Restored struct {
	Report *projections.RestoreReport
	// Damaged names each item the storage could not give back intact:
	// id, mailbox/folder, subject, why (for the caller's eyes; the log has
	// ids only).
	Damaged []string
}

// Restore writes stored items back to a server. A restore with the same
// parameters as an unfinished one continues it. Items that fail (on the
// server, or damaged in the storage) are counted in the report, whose
// State is then finished with warnings; a restore that could not go on
// returns its report and a *NotFinished.
func (s *Service) Restore(ctx context.Context, in RestoreRun, progress Progress) (Restored, error) {
	var out Restored
	if err := in.Selection.prepare(); err != nil {
		return out, err
	}
	ref, err := s.resolve(in.StorageRef)
	if err != nil {
		return out, err
	}
	_, agg, err := s.Configuration()
	if err != nil {
		return out, err
	}
	if in.Job != "" {
		if err := agg.HasJob(in.Job); err != nil {
			return out, err
		}
	} else if users := agg.JobsUsingStorage(in.Storage); len(users) == 1 {
		in.Job = users[0] // the one job backing up into this storage
	}
	srv, conn, err := s.openServer(ctx, in.To, Scope{})
	if err != nil {
		return out, err
	}
	defer srv.Close()
	ref.Mode = vault.ModeRead
	v, err := s.open(ref)
	if err != nil {
		return out, err
	}
	defer s.Vaults.Release(v)

	sel := &in.Selection
	key := domain.DeriveID("restore", v.Dir(), in.To, sel.Mailbox, sel.Folder, strings.Join(sel.Items, ","), sel.After, sel.Before, in.TargetMailbox, in.Collisions, in.Into)
	if sel.AsOf != "" || sel.Subject != "" || sel.From != "" || sel.Recipient != "" {
		// Kept apart so that the restores recorded before these existed
		// keep their runs.
		key = domain.DeriveID(key, sel.AsOf, sel.Subject, sel.From, sel.Recipient)
	}
	run, prior, err := restoreRun(s.Log, key[:12])
	if err != nil {
		return out, err
	}
	pub, _ := s.Log.Transport()
	r := pipeline.NewRestorer(pipeline.RestoreDeps{Publisher: pub, Target: srv.Target()},
		pipeline.RestoreConfig{Run: run, TargetMailbox: in.TargetMailbox, IntoFolder: in.Into, Collisions: in.Collisions, Job: in.Job, Done: prior.Done, Started: prior.Begun})
	if err := r.Start(fmt.Sprintf("storage %s to %s, collisions %s", v.Dir(), in.To, in.Collisions)); err != nil {
		return out, err
	}
	total, multi, err := sourcesOf(v, sel)
	if err != nil {
		return out, err
	}
	if len(multi) > 0 && sel.Source == "" {
		// A mailbox backed up through two connections: restore the
		// backup made through the server restored to, if there is one.
		sel.Source = conn.Identity()
		if total, _, err = sourcesOf(v, sel); err != nil {
			return out, err
		}
		if total == 0 {
			sel.Source = ""
			_, multi, _ = sourcesOf(v, sel)
			return out, ambiguousSources(multi)
		}
	}
	progress.Start(total)
	walkErr := eachSelected(v, sel, func(ver vault.Version) error {
		defer progress.Add(ver.Size)
		if prior.Done[ver.ID] {
			return nil
		}
		item := pipeline.RestoreItem{VersionID: ver.ID, Mailbox: ver.Mailbox, Folder: ver.FolderPath, ItemID: ver.ItemID, Kind: ver.Kind, Format: ver.Format}
		content, err := v.Read(ver)
		if errors.Is(err, vault.ErrDamaged) {
			// Recorded as failed (ids only; the subject is for the
			// caller, never logged); everything else is restored, and a
			// later run tries it again.
			out.Damaged = append(out.Damaged, fmt.Sprintf("%s %s/%s %q: %v", ver.ID, ver.Mailbox, ver.FolderPath, ver.Subject, err))
			return r.Fail(item, &domain.Failure{Class: domain.ClassDirty, Code: "DamagedInStorage", Message: "the storage cannot give this item back intact (see mailvault verify)"})
		}
		if err != nil {
			return err
		}
		item.Content = content
		return r.Restore(ctx, item)
	})
	progress.Stop()
	rep, _, err := projections.LoadRestore(s.Log, run)
	if err != nil {
		return out, err
	}
	out.Report = rep
	if walkErr != nil {
		rep.State = domain.StateNotFinished
		return out, &NotFinished{Run: run, Err: walkErr}
	}
	state := domain.StateFinished
	if rep.Failed > 0 {
		state = domain.StateWarnings
	}
	if err := r.Finish(state); err != nil {
		return out, err
	}
	rep.State = state
	return out, nil
}

// restoreRun finds the run of a restore: the unfinished run with the same
// parameters (continued), or a new one after the last finished.
func restoreRun(lg projections.Scanner, key string) (string, *projections.RestoreReport, error) {
	for n := 1; ; n++ {
		run := fmt.Sprintf("restore-%s-%d", key, n)
		rep, found, err := projections.LoadRestore(lg, run)
		if err != nil {
			return "", nil, err
		}
		if !found || rep.State == domain.StateRunning || rep.State == domain.StateNotFinished {
			return run, rep, nil
		}
	}
}

// ExportRun is an export: what, from which storage, in which format, to
// which path.
type ExportRun struct {
	StorageRef
	Selection Selection `json:"filter"`
	Format    string    `json:"format"`
	// Out is where the export is written (a directory, or a zip file).
	Out string `json:"out"`
	// Contacts says how contacts are written (vCard version, files).
	Contacts export.Options `json:"contacts"`
}

// Export writes stored items out in a standard format. It continues an
// interrupted export of the same selection into the same place; items
// damaged in the storage are named in the result, and the rest goes on.
func (s *Service) Export(_ context.Context, in ExportRun, progress Progress) (export.Result, error) {
	var res export.Result
	if err := in.Selection.prepare(); err != nil {
		return res, err
	}
	sel := &in.Selection
	// Whatever stops an export midway is fixed by running it again: it
	// continues where it stopped.
	unfinished := func(err error) error { return fmt.Errorf("export: %w; run the same command again to continue", err) }
	// The storage first: an export refused because the storage is busy
	// has created nothing.
	err := s.withStorage(in.StorageRef, vault.ModeRead, func(v *vault.Vault) error {
		total, multi, err := sourcesOf(v, sel)
		if err != nil {
			return unfinished(err)
		}
		if len(multi) > 0 {
			return ambiguousSources(multi)
		}
		ex, err := export.New(in.Format, in.Out, v.ID()+"\x00"+sel.key(), in.Contacts)
		if errors.Is(err, export.ErrRefused) {
			return Invalid("%v", err)
		}
		if err != nil {
			return err // the system's: a read-only or full disk, permissions
		}
		progress.Start(total)
		defer progress.Stop()
		err = eachSelected(v, sel, func(ver vault.Version) error {
			defer progress.Add(ver.Size)
			it := export.Item{ID: ver.ID, Subject: ver.Subject, Mailbox: ver.Mailbox, Folder: ver.FolderPath, FolderID: ver.FolderID,
				Kind: ver.Kind, Format: ver.Format}
			if !ex.Wanted(it) || ex.Exported(it) {
				return nil
			}
			content, err := v.Read(ver)
			if errors.Is(err, vault.ErrDamaged) {
				ex.Damaged(it, err) // named in the result; the rest goes on
				return nil
			}
			if err != nil {
				return err
			}
			it.Content = content
			return ex.Add(it)
		})
		if err != nil {
			res = ex.Abort()
			return unfinished(err)
		}
		if res, err = ex.Close(); err != nil {
			return unfinished(err)
		}
		return nil
	})
	return res, err
}
