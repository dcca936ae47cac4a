package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

func newLogCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "log", Short: "The data directory's event log: compact old runs' detail"}
	var in logCompactInput
	var keep string
	compact := &cobra.Command{Use: "compact [--keep 90d]", Short: "Reduce runs older than the retention period to their summaries and give the space back", Args: cobra.NoArgs,
		Long: `Every request, listing page and stored item of a backup run is an event in the log, so that
'mailvault replay' shows exactly what happened. Compaction removes that per-request detail from
runs whose last event is older than --keep, and keeps for each run a summary with its counts
(its report reads the same), its quarantined items, skipped folders and errors. Where each folder
continues and what is quarantined are kept apart from the events and are never compacted. The
replay of a compacted run says when it was compacted and what went. The daemon compacts on its
own once a day (see 'mailvault daemon --log-retention').`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := parseDetailRetention(keep)
			switch {
			case err != nil:
				return usageErr("--keep: %v", err)
			case p == nil:
				return usageErr("--keep forever: there is nothing to compact")
			}
			in.Keep = *p
			if in.Format != "text" && in.Format != "json" {
				return usageErr("--format %q: use text or json", in.Format)
			}
			return logCompactOperation(cmd, g, in)
		}}
	compact.Flags().StringVar(&keep, "keep", domain.DefaultDetailRetention.String(), "keep runs' per-request detail this long (as 90d, 12w, 6m, 1y; 0: compact every finished run now)")
	compact.Flags().StringVar(&in.Format, "format", "text", "text or json")
	cmd.AddCommand(compact)
	return cmd
}

// parseDetailRetention reads how long runs' detail is kept: a period (90d,
// 12w, 6m, 1y), 0 for none (every finished run is compacted), or forever
// (nil: never compact).
func parseDetailRetention(s string) (*domain.Period, error) {
	switch strings.TrimSpace(strings.ToLower(s)) {
	case "forever":
		return nil, nil
	case "0", "0d":
		return &domain.Period{N: 0, Unit: "days"}, nil
	}
	p, err := domain.ParsePeriod(s)
	if err != nil {
		return nil, fmt.Errorf("%v (or 0 to keep none, forever to keep all)", err)
	}
	return &p, nil
}

// logCompactInput is the log compaction's input.
type logCompactInput struct {
	Keep   domain.Period `json:"keep"`
	Format string        `json:"format"`
}

var logCompactOperation = operation("log-compact", func(ctx context.Context, g *globalFlags, in logCompactInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		res, err := s.CompactLog(ctx, in.Keep, time.Now())
		if err != nil {
			return err
		}
		if in.Format == "json" {
			b, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "%s\n", b)
			return err
		}
		writeCompacted(out, res)
		return nil
	})
})

// writeCompacted says what a compaction did, in a line or two.
func writeCompacted(w io.Writer, res app.Compacted) {
	fmt.Fprintf(w, "compacted %d runs older than %s (%s): %d events of per-request detail removed; %d runs kept whole\n",
		len(res.Runs), res.Retention, res.Cutoff.Format("2006-01-02 15:04 MST"), res.Events, res.Kept)
	if len(res.Finished) > 0 {
		fmt.Fprintf(w, "finished %d compactions an interruption had cut short\n", len(res.Finished))
	}
	if res.Events > 0 {
		fmt.Fprintf(w, "event log on disk: %s before, %s after\n", projections.HumanBytes(res.SizeBefore), projections.HumanBytes(res.SizeAfter))
	}
}
