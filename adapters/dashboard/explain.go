package dashboard

import (
	"encoding/csv"
	"fmt"
	"strings"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// Row is one line of a run's timeline (its CSV log).
type Row struct {
	Time, Mailbox, Folder, Worker, Event, Detail string
	Bad                                          bool
}

func parseCSV(s string) []Row {
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil || len(recs) < 1 {
		return nil
	}
	out := make([]Row, 0, len(recs)-1)
	for _, r := range recs[1:] {
		if len(r) < 8 {
			continue
		}
		bad := strings.Contains(r[7], "– failed") || strings.Contains(r[7], "– throttled") || strings.Contains(r[7], "– error") ||
			r[6] == "item_quarantined" || r[6] == "folder_skipped" || r[6] == "folder_parked"
		out = append(out, Row{Time: r[0], Mailbox: r[3], Folder: r[4], Worker: r[5], Event: r[6], Detail: r[7], Bad: bad})
	}
	return out
}

// Explain says, in plain words, why a run is (or was) slow or left
// something out: the server throttling it, isolation of dirty items
// costing requests, folders skipped, or the storage being the bottleneck
// (the three kinds of stall the field notes describe). Every number it
// gives is one of the report's, as the run page shows them.
func Explain(r *projections.Report) []string {
	var out []string
	failed := r.RequestsByOutcome[domain.OutcomeFailed]
	if r.ThrottledRequests > 0 || r.Parks > 0 {
		out = append(out, fmt.Sprintf("Throttled by the server: %d requests were answered \"too many requests\" or \"server busy\", and folders were parked %d times for the back-off asked for. mailvault waits exactly that long and works on other folders meanwhile; a folder that looks stalled is waiting out the server, not hung.", r.ThrottledRequests, r.Parks))
	}
	if r.FoldersSkipped > 0 {
		out = append(out, fmt.Sprintf("%s skipped for now (throttled longer than the run's patience, or an error); each continues from its cursor in the next run.", counted(r.FoldersSkipped, "folder was", "folders were")))
	}
	switch {
	case failed > 0:
		out = append(out, fmt.Sprintf("Isolating dirty items: %d requests failed because of an item the server cannot read; mailvault split those batches to save every clean item, and %s quarantined by id so later runs do not pay again.", failed, counted(r.ItemsQuarantined, "item is", "items are")))
	case r.ItemsQuarantined > 0:
		out = append(out, fmt.Sprintf("%s quarantined: the server named them as unreadable, or an earlier run found them dirty. Each is tried again alone once a day (or now, from the job's quarantine page); nothing else waited for them.", counted(r.ItemsQuarantined, "item is", "items are")))
	}
	switch {
	case r.StallTargetS > 1.5*r.StallSourceS && r.StallTargetS > 1:
		out = append(out, fmt.Sprintf("Waiting for storage: writing took %.1f s against %.1f s waiting on the server. The storage (target) is the bottleneck — check its disk.", r.StallTargetS, r.StallSourceS))
	case r.StallSourceS > 0:
		out = append(out, fmt.Sprintf("Most waiting was on the server (source): %.1f s of responses against %.1f s of storage writes.", r.StallSourceS, r.StallTargetS))
	}
	if len(out) == 0 {
		out = append(out, "Nothing held this run up.")
	}
	return out
}

// counted is n with the words that agree with it.
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
