package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// OpsTopic receives the events of storage operations: restores and prunes.
const OpsTopic = "mailvault.ops"

func appendOps(ctx context.Context, lg *eventlog.Log, evs ...domain.Event) error {
	recs := make([]eventlog.Record, len(evs))
	for i, ev := range evs {
		ev.Schema = domain.SchemaVersion
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		recs[i] = eventlog.Record{Topic: OpsTopic, UUID: ev.ID, Payload: b,
			Metadata: map[string]string{eventlog.MetaType: string(ev.Type), eventlog.MetaRun: ev.Run}}
	}
	_, err := lg.Append(ctx, recs)
	return err
}

func newVerifyCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var readData bool
	var format string
	cmd := &cobra.Command{Use: "verify STORAGE [--read-data]", Short: "Check a storage's index and, with --read-data, every chunk's checksum", Args: cobra.ExactArgs(1),
		Long: `Check every index entry of the storage: each stored item version references chunks the index
knows, with matching reference counts, and their files exist. With --read-data, also read every
chunk, check its authentication tag (encrypted storages) and content hash, and check each item's
SHA-256. Each damaged item is named with its mailbox, folder and id; each damaged chunk says how
many item versions it affects. Exit code 1 when anything is damaged.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStorage(g, args[0], access, func(v *vault.Vault) error {
				out := cmd.OutOrStdout()
				var problems []vault.Problem
				res, err := v.Verify(readData, func(p vault.Problem) {
					problems = append(problems, p)
					if format == "json" {
						return
					}
					switch {
					case p.Item != nil:
						fmt.Fprintf(out, "DAMAGED item %s  %s/%s  %q (item id %s, version %s): %s\n", p.Item.ID, p.Item.Mailbox, p.Item.FolderPath, p.Item.Subject, p.Item.ItemID, p.Item.ChangeKey, p.Problem)
					case p.Damage:
						fmt.Fprintf(out, "DAMAGED chunk %s: %s\n", p.Chunk, p.Problem)
					default:
						fmt.Fprintf(out, "note: chunk %s: %s\n", p.Chunk, p.Problem)
					}
				})
				if err != nil {
					return &exitError{code: exitErrors, err: fmt.Errorf("verify: %w", err)}
				}
				if format == "json" {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					if err := enc.Encode(map[string]any{"result": res, "problems": problems}); err != nil {
						return err
					}
				} else {
					what := "index and chunk files"
					if readData {
						what = "index, chunk files and every chunk's data"
					}
					fmt.Fprintf(out, "checked %s: %d item versions, %d chunks (%d read); %d damaged items, %d damaged chunks; %d unreferenced packs, %s unreferenced in packs\n",
						what, res.Versions, res.Chunks, res.ChunksRead, res.DamagedItems, res.DamagedChunks, res.Unreferenced, projections.HumanBytes(res.UnreferencedBytes))
				}
				for _, p := range problems {
					if p.Damage {
						return &exitError{code: exitErrors, err: fmt.Errorf("storage %s is damaged: %d items, %d chunks", args[0], res.DamagedItems, res.DamagedChunks)}
					}
				}
				return nil
			})
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and check every chunk, not just the index")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

// versionFilter selects stored versions for ls, find, export and restore.
type versionFilter struct {
	mailbox, folder   string
	subject, from     string
	after, before     string
	items             []string
	allVersions       bool
	afterT, beforeT   time.Time
	subjectLC, fromLC string
	itemSet           map[string]bool
}

func (f *versionFilter) registerSelection(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.mailbox, "mailbox", "", "only this mailbox")
	fl.StringVar(&f.folder, "folder", "", "only this folder and its subfolders (path as ls shows it, as Inbox/Projects)")
	fl.StringVar(&f.after, "after", "", "only items dated on or after this day or time (2025-06-01 or RFC 3339)")
	fl.StringVar(&f.before, "before", "", "only items dated before this day or time")
	fl.StringArrayVar(&f.items, "items", nil, "only these item ids (as ls and find print them; repeatable, or comma-separated)")
}

func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--%s %q: give a date (2025-06-01) or an RFC 3339 time", flag, s)
}

func (f *versionFilter) prepare() error {
	var err error
	if f.afterT, err = parseWhen("after", f.after); err != nil {
		return err
	}
	if f.beforeT, err = parseWhen("before", f.before); err != nil {
		return err
	}
	f.subjectLC, f.fromLC = strings.ToLower(f.subject), strings.ToLower(f.from)
	f.folder = strings.Trim(f.folder, "/")
	if len(f.items) > 0 {
		f.itemSet = map[string]bool{}
		for _, arg := range f.items {
			for _, id := range strings.Split(arg, ",") {
				if id = strings.ToLower(strings.TrimSpace(id)); id != "" {
					f.itemSet[id] = true
				}
			}
		}
	}
	return nil
}

// when is the date an item is found by: its own date, else its
// modification time, else when it was stored.
func when(v vault.Version) time.Time {
	switch {
	case !v.Date.IsZero():
		return v.Date
	case !v.ItemTime.IsZero():
		return v.ItemTime
	}
	return v.StoredAt
}

func (f *versionFilter) match(v vault.Version) bool {
	if f.mailbox != "" && !strings.EqualFold(f.mailbox, v.Mailbox) {
		return false
	}
	if f.folder != "" && v.FolderPath != f.folder && !strings.HasPrefix(v.FolderPath, f.folder+"/") {
		return false
	}
	if f.itemSet != nil && !f.itemSet[v.ID] && !f.itemSet[strings.ToLower(v.ItemID)] {
		return false
	}
	if f.subjectLC != "" && !strings.Contains(strings.ToLower(v.Subject), f.subjectLC) {
		return false
	}
	if f.fromLC != "" && !strings.Contains(strings.ToLower(v.From), f.fromLC) {
		return false
	}
	t := when(v)
	if !f.afterT.IsZero() && t.Before(f.afterT) {
		return false
	}
	if !f.beforeT.IsZero() && !t.Before(f.beforeT) {
		return false
	}
	return true
}

// eachLatest calls fn for the newest stored version of every item the
// filter selects (every version with allVersions). It streams the index:
// versions of one item are adjacent in it.
func eachLatest(v *vault.Vault, f *versionFilter, fn func(vault.Version) error) error {
	var latest *vault.Version
	flush := func() error {
		if latest == nil {
			return nil
		}
		cur := *latest
		latest = nil
		if f.match(cur) {
			return fn(cur)
		}
		return nil
	}
	err := v.Walk(f.mailbox, func(ver vault.Version) error {
		if f.allVersions {
			if f.match(ver) {
				return fn(ver)
			}
			return nil
		}
		if latest != nil && (latest.Mailbox != ver.Mailbox || latest.FolderID != ver.FolderID || latest.ItemID != ver.ItemID) {
			if err := flush(); err != nil {
				return err
			}
		}
		if latest == nil || ver.StoredAt.After(latest.StoredAt) {
			c := ver
			latest = &c
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

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
		d := when(v).UTC().Format("2006-01-02 15:04")
		subj := v.Subject
		if !v.DeletedAt.IsZero() {
			subj += "  [deleted at source " + v.DeletedAt.UTC().Format("2006-01-02") + "]"
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.Mailbox, v.FolderPath, v.Kind, d, v.Size, v.From, subj)
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
	return listedVersion{ID: v.ID, Mailbox: v.Mailbox, Folder: v.FolderPath, Kind: v.Kind, Format: v.Format, ItemID: v.ItemID,
		ChangeKey: v.ChangeKey, Size: v.Size, Subject: v.Subject, From: v.From, Date: v.Date, StoredAt: v.StoredAt, DeletedAt: v.DeletedAt}
}

func newLsCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var f versionFilter
	var format string
	cmd := &cobra.Command{Use: "ls STORAGE [MAILBOX[/FOLDER]]", Short: "List what a storage holds, with ids for restore and export", Args: cobra.RangeArgs(1, 2),
		Long: `Without MAILBOX, list the mailboxes with their item counts. With MAILBOX, list its folders;
with MAILBOX/FOLDER, the newest version of each item in that folder and its subfolders
(--versions: every version).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				f.mailbox, f.folder, _ = strings.Cut(args[1], "/")
			}
			if err := f.prepare(); err != nil {
				return err
			}
			return withStorage(g, args[0], access, func(v *vault.Vault) error {
				out := cmd.OutOrStdout()
				if f.folder == "" {
					return listGroups(out, v, &f, format)
				}
				return writeVersions(out, format, func(fn func(vault.Version) error) error { return eachLatest(v, &f, fn) })
			})
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&f.allVersions, "versions", false, "list every stored version, not only the newest")
	cmd.Flags().StringVar(&format, "format", "text", "text or json (one object per line)")
	return cmd
}

// listGroups prints mailboxes (or, for one mailbox, its folders) with counts.
func listGroups(out io.Writer, v *vault.Vault, f *versionFilter, format string) error {
	type group struct {
		Name  string `json:"name"`
		Items int    `json:"items"`
		Bytes int64  `json:"bytes"`
	}
	var order []string
	groups := map[string]*group{}
	err := eachLatest(v, f, func(ver vault.Version) error {
		name := ver.Mailbox
		if f.mailbox != "" {
			name = ver.Mailbox + "/" + ver.FolderPath
		}
		gr, ok := groups[name]
		if !ok {
			gr = &group{Name: name}
			groups[name] = gr
			order = append(order, name)
		}
		gr.Items++
		gr.Bytes += ver.Size
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(order)
	if format == "json" {
		enc := json.NewEncoder(out)
		for _, n := range order {
			if err := enc.Encode(groups[n]); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	head := "MAILBOX"
	if f.mailbox != "" {
		head = "FOLDER"
	}
	fmt.Fprintf(tw, "%s\tITEMS\tSIZE\n", head)
	for _, n := range order {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", n, groups[n].Items, projections.HumanBytes(groups[n].Bytes))
	}
	return tw.Flush()
}

func newFindCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var f versionFilter
	var format string
	cmd := &cobra.Command{Use: "find STORAGE [--subject S] [--from F] [--after D] [--before D]", Short: "Find stored items by subject, sender and date", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(); err != nil {
				return err
			}
			return withStorage(g, args[0], access, func(v *vault.Vault) error {
				return writeVersions(cmd.OutOrStdout(), format, func(fn func(vault.Version) error) error { return eachLatest(v, &f, fn) })
			})
		}}
	access.register(cmd.Flags())
	f.registerSelection(cmd)
	cmd.Flags().StringVar(&f.subject, "subject", "", "subject contains this text (any case)")
	cmd.Flags().StringVar(&f.from, "from", "", "sender (name or address) contains this text")
	cmd.Flags().BoolVar(&f.allVersions, "versions", false, "search every stored version, not only the newest")
	cmd.Flags().StringVar(&format, "format", "text", "text or json (one object per line)")
	return cmd
}

func newPruneCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var dryRun bool
	cmd := &cobra.Command{Use: "prune STORAGE [--dry-run]", Short: "Remove what the storage's retention policy no longer keeps", Args: cobra.ExactArgs(1),
		Long: `Apply the storage's retention policy (see mailvault storage retention): remove item versions
beyond the last N, and items deleted at the source longer ago than the policy keeps them, then
free the chunks nothing references. Every removed version is recorded as an event in the data
directory's log before it goes; --dry-run lists what would go and changes nothing.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lg, err := openLog(g.data)
			if err != nil {
				return err
			}
			defer releaseLog(lg)
			return withStorage(g, args[0], access, func(v *vault.Vault) error {
				ctx := cmd.Context()
				now := time.Now().UTC()
				run := "prune-" + newRunID(now)
				out := cmd.OutOrStdout()
				if !dryRun {
					if err := appendOps(ctx, lg, domain.Event{Type: domain.PruneStarted, ID: domain.DeriveID(run, "start"), Run: run, Time: now, Reason: v.Retention().String()}); err != nil {
						return &exitError{code: exitErrors, err: err}
					}
				}
				verb := "pruned"
				if dryRun {
					verb = "would prune"
				}
				res, err := v.Prune(now, dryRun, func(p vault.Pruned) error {
					fmt.Fprintf(out, "%s %s  %s/%s  %q (%s)\n", verb, p.Version.ID, p.Version.Mailbox, p.Version.FolderPath, p.Version.Subject, p.Reason)
					if dryRun {
						return nil
					}
					return appendOps(ctx, lg, domain.Event{Type: domain.VersionPruned, ID: domain.DeriveID(run, p.Version.ID), Run: run, Time: time.Now().UTC(),
						Mailbox: p.Version.Mailbox, Folder: p.Version.FolderPath, FolderID: p.Version.FolderID, ItemID: p.Version.ItemID,
						ChangeKey: p.Version.ChangeKey, Size: p.Version.Size, SHA256: p.Version.SHA256, Reason: p.Reason})
				})
				if err != nil {
					return &exitError{code: exitErrors, err: fmt.Errorf("prune: %w", err)}
				}
				if !dryRun {
					if err := appendOps(ctx, lg, domain.Event{Type: domain.PruneFinished, ID: domain.DeriveID(run, "end"), Run: run, Time: time.Now().UTC(),
						Count: res.Versions, Bytes: res.FreedBytes}); err != nil {
						return &exitError{code: exitErrors, err: err}
					}
				}
				fmt.Fprintf(out, "%s %d versions (%s of items); %d chunks freed (%s); %d packs removed or rewritten, %s of disk reclaimed; policy: %s\n",
					verb, res.Versions, projections.HumanBytes(res.Bytes), res.FreedChunks, projections.HumanBytes(res.FreedBytes), res.Unreferenced,
					projections.HumanBytes(res.ReclaimedBytes), v.Retention())
				return nil
			})
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed; change nothing")
	return cmd
}
