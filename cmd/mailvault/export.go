package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/export"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/projections"
)

func newExportCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var f versionFilter
	var storage, format, out, reportFormat, progress string
	cmd := &cobra.Command{Use: "export --storage S --format eml|mbox|maildir|ics|vcf|zip --out PATH", Short: "Export stored items in standard formats", Args: cobra.ArbitraryArgs,
		Long: `Export the newest stored version of each selected item:
  eml      one .eml file per message, in a folder tree per mailbox
  mbox     one mbox file per mail folder (mboxrd quoting)
  maildir  a Maildir tree per mailbox, one directory per folder (Dovecot LAYOUT=fs)
  ics      one iCalendar file per calendar folder (recurrence and exceptions kept)
  vcf      one vCard file per contacts folder
  zip      a zip file holding mail as EML, calendars as ICS and contacts as VCF
Folder names are sanitised: nothing is written outside --out, whatever a folder is called.
--out must be a new or empty directory (for zip: a new file).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && !cmd.Flags().Changed("items") {
				return usageErr("unexpected arguments %q: item ids follow --items (--items ID1 ID2 ... or --items ID1,ID2)", args)
			}
			f.items = append(f.items, args...) // --items ID1 ID2 ...
			if storage == "" || out == "" {
				return usageErr("--storage and --out are required")
			}
			if err := f.prepare(); err != nil {
				return err
			}
			if err := checkProgress(progress); err != nil {
				return err
			}
			ex, err := export.New(format, out)
			if err != nil {
				return usageErr("%v", err)
			}
			started := time.Now()
			err = withStorage(g, storage, access, func(v *vault.Vault) error {
				var prog counter
				if err := eachLatest(v, &f, func(vault.Version) error { prog.total++; return nil }); err != nil {
					return err
				}
				stopProgress := startProgress(progress, cmd.ErrOrStderr(), prog.state)
				defer stopProgress()
				return eachLatest(v, &f, func(ver vault.Version) error {
					defer prog.add(ver.Size)
					content, err := v.Read(ver)
					if err != nil {
						return err
					}
					return ex.Add(export.Item{ID: ver.ID, Mailbox: ver.Mailbox, Folder: ver.FolderPath, FolderID: ver.FolderID,
						Kind: ver.Kind, Format: ver.Format, Content: content})
				})
			})
			res, cerr := ex.Close()
			if err == nil {
				err = cerr
			}
			if err != nil {
				return &exitError{code: exitErrors, err: fmt.Errorf("export: %w", err)}
			}
			elapsed := time.Since(started).Seconds()
			w := cmd.OutOrStdout()
			if reportFormat == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			n := res.Messages + res.Events + res.Contacts
			fmt.Fprintf(w, "exported %d messages, %d events, %d contacts as %s into %s (%d files, %s, %.0f items/s)\n",
				res.Messages, res.Events, res.Contacts, format, out, res.Files, projections.HumanBytes(res.Bytes), float64(n)/max(elapsed, 1e-3))
			for _, reason := range res.SkipReasons() {
				fmt.Fprintf(w, "  left out: %d %s\n", res.Skipped[reason], reason)
			}
			if len(res.Failed) > 0 {
				shown := res.Failed[:min(len(res.Failed), 10)]
				fmt.Fprintf(w, "  could not convert (first %d; --report json lists up to 100):\n    %s\n", len(shown), strings.Join(shown, "\n    "))
			}
			return nil
		}}
	access.register(cmd.Flags())
	f.registerSelection(cmd)
	cmd.Flags().StringVar(&storage, "storage", "", "storage NAME or directory")
	cmd.Flags().StringVar(&format, "format", "eml", "eml, mbox, maildir, ics, vcf or zip")
	cmd.Flags().StringVar(&out, "out", "", "output directory (zip: output file)")
	cmd.Flags().StringVar(&reportFormat, "report", "text", "summary format: text or json")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress display: auto, bar, plain, none")
	return cmd
}
