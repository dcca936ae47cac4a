package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// restoreInput is the restore operation's input.
type restoreInput struct {
	app.RestoreRun
	Format   string `json:"format"`
	Progress string `json:"progress"`
}

var restoreOperation = operation("restore", func(ctx context.Context, g *globalFlags, in restoreInput, stdout, errOut io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return withService(g, func(s *app.Service) error {
		res, err := s.Restore(ctx, in.RestoreRun, newCounter(in.Progress, errOut))
		// A restore that stopped midway still reports what it did, in the
		// format asked for: a script reading JSON gets JSON.
		var nf *app.NotFinished
		stopped := errors.As(err, &nf) && res.Report != nil
		if err != nil && !stopped {
			return err
		}
		rep := res.Report
		if in.Format == "json" {
			out := struct {
				*projections.RestoreReport
				Damaged []string `json:"damaged,omitempty"`
				Error   string   `json:"error,omitempty"`
			}{RestoreReport: rep, Damaged: res.Damaged}
			if stopped {
				out.Error = err.Error()
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(out); werr != nil {
				return werr
			}
		} else {
			rep.WriteText(stdout)
			if len(res.Damaged) > 0 {
				fmt.Fprintf(stdout, "damaged in the storage, not restored (%d; run mailvault verify %s --read-data):\n    %s\n", len(res.Damaged), in.Storage, strings.Join(res.Damaged, "\n    "))
			}
		}
		if stopped {
			return &exitError{code: exitErrors, err: err}
		}
		if code := exitCodeFor(rep.State); code != exitOK {
			return &exitError{code: code}
		}
		return nil
	})
})

func newRestoreCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in restoreInput
	f := &in.Selection
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
			if err := f.Check(); err != nil {
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
	registerSelection(cmd, f)
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
