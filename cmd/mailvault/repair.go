package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/badgerdb"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

func newRepairCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var format string
	cmd := &cobra.Command{Use: "repair STORAGE | repair index STORAGE | repair log",
		Short: "Make a damaged storage (or event log) whole again, keeping everything intact",
		Args:  cobra.ExactArgs(1),
		Long: `repair STORAGE makes a damaged storage consistent and whole where its data allows:
  - settings: a damaged vault.json (or its copy) is written again from the good one;
  - index: an index that cannot be trusted (damaged, lost, or not matching the packs) is rebuilt
    from the packs, which describe everything they hold; the old index is set aside;
  - packs: every pack is read; the intact entries of a damaged pack are copied to a new pack,
    records of items whose pack entry is lost are written again from the index, and the damaged
    pack file is moved to STORAGE/damaged;
  - items whose content cannot be read back are removed from the index and named; the next backup
    lists every folder again and fetches them if the mailbox still has them.
Every removed item is recorded in the event log. Exit code 3 when items were lost, 0 otherwise.

repair index STORAGE rebuilds the index from the packs even when it looks sound.
repair log salvages a damaged event log (see 'mailvault repair log --help').`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return startRepair(cmd, g, args[0], access, false, format)
		}}
	access.register(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "text", "text or json")

	var indexAccess storageAccess
	var indexFormat string
	index := &cobra.Command{Use: "index STORAGE", Short: "Rebuild a storage's index from its packs", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return startRepair(cmd, g, args[0], indexAccess, true, indexFormat)
		}}
	indexAccess.register(index.Flags())
	index.Flags().StringVar(&indexFormat, "format", "text", "text or json")

	logCmd := &cobra.Command{Use: "log", Short: "Salvage a damaged event log: keep every record that reads, mark the rest", Args: cobra.NoArgs,
		Long: `Rebuild the data directory's event log (DATA/log) when a record or a file of it is damaged:
every record that reads and matches its checksum is copied into a new log under its own number,
with the resume state rebuilt from them; each record that does not is replaced by a marker that
names it. When the log's own index is unusable, the records are read from its value-log files.
The damaged log is kept beside the new one (DATA/log.damaged-TIME). The storages are not touched:
the backups in them are whole; at worst the next backup lists some folders again.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := filepath.Join(g.data, "log")
			if _, err := os.Stat(dir); err != nil {
				return &exitError{code: exitErrors, err: fmt.Errorf("no mailvault data in %s (pass --data)", g.data)}
			}
			if dh := findDaemon(g.data); dh != nil && badgerdb.ProbeLock(dir) != nil {
				return &exitError{code: exitErrors, err: fmt.Errorf("the daemon holds %s: stop it before repairing its event log", g.data)}
			}
			res, err := eventlog.Salvage(dir, []eventlog.Hook{projections.ResumeHook})
			if errors.Is(err, eventlog.ErrLocked) {
				return &exitError{code: exitErrors, err: fmt.Errorf("the event log in %s is in use (a daemon or a backup holds it): stop it first", g.data)}
			}
			if err != nil {
				return &exitError{code: exitErrors, err: fmt.Errorf("salvage the event log: %w", err)}
			}
			if lg, err := openLog(g); err == nil {
				now := time.Now().UTC()
				run := "repair-" + app.NewRunID(now)
				_ = projections.RecordOps(cmd.Context(), lg, domain.Event{Type: domain.LogSalvaged, ID: domain.DeriveID(run, "salvaged"), Run: run, Time: now,
					Count: res.Records, Reason: fmt.Sprintf("%d records lost; read through the %s", len(res.Damaged), res.From)})
				releaseLog(g, lg)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "event log salvaged (read through the %s): %d records kept, %d lost\n", res.From, res.Records-len(res.Damaged), len(res.Damaged))
			if len(res.Damaged) > 0 {
				var seqs []string
				for _, s := range res.Damaged[:min(len(res.Damaged), 50)] {
					seqs = append(seqs, strconv.FormatUint(s, 10))
				}
				fmt.Fprintf(out, "lost records (marked in the log): %s\n", strings.Join(seqs, " "))
			}
			fmt.Fprintf(out, "the damaged log is kept in %s; remove it when satisfied\n", res.OldDir)
			return damagedExit(len(res.Damaged))
		}}
	cmd.AddCommand(index, logCmd)
	return cmd
}

// repairInput is the repair operation's input.
type repairInput struct {
	app.StorageRef
	// Rebuild rebuilds the index from the packs even when it looks sound.
	Rebuild bool   `json:"rebuild,omitempty"`
	Format  string `json:"format"`
}

func startRepair(cmd *cobra.Command, g *globalFlags, storage string, access storageAccess, rebuild bool, format string) error {
	if err := checkFormat(format, "text", "json"); err != nil {
		return err
	}
	key, err := access.key()
	if err != nil {
		return err
	}
	return repairOperation(cmd, g, repairInput{StorageRef: app.StorageRef{Storage: nameOrPath(storage), Key: key}, Rebuild: rebuild, Format: format})
}

var repairOperation = operation("repair", func(ctx context.Context, g *globalFlags, in repairInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		res, err := s.Repair(ctx, in.StorageRef, in.Rebuild, func(ver vault.Version) {
			if in.Format != "json" {
				fmt.Fprintf(out, "LOST item %s  %s/%s  %s (item id %s): its content cannot be read back\n", ver.ID, ver.Mailbox, ver.FolderPath, strconv.Quote(ver.Subject), ver.ItemID)
			}
		})
		if err != nil {
			return err
		}
		if in.Format == "json" {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			type lostItem struct {
				ID      string `json:"id"`
				Mailbox string `json:"mailbox"`
				Folder  string `json:"folder"`
				ItemID  string `json:"item_id"`
				Subject string `json:"subject,omitempty"`
			}
			items := []lostItem{}
			for _, l := range res.Lost {
				items = append(items, lostItem{l.ID, l.Mailbox, l.FolderPath, l.ItemID, l.Subject})
			}
			if err := enc.Encode(map[string]any{"result": res.RepairResult, "lost": items}); err != nil {
				return err
			}
		} else {
			writeRepair(out, res.RepairResult)
		}
		return damagedExit(res.RepairResult.Lost)
	})
})

func writeRepair(out io.Writer, res vault.RepairResult) {
	if res.SettingsRewritten {
		fmt.Fprintln(out, "settings: written again from the intact copy")
	}
	if res.IndexRebuilt {
		fmt.Fprintf(out, "index: rebuilt from the packs")
		if res.OldIndex != "" {
			fmt.Fprintf(out, " (the old one is in %s; remove it when satisfied)", res.OldIndex)
		}
		fmt.Fprintln(out)
	}
	if res.PacksRewritten > 0 {
		fmt.Fprintf(out, "packs: %d damaged or missing; %d intact entries copied to new packs, %d records written again from the index\n",
			res.PacksRewritten, res.EntriesCopied, res.RecordsRewritten)
		for _, p := range res.SetAside {
			fmt.Fprintf(out, "  set aside: %s\n", p)
		}
	}
	fmt.Fprintf(out, "repaired: the storage holds %d item versions; %d lost (named above); the next backup lists every folder again and fetches what the mailbox still has\n",
		res.Versions, res.Lost)
}
