package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// restoreInput is the restore operation's input.
type restoreInput struct {
	Storage       string        `json:"storage"`
	Key           storageKey    `json:"key"`
	Filter        versionFilter `json:"filter"`
	To            string        `json:"to"`
	TargetMailbox string        `json:"target_mailbox,omitempty"`
	Collisions    string        `json:"collisions"`
	Into          string        `json:"into,omitempty"`
	Format        string        `json:"format"`
	Job           string        `json:"job,omitempty"`
	Progress      string        `json:"progress"`
}

var restoreOperation = operation("restore", func(ctx context.Context, g *globalFlags, in restoreInput, stdout, errOut io.Writer) error {
	if err := in.Filter.prepare(); err != nil {
		return err
	}
	logger, err := g.logger()
	if err != nil {
		return err
	}
	ref, err := resolveStorage(g, in.Storage, in.Key)
	if err != nil {
		return err
	}
	var conn connectionSpec
	var secret credential.Secret
	err = withService(g, func(svc *app.Service) error {
		_, agg, err := svc.Configuration()
		if err != nil {
			return err
		}
		if in.Job != "" {
			if err := agg.HasJob(in.Job); err != nil {
				return err
			}
		} else if users := agg.JobsUsingStorage(in.Storage); len(users) == 1 {
			in.Job = users[0] // the one job backing up into this storage
		}
		conn, secret, err = svc.OpenConnection(in.To)
		return err
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	client, err := openConnection(ctx, logger, in.To, conn, secret, connectionScope{})
	if err != nil {
		return err
	}
	target := client.target()
	ref.mode = storageRead
	v, err := openStorage(ref)
	if err != nil {
		return err
	}
	defer closeStorage(v)
	lg, err := openLog(g)
	if err != nil {
		return err
	}
	defer releaseLog(g, lg)

	key := domain.DeriveID("restore", v.Dir(), in.To, in.Filter.Mailbox, in.Filter.Folder, strings.Join(in.Filter.Items, ","), in.Filter.After, in.Filter.Before, in.TargetMailbox, in.Collisions, in.Into)
	run, prior, err := restoreRun(lg, key[:12])
	if err != nil {
		return &exitError{code: exitErrors, err: err}
	}
	r := pipeline.NewRestorer(pipeline.RestoreDeps{Publisher: lg.Publisher(), Target: target},
		pipeline.RestoreConfig{Run: run, TargetMailbox: in.TargetMailbox, IntoFolder: in.Into, Collisions: in.Collisions, Job: in.Job, Done: prior.Done, Started: prior.Begun})
	if err := r.Start(fmt.Sprintf("storage %s to %s, collisions %s", v.Dir(), in.To, in.Collisions)); err != nil {
		return &exitError{code: exitErrors, err: err}
	}
	total, multi, err := sourcesOf(v, &in.Filter)
	if err != nil {
		return &exitError{code: exitErrors, err: err}
	}
	if len(multi) > 0 && in.Filter.Source == "" {
		// A mailbox backed up through two connections: restore the
		// backup made through the server restored to, if there is one.
		in.Filter.Source = conn.Identity()
		if total, _, err = sourcesOf(v, &in.Filter); err != nil {
			return &exitError{code: exitErrors, err: err}
		}
		if total == 0 {
			in.Filter.Source = ""
			_, multi, _ = sourcesOf(v, &in.Filter)
			return ambiguousSources(multi)
		}
	}
	var damaged []string
	prog := counter{total: int64(total)}
	stopProgress := startProgress(in.Progress, errOut, prog.state)
	walkErr := eachLatest(v, &in.Filter, func(ver vault.Version) error {
		defer prog.add(ver.Size)
		if prior.Done[ver.ID] {
			return nil
		}
		content, err := v.Read(ver)
		if errors.Is(err, vault.ErrDamaged) {
			// Recorded as failed (ids only; the subject is printed
			// here, never logged); everything else is restored, and a
			// later run tries it again.
			damaged = append(damaged, fmt.Sprintf("%s %s/%s %q: %v", ver.ID, ver.Mailbox, ver.FolderPath, ver.Subject, err))
			return r.Fail(pipeline.RestoreItem{VersionID: ver.ID, Mailbox: ver.Mailbox, Folder: ver.FolderPath, ItemID: ver.ItemID,
				Kind: ver.Kind, Format: ver.Format}, &domain.Failure{Class: domain.ClassDirty, Code: "DamagedInStorage", Message: "the storage cannot give this item back intact (see mailvault verify)"})
		}
		if err != nil {
			return err
		}
		return r.Restore(ctx, pipeline.RestoreItem{VersionID: ver.ID, Mailbox: ver.Mailbox, Folder: ver.FolderPath, ItemID: ver.ItemID,
			Kind: ver.Kind, Format: ver.Format, Content: content})
	})
	stopProgress()
	rep, _, err := projections.LoadRestore(lg, run)
	if err != nil {
		return &exitError{code: exitErrors, err: err}
	}
	state := domain.StateFinished
	if rep.Failed > 0 {
		state = domain.StateWarnings
	}
	switch {
	case errors.Is(walkErr, context.Canceled):
		rep.State = domain.StateNotFinished
		rep.WriteText(stdout)
		return &exitError{code: exitErrors, err: fmt.Errorf("restore %s interrupted; run the same command again to continue", run)}
	case walkErr != nil:
		rep.State = domain.StateNotFinished
		rep.WriteText(stdout)
		return &exitError{code: exitErrors, err: fmt.Errorf("restore %s not finished: %w; run the same command again to continue", run, walkErr)}
	}
	if err := r.Finish(state); err != nil {
		return &exitError{code: exitErrors, err: err}
	}
	rep.State = state
	if in.Format == "json" {
		rep.WriteJSON(stdout)
	} else {
		rep.WriteText(stdout)
		if len(damaged) > 0 {
			fmt.Fprintf(stdout, "damaged in the storage, not restored (%d; run mailvault verify %s --read-data):\n    %s\n", len(damaged), in.Storage, strings.Join(damaged, "\n    "))
		}
	}
	if rep.Failed > 0 {
		return &exitError{code: exitCodeFor(state)}
	}
	return nil
})

func newRestoreCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in restoreInput
	f := &in.Filter
	var progress string
	cmd := &cobra.Command{Use: "restore --storage S --to CONNECTION [selection] [--target-mailbox B] [--collisions skip|replace|copy] [--into-folder NAME]",
		Short: "Restore stored items into a mailbox over Graph or EWS", Args: cobra.ArbitraryArgs,
		Long: `Restore the newest stored version of each selected item into the mailbox it came from, or
into --target-mailbox, through a named connection (see mailvault connection add).

Items go to the folder they were backed up from (created if missing), or under --into-folder.
Graph: exported streams go back through an import session (full fidelity); MIME messages are
created as received messages, not drafts, with their attachments (upload sessions above 3 MB);
events and contacts from their JSON. EWS: UploadItems with the exported data. Nothing is sent:
no invitations, no updates to attendees; what the target cannot preserve is listed in the report.

A restore is a run in the event log: run the same command again after a crash or a kill and it
continues where it stopped, without creating anything twice. --collisions says what happens to
an item already in the target (found by the restore's mark, its Message-ID or its UID).`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if len(args) > 0 && !cmd.Flags().Changed("items") {
				return usageErr("unexpected arguments %q: item ids follow --items (--items ID1 ID2 ... or --items ID1,ID2)", args)
			}
			f.Items = append(f.Items, args...) // --items ID1 ID2 ...
			if in.Storage == "" || in.To == "" {
				return usageErr("--storage and --to are required")
			}
			switch in.Collisions {
			case pipeline.CollisionSkip, pipeline.CollisionReplace, pipeline.CollisionCopy:
			default:
				return usageErr("--collisions %q: use skip, replace or copy", in.Collisions)
			}
			if err := f.prepare(); err != nil {
				return err
			}
			if err := checkProgress(progress); err != nil {
				return err
			}
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage, in.Progress = nameOrPath(in.Storage), progressFor(progress, cmd.ErrOrStderr())
			return restoreOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	f.registerSelection(cmd)
	cmd.Flags().StringVar(&in.Storage, "storage", "", "storage NAME or directory")
	cmd.Flags().StringVar(&in.To, "to", "", "connection NAME to restore through")
	cmd.Flags().StringVar(&in.TargetMailbox, "target-mailbox", "", "restore into this mailbox instead of each item's own")
	cmd.Flags().StringVar(&in.Collisions, "collisions", pipeline.CollisionSkip, "an item already in the target: skip, replace or copy")
	cmd.Flags().StringVar(&in.Into, "into-folder", "", `restore under this folder (as "Restored 2026-12-01"), keeping the folder paths below it`)
	cmd.Flags().StringVar(&in.Format, "format", "text", "report format: text or json")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress display: auto, bar, plain, none")
	cmd.Flags().StringVar(&in.Job, "job", "", "count the restored items in this job's \"items restored\" (default: the one job using --storage, if any)")
	return cmd
}

// restoreRun finds the run of a restore: the unfinished run with the same
// parameters (continued), or a new one after the last finished.
func restoreRun(lg *eventlog.Log, key string) (string, *projections.RestoreReport, error) {
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
