package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

func appendOps(ctx context.Context, lg *eventlog.Log, evs ...domain.Event) error {
	recs := make([]eventlog.Record, len(evs))
	for i, ev := range evs {
		ev.Schema = domain.SchemaVersion
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		recs[i] = eventlog.Record{Topic: domain.TopicOps, UUID: ev.ID, Payload: b,
			Metadata: map[string]string{eventlog.MetaType: string(ev.Type), eventlog.MetaRun: ev.Run}}
	}
	_, err := lg.Append(ctx, recs)
	return err
}

// verifyInput is the verify operation's input.
type verifyInput struct {
	Storage  string     `json:"storage"`
	Key      storageKey `json:"key"`
	ReadData bool       `json:"read_data,omitempty"`
	Format   string     `json:"format"`
}

var verifyOperation = operation("verify", func(_ context.Context, g *globalFlags, in verifyInput, out, _ io.Writer) error {
	return withStorage(g, in.Storage, in.Key, storageCheck, func(v *vault.Vault) error {
		var problems []vault.Problem
		res, err := v.Verify(in.ReadData, func(p vault.Problem) {
			problems = append(problems, p)
			if in.Format != "json" {
				writeProblem(out, p)
			}
		})
		if err != nil {
			return &exitError{code: exitErrors, err: fmt.Errorf("verify: %w", err)}
		}
		if in.Format == "json" {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string]any{"result": res, "problems": problems}); err != nil {
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

// versionFilter selects stored versions for ls, find, export and restore.
// Its exported fields are the selection as an operation's input carries it;
// prepare derives the rest.
type versionFilter struct {
	Mailbox           string   `json:"mailbox,omitempty"`
	Folder            string   `json:"folder,omitempty"`
	Source            string   `json:"source,omitempty"`
	Subject           string   `json:"subject,omitempty"`
	From              string   `json:"from,omitempty"`
	After             string   `json:"after,omitempty"`
	Before            string   `json:"before,omitempty"`
	Items             []string `json:"items,omitempty"`
	AllVersions       bool     `json:"all_versions,omitempty"`
	afterT, beforeT   time.Time
	subjectLC, fromLC string
	itemSet           map[string]bool
}

func (f *versionFilter) registerSelection(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Mailbox, "mailbox", "", "only this mailbox")
	fl.StringVar(&f.Folder, "folder", "", "only this folder and its subfolders (path as ls shows it, as Inbox/Projects)")
	fl.StringVar(&f.After, "after", "", "only items dated on or after this day or time (2025-06-01 or RFC 3339)")
	fl.StringVar(&f.Before, "before", "", "only items dated before this day or time")
	fl.StringArrayVar(&f.Items, "items", nil, "only these item ids (as ls and find print them; repeatable, or comma-separated)")
	fl.StringVar(&f.Source, "source", "", "only items backed up from this source (as ls prints it: graph:TENANT, ews:URL), when a mailbox was backed up through more than one")
}

// key names the selection, for an export that continues an interrupted one.
func (f *versionFilter) key() string {
	items := make([]string, 0, len(f.itemSet))
	for id := range f.itemSet {
		items = append(items, id)
	}
	sort.Strings(items)
	return strings.Join([]string{f.Mailbox, f.Folder, f.Source, f.Subject, f.From, f.After, f.Before, strings.Join(items, ",")}, "\x00")
}

// sourcesOf counts the selected items per mailbox and source; a mailbox
// backed up through two connections is two backups, and restoring or
// exporting both would give every item twice.
func sourcesOf(v *vault.Vault, f *versionFilter) (items int, multi map[string][]string, err error) {
	seen := map[string]map[string]bool{}
	err = eachLatest(v, f, func(ver vault.Version) error {
		items++
		if seen[ver.Mailbox] == nil {
			seen[ver.Mailbox] = map[string]bool{}
		}
		seen[ver.Mailbox][ver.Source] = true
		return nil
	})
	multi = map[string][]string{}
	for mbx, set := range seen {
		if len(set) > 1 {
			for s := range set {
				multi[mbx] = append(multi[mbx], s)
			}
			sort.Strings(multi[mbx])
		}
	}
	return items, multi, err
}

// ambiguousSources is the usage error for a selection that spans sources.
func ambiguousSources(multi map[string][]string) error {
	var parts []string
	for mbx, srcs := range multi {
		parts = append(parts, fmt.Sprintf("%s (%s)", mbx, strings.Join(srcs, ", ")))
	}
	sort.Strings(parts)
	return usageErr("the selection holds mailboxes backed up from more than one source: %s; choose one with --source", strings.Join(parts, "; "))
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
	if f.afterT, err = parseWhen("after", f.After); err != nil {
		return err
	}
	if f.beforeT, err = parseWhen("before", f.Before); err != nil {
		return err
	}
	f.subjectLC, f.fromLC = strings.ToLower(f.Subject), strings.ToLower(f.From)
	f.Folder = strings.Trim(f.Folder, "/")
	if len(f.Items) > 0 {
		f.itemSet = map[string]bool{}
		for _, arg := range f.Items {
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
	if f.Mailbox != "" && !strings.EqualFold(f.Mailbox, v.Mailbox) {
		return false
	}
	if f.Source != "" && !strings.EqualFold(f.Source, v.Source) {
		return false
	}
	if f.Folder != "" && v.FolderPath != f.Folder && !strings.HasPrefix(v.FolderPath, f.Folder+"/") {
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
	err := v.Walk(f.Mailbox, func(ver vault.Version) error {
		if f.AllVersions {
			if f.match(ver) {
				return fn(ver)
			}
			return nil
		}
		if latest != nil && (latest.Mailbox != ver.Mailbox || latest.Source != ver.Source || latest.FolderID != ver.FolderID || latest.ItemID != ver.ItemID) {
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
	Storage string        `json:"storage"`
	Key     storageKey    `json:"key"`
	Filter  versionFilter `json:"filter"`
	Format  string        `json:"format"`
	// Groups: ls without a folder lists mailboxes (or one mailbox's
	// folders) with counts, not items.
	Groups bool `json:"groups,omitempty"`
}

var browseOperation = operation("browse", func(_ context.Context, g *globalFlags, in browseInput, out, _ io.Writer) error {
	if err := in.Filter.prepare(); err != nil {
		return err
	}
	return withStorage(g, in.Storage, in.Key, storageRead, func(v *vault.Vault) error {
		if in.Groups {
			return listGroups(out, v, &in.Filter, in.Format)
		}
		return writeVersions(out, in.Format, func(fn func(vault.Version) error) error { return eachLatest(v, &in.Filter, fn) })
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
			if err := in.Filter.prepare(); err != nil {
				return err
			}
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage, in.Groups = nameOrPath(args[0]), in.Filter.Folder == ""
			return browseOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	cmd.Flags().BoolVar(&in.Filter.AllVersions, "versions", false, "list every stored version, not only the newest")
	cmd.Flags().StringVar(&in.Format, "format", "text", "text or json (one object per line)")
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
		if f.Mailbox != "" {
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
	if f.Mailbox != "" {
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
	var in browseInput
	f := &in.Filter
	cmd := &cobra.Command{Use: "find STORAGE [--subject S] [--from F] [--after D] [--before D]", Short: "Find stored items by subject, sender and date", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if err := f.prepare(); err != nil {
				return err
			}
			if in.Key, err = access.key(); err != nil {
				return err
			}
			in.Storage = nameOrPath(args[0])
			return browseOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	f.registerSelection(cmd)
	cmd.Flags().StringVar(&f.Subject, "subject", "", "subject contains this text (any case)")
	cmd.Flags().StringVar(&f.From, "from", "", "sender (name or address) contains this text")
	cmd.Flags().BoolVar(&f.AllVersions, "versions", false, "search every stored version, not only the newest")
	cmd.Flags().StringVar(&in.Format, "format", "text", "text or json (one object per line)")
	return cmd
}

// pruneInput is the prune operation's input.
type pruneInput struct {
	Storage string     `json:"storage"`
	Key     storageKey `json:"key"`
	DryRun  bool       `json:"dry_run,omitempty"`
}

var pruneOperation = operation("prune", func(ctx context.Context, g *globalFlags, in pruneInput, out, _ io.Writer) error {
	return withStorageAndLog(g, in.Storage, in.Key, storageWrite, func(v *vault.Vault, lg *eventlog.Log) error {
		now := time.Now().UTC()
		run := "prune-" + newRunID(now)
		if !in.DryRun {
			if err := appendOps(ctx, lg, domain.Event{Type: domain.PruneStarted, ID: domain.DeriveID(run, "start"), Run: run, Time: now, Reason: v.Retention().String()}); err != nil {
				return &exitError{code: exitErrors, err: err}
			}
		}
		verb := "pruned"
		if in.DryRun {
			verb = "would prune"
		}
		res, err := v.Prune(now, in.DryRun, func(p vault.Pruned) error {
			fmt.Fprintf(out, "%s %s  %s/%s  %q (%s)\n", verb, p.Version.ID, p.Version.Mailbox, p.Version.FolderPath, p.Version.Subject, p.Reason)
			if in.DryRun {
				return nil
			}
			return appendOps(ctx, lg, domain.Event{Type: domain.VersionPruned, ID: domain.DeriveID(run, p.Version.ID), Run: run, Time: time.Now().UTC(),
				Mailbox: p.Version.Mailbox, Folder: p.Version.FolderPath, FolderID: p.Version.FolderID, ItemID: p.Version.ItemID,
				ChangeKey: p.Version.ChangeKey, Size: p.Version.Size, SHA256: p.Version.SHA256, Reason: p.Reason})
		})
		if err != nil {
			return &exitError{code: exitErrors, err: fmt.Errorf("prune: %w", err)}
		}
		if !in.DryRun {
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
