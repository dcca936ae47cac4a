package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// verifyInput is the verify operation's input.
type verifyInput struct {
	app.StorageRef
	ReadData bool   `json:"read_data,omitempty"`
	Format   string `json:"format"`
}

var verifyOperation = operation("verify", func(ctx context.Context, g *globalFlags, in verifyInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		show := func(p vault.Problem) { writeProblem(out, p) }
		if in.Format == "json" {
			show = nil
		}
		res, err := s.Verify(ctx, in.StorageRef, in.ReadData, show)
		if err != nil {
			return err
		}
		if in.Format == "json" {
			problems := res.Problems
			if problems == nil {
				problems = []vault.Problem{}
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string]any{"result": res.VerifyResult, "problems": problems}); err != nil {
				return err
			}
		} else {
			what := "settings, index and pack headers"
			if in.ReadData {
				what = "settings, index, pack headers and every byte of data"
			}
			fmt.Fprintf(out, "checked %s: %d item versions, %d chunks (%d read), %d packs; %d damaged items (content lost), %d damaged chunks, %d damaged packs; %d unreferenced packs, %s unreferenced in packs\n",
				what, res.Versions, res.Chunks, res.ChunksRead, res.Packs, res.DamagedItems, res.DamagedChunks, res.DamagedPacks, res.Unreferenced, projections.HumanBytes(res.UnreferencedBytes))
		}
		if !res.Healthy() {
			return &exitError{code: exitErrors, err: fmt.Errorf("storage %s is damaged: %d items lost, %d repairable, %d packs damaged, index damaged: %v, settings damaged: %v; run 'mailvault repair %s' (it keeps everything intact and names what it cannot)",
				in.Storage, res.DamagedItems, res.RepairableItems, res.DamagedPacks, res.IndexDamaged, res.SettingsDamaged, in.Storage)}
		}
		return nil
	})
})

func newVerifyCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in verifyInput
	cmd := &cobra.Command{Use: "verify STORAGE [--read-data]", Short: "Check a storage: settings, index, packs and, with --read-data, every byte", Args: cobra.ExactArgs(1),
		Long: `Check the whole storage: both copies of its settings; the index's files (byte for byte against
the checksums recorded when it was last closed) and its records; that every pack the index knows
is there and whole and every pack file is known to it; that every entry header of every pack reads,
and every entry the index references is where it says. With --read-data, also read every entry,
check its checksum, and decode every chunk (authentication tag and content hash).

Each item whose content is lost is named (mailbox, folder, subject, id); each damaged chunk says
how many item versions it takes with it. Exit code 1 when anything is damaged: then
'mailvault repair STORAGE' makes the storage whole again where its data allows, and names what it
could not keep. verify changes nothing in the storage.`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if err := checkFormat(in.Format, "text", "json"); err != nil {
				return err
			}
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage = nameOrPath(args[0])
			return verifyOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&in.ReadData, "read-data", false, "read and check every byte of data, not just the index and headers")
	cmd.Flags().StringVar(&in.Format, "format", "text", "text or json")
	return cmd
}

// writeProblem prints one problem verify found; server-chosen names are
// escaped.
func writeProblem(out io.Writer, p vault.Problem) {
	switch {
	case p.Item != nil && p.Lost:
		fmt.Fprintf(out, "LOST item %s  %s/%s  %s (item id %s, version %s): %s\n", p.Item.ID, p.Item.Mailbox, p.Item.FolderPath, strconv.Quote(p.Item.Subject), p.Item.ItemID, p.Item.ChangeKey, p.Problem)
	case p.Item != nil:
		fmt.Fprintf(out, "DAMAGED record of item %s  %s/%s  %s: %s\n", p.Item.ID, p.Item.Mailbox, p.Item.FolderPath, strconv.Quote(p.Item.Subject), p.Problem)
	case !p.Damage:
		fmt.Fprintf(out, "note: %s%s: %s\n", p.Pack, p.Chunk, p.Problem)
	case p.File != "":
		fmt.Fprintf(out, "DAMAGED file %s: %s\n", p.File, p.Problem)
	case p.Pack != "":
		fmt.Fprintf(out, "DAMAGED pack %s: %s\n", p.Pack, p.Problem)
	default:
		fmt.Fprintf(out, "DAMAGED chunk %s: %s\n", p.Chunk, p.Problem)
	}
}

// registerSelection adds the flags that choose stored items.
func registerSelection(cmd *cobra.Command, f *app.Selection) {
	fl := cmd.Flags()
	fl.StringVar(&f.Mailbox, "mailbox", "", "only this mailbox")
	fl.StringVar(&f.Folder, "folder", "", "only this folder and its subfolders (path as ls shows it, as Inbox/Projects)")
	fl.StringVar(&f.After, "after", "", "only items dated on or after this day or time (2025-06-01 or RFC 3339)")
	fl.StringVar(&f.Before, "before", "", "only items dated before this day or time")
	fl.StringVar(&f.AsOf, "as-of", "", "the mailbox as it was then (a day: at its end; or RFC 3339): each item's newest version stored by then, nothing deleted at the source by then")
	fl.StringArrayVar(&f.Items, "items", nil, "only these item ids (as ls and find print them; repeatable, or comma-separated)")
	fl.StringVar(&f.Source, "source", "", "only items backed up from this source (as ls prints it: graph:TENANT, ews:URL), when a mailbox was backed up through more than one")
}

// writeVersions prints the versions list gives: a table, or one JSON
// object per line.
func writeVersions(out io.Writer, format string, list func(func(vault.Version) error) error) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		return list(func(v vault.Version) error { return enc.Encode(listed(v)) })
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMAILBOX\tFOLDER\tKIND\tDATE\tSIZE\tFROM\tSUBJECT")
	n := 0
	err := list(func(v vault.Version) error {
		n++
		d := app.When(v).UTC().Format("2006-01-02 15:04")
		// What the server named goes through Printable: a subject or a
		// folder name must not move the cursor or split a row.
		subj := projections.Printable(v.Subject)
		if !v.DeletedAt.IsZero() {
			subj += "  [deleted at source " + v.DeletedAt.UTC().Format("2006-01-02") + "]"
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, projections.Printable(v.Mailbox), projections.Printable(v.FolderPath), v.Kind, d, v.Size,
			projections.Printable(v.From), subj)
		return err
	})
	if err != nil {
		return err
	}
	tw.Flush()
	fmt.Fprintf(out, "%d items\n", n)
	return nil
}

// listedVersion is what ls and find print as JSON: no chunk ids.
type listedVersion struct {
	ID        string    `json:"id"`
	Source    string    `json:"source"`
	Mailbox   string    `json:"mailbox"`
	Folder    string    `json:"folder"`
	Kind      string    `json:"kind"`
	Format    string    `json:"format"`
	ItemID    string    `json:"item_id"`
	ChangeKey string    `json:"change_key"`
	Size      int64     `json:"size"`
	Subject   string    `json:"subject,omitempty"`
	From      string    `json:"from,omitempty"`
	Date      time.Time `json:"date,omitzero"`
	StoredAt  time.Time `json:"stored_at"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
}

func listed(v vault.Version) listedVersion {
	return listedVersion{ID: v.ID, Source: v.Source, Mailbox: v.Mailbox, Folder: v.FolderPath, Kind: v.Kind, Format: v.Format, ItemID: v.ItemID,
		ChangeKey: v.ChangeKey, Size: v.Size, Subject: v.Subject, From: v.From, Date: v.Date, StoredAt: v.StoredAt, DeletedAt: v.DeletedAt}
}

// browseInput is the input of ls and find.
type browseInput struct {
	app.StorageRef
	Filter app.Selection `json:"filter"`
	Format string        `json:"format"`
	// Groups: ls without a folder lists mailboxes (or one mailbox's
	// folders) with counts, not items.
	Groups bool `json:"groups,omitempty"`
}

var browseOperation = operation("browse", func(ctx context.Context, g *globalFlags, in browseInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		if in.Groups {
			groups, err := s.Groups(ctx, in.StorageRef, in.Filter)
			if err != nil {
				return err
			}
			return writeGroups(out, groups, in.Filter.Mailbox != "", in.Format)
		}
		return writeVersions(out, in.Format, func(fn func(vault.Version) error) error { return s.Browse(ctx, in.StorageRef, in.Filter, fn) })
	})
})

func newLsCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in browseInput
	cmd := &cobra.Command{Use: "ls STORAGE [MAILBOX[/FOLDER]]", Short: "List what a storage holds, with ids for restore and export", Args: cobra.RangeArgs(1, 2),
		Long: `Without MAILBOX, list the mailboxes with their item counts. With MAILBOX, list its folders;
with MAILBOX/FOLDER, the newest version of each item in that folder and its subfolders
(--versions: every version).`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if len(args) == 2 {
				in.Filter.Mailbox, in.Filter.Folder, _ = strings.Cut(args[1], "/")
			}
			if err := in.Filter.Check(); err != nil {
				return err
			}
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage, in.Groups = nameOrPath(args[0]), strings.Trim(in.Filter.Folder, "/") == ""
			return browseOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&in.Filter.AllVersions, "versions", false, "list every stored version, not only the newest")
	cmd.Flags().StringVar(&in.Format, "format", "text", "text or json (one object per line)")
	return cmd
}

// writeGroups prints mailboxes (or, for one mailbox, its folders) with
// counts.
func writeGroups(out io.Writer, groups []app.Group, folders bool, format string) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		for _, gr := range groups {
			if err := enc.Encode(gr); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	head := "MAILBOX"
	if folders {
		head = "FOLDER"
	}
	fmt.Fprintf(tw, "%s\tITEMS\tSIZE\n", head)
	for _, gr := range groups {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", projections.Printable(gr.Name), gr.Items, projections.HumanBytes(gr.Bytes))
	}
	return tw.Flush()
}

func newFindCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in browseInput
	f := &in.Filter
	cmd := &cobra.Command{Use: "find STORAGE [--subject S] [--from F] [--recipient R] [--after D] [--before D]", Short: "Find stored items by subject, sender and date", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if err := f.Check(); err != nil {
				return err
			}
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage = nameOrPath(args[0])
			return browseOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	registerSelection(cmd, f)
	cmd.Flags().StringVar(&f.Subject, "subject", "", "subject contains this text (any case)")
	cmd.Flags().StringVar(&f.From, "from", "", "sender (name or address) contains this text")
	cmd.Flags().StringVar(&f.Recipient, "recipient", "", "a To or Cc recipient (name or address) contains this text (items stored before mailvault kept recipients are not found by it)")
	cmd.Flags().BoolVar(&f.AllVersions, "versions", false, "search every stored version, not only the newest")
	cmd.Flags().StringVar(&in.Format, "format", "text", "text or json (one object per line)")
	return cmd
}

// pruneInput is the prune operation's input.
type pruneInput struct {
	app.StorageRef
	DryRun bool `json:"dry_run,omitempty"`
}

var pruneOperation = operation("prune", func(ctx context.Context, g *globalFlags, in pruneInput, out, _ io.Writer) error {
	verb := "pruned"
	if in.DryRun {
		verb = "would prune"
	}
	return withService(g, func(s *app.Service) error {
		res, err := s.Prune(ctx, in.StorageRef, in.DryRun, func(p vault.Pruned) {
			fmt.Fprintf(out, "%s %s  %s/%s  %q (%s)\n", verb, p.Version.ID, p.Version.Mailbox, p.Version.FolderPath, p.Version.Subject, p.Reason)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %d versions (%s of items); %d chunks freed (%s); %d packs removed or rewritten, %s of disk reclaimed; policy: %s\n",
			verb, res.Versions, projections.HumanBytes(res.Bytes), res.FreedChunks, projections.HumanBytes(res.FreedBytes), res.Unreferenced,
			projections.HumanBytes(res.ReclaimedBytes), res.Policy)
		if res.Locked > 0 {
			fmt.Fprintf(out, "%d packs locked: their object lock has not expired; %s more is reclaimed by a prune after it does\n", res.Locked, projections.HumanBytes(res.LockedBytes))
		}
		return nil
	})
})

func newPruneCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in pruneInput
	cmd := &cobra.Command{Use: "prune STORAGE [--dry-run]", Short: "Remove what the storage's retention policy no longer keeps", Args: cobra.ExactArgs(1),
		Long: `Apply the storage's retention policy (see mailvault storage retention): remove item versions
beyond the last N, and items deleted at the source longer ago than the policy keeps them, then
free the chunks nothing references. Every removed version is recorded as an event in the data
directory's log before it goes; --dry-run lists what would go and changes nothing.`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage = nameOrPath(args[0])
			return pruneOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&in.DryRun, "dry-run", false, "list what would be removed; change nothing")
	return cmd
}
