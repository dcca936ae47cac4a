package projections

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// CSVHeader is the first row of a run's CSV log.
var CSVHeader = []string{"timestamp", "job", "run", "mailbox", "folder", "worker", "event", "detail"}

// CSVLog writes a run's CSV log, one row per event that matters, in the
// replay's wording. It is a fold over the run's events in log order, so the
// same log always gives the same bytes. The worker is the number of the
// request slot a request ran in (the lowest free one when it was sent;
// 0 for the planner's own events).
type CSVLog struct {
	w       *csv.Writer
	replay  *Replay
	job     string
	workers map[string]int // request id -> worker
	busy    []bool
}

// NewCSVLog writes the header to w.
func NewCSVLog(w io.Writer) (*CSVLog, error) {
	c := &CSVLog{w: csv.NewWriter(w), replay: NewReplay(), workers: map[string]int{}}
	return c, c.w.Write(CSVHeader)
}

func (c *CSVLog) take(id string) {
	for i, b := range c.busy {
		if !b {
			c.busy[i] = true
			c.workers[id] = i + 1
			return
		}
	}
	c.busy = append(c.busy, true)
	c.workers[id] = len(c.busy)
}

func (c *CSVLog) release(id string) int {
	n, ok := c.workers[id]
	if !ok {
		return 0
	}
	delete(c.workers, id)
	c.busy[n-1] = false
	return n
}

// Apply writes the rows of one event.
func (c *CSVLog) Apply(ev *domain.Event) error {
	worker := 0
	var lines []string
	switch ev.Type {
	case domain.RunStarted:
		if ev.Config != nil {
			c.job = ev.Config.Job
			lines = []string{fmt.Sprintf("Run started: source %s, batch size %d", ev.Config.Source, ev.Config.BatchSize)}
		} else {
			lines = []string{"Run started"}
		}
	case domain.RunFinished:
		lines = []string{"Run finished: " + ev.State}
	case domain.MailboxDiscovered:
		lines = []string{"Mailbox found"}
	case domain.ListRequested, domain.BatchRequested:
		c.take(ev.ID)
		return nil
	case domain.ItemsListed, domain.BatchFetched, domain.BatchFailed, domain.Throttled:
		worker = c.release(ev.Cause)
		lines = c.replay.Describe(ev)
	default:
		lines = c.replay.Describe(ev)
	}
	for _, l := range lines {
		row := []string{ev.Time.UTC().Format(time.RFC3339Nano), c.job, ev.Run, Printable(ev.Mailbox), Printable(ev.Folder), strconv.Itoa(worker), string(ev.Type), Printable(strings.TrimSpace(l))}
		if err := c.w.Write(row); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes what is buffered.
func (c *CSVLog) Flush() error {
	c.w.Flush()
	return c.w.Error()
}

// WriteRunCSV writes the CSV log of one run from the log.
func WriteRunCSV(w io.Writer, l Scanner, run string) error {
	c, err := NewCSVLog(w)
	if err != nil {
		return err
	}
	if err := ScanRun(l, run, c.Apply); err != nil {
		return err
	}
	return c.Flush()
}
