package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/internal/app"
)

// retryInput is the quarantine retry operation's input.
type retryInput struct {
	Job   string   `json:"job"`
	Items []string `json:"items,omitempty"` // item ids; none: all
}

var quarantineRetryOperation = operation("quarantine-retry", func(ctx context.Context, g *globalFlags, in retryInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		var items []app.QuarantinedItem
		if len(in.Items) > 0 {
			held, err := s.JobQuarantine(ctx, in.Job)
			if err != nil {
				return err
			}
			for _, id := range in.Items {
				found := false
				for _, q := range held {
					if strings.EqualFold(q.ItemID, id) {
						items, found = append(items, app.QuarantinedItem{Mailbox: q.Mailbox, FolderID: q.FolderID, ItemID: q.ItemID}), true
					}
				}
				if !found {
					return usageErr("item %s is not quarantined by job %s (see mailvault quarantine retry --help)", id, in.Job)
				}
			}
		}
		res, err := s.RetryQuarantined(ctx, in.Job, items)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, res.Say())
		return nil
	})
})

// addQuarantineRetry puts "retry" under the quarantine command.
func addQuarantineRetry(g *globalFlags, quarantine *cobra.Command) {
	quarantine.AddCommand(&cobra.Command{Use: "retry JOB [ITEM_ID...]", Short: "Try a job's quarantined items again at its next cycle (all without ITEM_ID)",
		Long: `Try a job's quarantined items again (every one, or those named by the item ids
mailvault quarantine prints) at the job's next cycle, even if the server does not list
them as changed: after a mailbox repair, an item keeps its change key, so change
tracking never reports it. Their folders are listed in full once (list requests only:
nothing stored is fetched again). With the daemon running, a stopped job is started.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return quarantineRetryOperation(cmd, g, retryInput{Job: args[0], Items: args[1:]})
		}})
}
