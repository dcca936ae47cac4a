package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/export"
	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// exportInput is the export operation's input.
type exportInput struct {
	app.ExportRun
	// Report is the summary's format.
	Report   string `json:"report"`
	Progress string `json:"progress"`
}

var exportOperation = operation("export", func(ctx context.Context, g *globalFlags, in exportInput, stdout, errOut io.Writer) error {
	started := time.Now()
	return withService(g, func(s *app.Service) error {
		res, err := s.Export(ctx, in.ExportRun, newCounter(in.Progress, errOut))
		if err != nil {
			return err
		}
		elapsed := time.Since(started).Seconds()
		w := stdout
		if in.Report == "json" {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			if err := enc.Encode(res); err != nil {
				return err
			}
			return damagedExit(len(res.Damaged))
		}
		n := res.Messages + res.Events + res.Tasks + res.Contacts
		fmt.Fprintf(w, "exported %d messages, %d events, %d tasks, %d contacts as %s into %s (%d files, %s, %.0f items/s)\n",
			res.Messages, res.Events, res.Tasks, res.Contacts, in.Format, in.Out, res.Files, projections.HumanBytes(res.Bytes), float64(n)/max(elapsed, 1e-3))
		for _, reason := range res.SkipReasons() {
			fmt.Fprintf(w, "  left out: %d %s\n", res.Skipped[reason], reason)
		}
		if res.Resumed > 0 {
			fmt.Fprintf(w, "  %d items were exported already by an interrupted export into %s\n", res.Resumed, in.Out)
		}
		if len(res.Failed) > 0 {
			shown := res.Failed[:min(len(res.Failed), 10)]
			fmt.Fprintf(w, "  could not convert (first %d; --report json lists up to 100):\n    %s\n", len(shown), strings.Join(shown, "\n    "))
		}
		if len(res.Damaged) > 0 {
			fmt.Fprintf(w, "  damaged in the storage, not exported (%d; run mailvault verify %s --read-data):\n    %s\n", len(res.Damaged), in.Storage, strings.Join(res.Damaged, "\n    "))
		}
		return damagedExit(len(res.Damaged))
	})
})

func newExportCmd(g *globalFlags) *cobra.Command {
	var access storageAccess
	var in exportInput
	f := &in.Selection
	var progress, cardFiles string
	cmd := &cobra.Command{Use: "export --storage S --format eml|mbox|maildir|ics|vcf|zip --out PATH", Short: "Export stored items in standard formats", Args: cobra.ArbitraryArgs,
		Long: `Export the newest stored version of each selected item:
  eml      one .eml file per message, in a folder tree per mailbox
  mbox     one mbox file per mail folder (mboxrd quoting)
  maildir  a Maildir tree per mailbox, one directory per folder (Dovecot LAYOUT=fs)
  ics      one iCalendar file per calendar folder (recurrence and exceptions kept)
  vcf      one vCard file per contacts folder, or per contact with --vcard-files contact
           (vCard 3.0, which Outlook imports, unless --vcard-version 4.0)
  zip      a zip file holding mail as EML, calendars as ICS and contacts as VCF
Folder names are sanitised: nothing is written outside --out, whatever a folder is called.
--out must be a new or empty directory (for zip: a new file). Files are written under temporary
names and renamed when whole; the same command run again after an interruption continues the
export in the same directory. Items the storage cannot give back intact are named and left out;
the exit code is then 3 (finished with warnings).`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if len(args) > 0 && !cmd.Flags().Changed("items") {
				return usageErr("unexpected arguments %q: item ids follow --items (--items ID1 ID2 ... or --items ID1,ID2)", args)
			}
			f.Items = append(f.Items, args...) // --items ID1 ID2 ...
			if in.Storage == "" || in.Out == "" {
				return usageErr("--storage and --out are required")
			}
			if err := f.Check(); err != nil {
				return err
			}
			if err := checkProgress(progress); err != nil {
				return err
			}
			if !slices.Contains(export.Formats, in.Format) {
				return usageErr("export format %q: use %s", in.Format, strings.Join(export.Formats, ", "))
			}
			if !slices.Contains(itemformat.CardVersions, in.Contacts.CardVersion) {
				return usageErr("--vcard-version %q: use %s", in.Contacts.CardVersion, strings.Join(itemformat.CardVersions, " or "))
			}
			if !slices.Contains(export.CardFiles, cardFiles) {
				return usageErr("--vcard-files %q: use %s", cardFiles, strings.Join(export.CardFiles, " or "))
			}
			in.Contacts.CardPerContact = cardFiles == "contact"
			if in.Key, err = access.key(); err != nil {
				return err
			}
			if in.Out, err = filepath.Abs(in.Out); err != nil {
				return usageErr("--out: %v", err)
			}
			in.Storage, in.Progress = nameOrPath(in.Storage), progressFor(progress, cmd.ErrOrStderr())
			return exportOperation(cmd, g, in)
		}}
	access.register(cmd.Flags())
	registerSelection(cmd, f)
	cmd.Flags().StringVar(&in.Storage, "storage", "", "storage NAME or directory")
	cmd.Flags().StringVar(&in.Format, "format", "eml", "eml, mbox, maildir, ics, vcf or zip")
	cmd.Flags().StringVar(&in.Out, "out", "", "output directory (zip: output file)")
	cmd.Flags().StringVar(&in.Contacts.CardVersion, "vcard-version", "3.0", "vCard version of exported contacts: 3.0 (Outlook) or 4.0")
	cmd.Flags().StringVar(&cardFiles, "vcard-files", "folder", "one .vcf file per contacts folder (folder) or per contact (contact)")
	cmd.Flags().StringVar(&in.Report, "report", "text", "summary format: text or json")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress display: auto, bar, plain, none")
	return cmd
}

// damagedExit is the exit of a restore or export that left out damaged
// items: finished, with warnings.
func damagedExit(damaged int) error {
	if damaged > 0 {
		return &exitError{code: exitWarnings}
	}
	return nil
}
