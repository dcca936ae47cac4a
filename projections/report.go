package projections

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
)

// QuarantinedItem is one dirty item named in a report.
type QuarantinedItem struct {
	Mailbox  string `json:"mailbox"`
	Folder   string `json:"folder"`
	Position int    `json:"position"`
	ItemID   string `json:"item_id"`
	Code     string `json:"code"`
	How      string `json:"how"` // failed, inferred, left_out, still_dirty
}

// SkippedFolder is a folder a run did not finish.
type SkippedFolder struct {
	Mailbox string `json:"mailbox"`
	Folder  string `json:"folder"`
	Reason  string `json:"reason"`
	Resume  int    `json:"resume_position"`
}

// Report is the summary of one run. It is a fold over the run's events: the
// same code builds it live, event by event, and afterwards from the log.
type Report struct {
	RunID   string          `json:"run_id"`
	Job     string          `json:"job,omitempty"` // "" for a run started by hand
	State   domain.RunState `json:"state"`
	Started time.Time       `json:"started"`
	Ended   time.Time       `json:"ended"`
	// RunCounts are the counters, embedded so that the JSON stays flat.
	domain.RunCounts
	Skipped []SkippedFolder `json:"skipped_folders"`
	// Paces are the paces (budget units per second) throttles left
	// mailboxes at, "(app)" for a tenant-wide limit: what the next run
	// starts from. PaceHolds are requests mailvault's pace held back
	// without asking the server (counted neither as requests nor as
	// throttled).
	Paces map[string]float64 `json:"paces,omitempty"`
	// PaceLimits say what held each pace back: the server's throttle
	// code, and ", costly" when its back-off made the limit one to
	// approach from below (domain.LearnedPace).
	PaceLimits   map[string]string `json:"pace_limits,omitempty"`
	PaceHolds    int               `json:"pace_holds,omitempty"`
	DurationS    float64           `json:"duration_s"`
	ItemsPerS    float64           `json:"items_per_s"`
	MBPerS       float64           `json:"mb_per_s"`
	StallSourceS float64           `json:"stall_source_s"`
	StallTargetS float64           `json:"stall_target_s"`
	Quarantined  []QuarantinedItem `json:"quarantined"`
	Errors       []string          `json:"errors"`
	// CurrentMailbox and CurrentFolder are where the run last fetched.
	CurrentMailbox string `json:"current_mailbox,omitempty"`
	CurrentFolder  string `json:"current_folder,omitempty"`

	last        time.Time
	parked      map[string]bool
	quarSeen    map[string]int
	stallSource time.Duration
	stallTarget time.Duration
	finished    bool
	// compacted: the run's detail was replaced by a summary, which already
	// counts whatever detail a compaction cut short left behind.
	compacted bool
}

// NewReport starts an empty report for run.
func NewReport(run string) *Report {
	return &Report{RunID: run, State: domain.StateRunning, RunCounts: domain.RunCounts{RequestsByOutcome: map[string]int{}},
		Quarantined: []QuarantinedItem{}, Skipped: []SkippedFolder{}, Errors: []string{}, quarSeen: map[string]int{}, parked: map[string]bool{}}
}

// requestOutcome is the word a request's outcome is counted and replayed under.
func requestOutcome(ev *domain.Event) string {
	switch ev.Type {
	case domain.BatchFetched, domain.ItemsListed:
		return domain.OutcomeSuccess
	case domain.Throttled:
		return domain.OutcomeThrottled
	case domain.BatchFailed:
		if ev.Class == domain.ClassDirty {
			return domain.OutcomeFailed
		}
		return "error"
	}
	return ""
}

// Apply folds one event into the report.
func (r *Report) Apply(ev *domain.Event) {
	if ev.Run != r.RunID || r.compacted && domain.IsRunDetail(ev) {
		return
	}

	if ev.Time.After(r.last) {
		r.last = ev.Time
	}
	r.stallSource += time.Duration(ev.SourceMS) * time.Millisecond
	r.stallTarget += time.Duration(ev.TargetMS) * time.Millisecond
	switch ev.Type {
	case domain.RunStarted:
		r.Started = ev.Time
		if ev.Config != nil {
			r.Job = ev.Config.Job
		}
	case domain.RunFinished:
		r.State = domain.RunState(ev.State)
		r.Ended = ev.Time
		r.finished = true
	case domain.RunCompacted:
		if c := ev.Compaction; c != nil {
			r.compacted = true
			r.RunCounts.Add(c.Counts)
			r.stallSource += time.Duration(c.StallSourceMS) * time.Millisecond
			r.stallTarget += time.Duration(c.StallTargetMS) * time.Millisecond
			if c.CurrentMailbox != "" {
				r.CurrentMailbox, r.CurrentFolder = c.CurrentMailbox, c.CurrentFolder
			}
		}
	case domain.FolderDiscovered:
		r.FoldersTotal++
	case domain.StorageSealed:
		if ev.Outcome == domain.OutcomeFailed {
			r.Errors = append(r.Errors, "storage: the run's data could not be sealed where it was asked to go: "+ev.Message)
		}
	case domain.MailboxDiscovered, domain.DiscoveryCompleted:
		r.DiscoveryRequests += ev.Requests
		if ev.Outcome == domain.OutcomeFailed {
			r.Errors = append(r.Errors, fmt.Sprintf("%s: discovery failed: %s %s", ev.Mailbox, ev.Code, ev.Message))
		}
	case domain.ItemsListed:
		r.ItemsScanned += ev.Count
		r.ListRequests++
	case domain.BatchFetched, domain.BatchFailed, domain.Throttled:
		r.CurrentMailbox, r.CurrentFolder = ev.Mailbox, ev.Folder
		if ev.PaceRPS > 0 {
			who := ev.Mailbox
			if ev.PaceApp {
				who = "(app)"
			}
			if r.Paces == nil {
				r.Paces, r.PaceLimits = map[string]float64{}, map[string]string{}
			}
			r.Paces[who] = round3(ev.PaceRPS)
			limit := ev.Code
			if ev.PaceCostly {
				limit += ", costly"
			}
			r.PaceLimits[who] = limit
		}
		if ev.Code == domain.CodePaceHold {
			r.PaceHolds++
			break
		}
		if ev.Type == domain.Throttled {
			r.ThrottledRequests++
		}
		if ev.Request == domain.RequestList {
			r.ListRequests++ // a failed or throttled listing
			break
		}
		r.Requests++
		r.RequestsByOutcome[requestOutcome(ev)]++
		for _, f := range ev.ItemFailures {
			if f.Class == domain.ClassThrottled {
				r.ThrottledItems++
			}
		}
	case domain.ItemRemoved:
		r.ItemsRemoved++
	case domain.ItemGone:
		r.ItemsGone++
	case domain.ListingRestarted:
		r.ListingRestarts++
	case domain.ItemStored:
		r.itemStored(ev.Outcome, ev.Size, ev.NewBytes)
	case domain.ItemsStored:
		for _, it := range ev.Stored {
			r.itemStored(it.Outcome(), it.Size, it.NewBytes)
		}
	case domain.ItemQuarantined:
		key := itemOf(ev)
		how := ev.Outcome
		if ev.Reason == domain.ReasonInferred {
			how = domain.ReasonInferred
		}
		item := QuarantinedItem{Mailbox: ev.Mailbox, Folder: ev.Folder, Position: ev.Position, ItemID: ev.ItemID, Code: ev.Code, How: how}
		if i, ok := r.quarSeen[key]; ok {
			r.Quarantined[i] = item
			break
		}
		r.quarSeen[key] = len(r.Quarantined)
		r.Quarantined = append(r.Quarantined, item)
		r.ItemsQuarantined++
	case domain.ItemReleased:
		r.ItemsReleased++
		key := itemOf(ev)
		if i, ok := r.quarSeen[key]; ok {
			r.Quarantined = append(r.Quarantined[:i], r.Quarantined[i+1:]...)
			delete(r.quarSeen, key)
			for k, j := range r.quarSeen {
				if j > i {
					r.quarSeen[k] = j - 1
				}
			}
			r.ItemsQuarantined--
		}
	case domain.FolderParked:
		r.Parks++
		r.parked[ev.Mailbox+"\x00"+ev.FolderID] = true
	case domain.FolderResumed:
		delete(r.parked, ev.Mailbox+"\x00"+ev.FolderID)
	case domain.FolderCompleted:
		r.FoldersCompleted++
	case domain.FolderSkipped:
		delete(r.parked, ev.Mailbox+"\x00"+ev.FolderID)
		r.FoldersSkipped++
		s := SkippedFolder{Mailbox: ev.Mailbox, Folder: ev.Folder, Reason: ev.Reason}
		if ev.Cursor != nil {
			s.Resume = ev.Cursor.Position
		}
		r.Skipped = append(r.Skipped, s)
		if ev.Reason != domain.ReasonThrottled && ev.Reason != domain.ReasonFolderGone {
			r.Errors = append(r.Errors, fmt.Sprintf("%s / %s: %s %s", ev.Mailbox, ev.Folder, ev.Code, ev.Message))
		}
	}
	r.derive()
}

// itemOf names the item an event is about, across mailboxes and folders.
func itemOf(ev *domain.Event) string { return ev.Mailbox + "\x00" + ev.FolderID + "\x00" + ev.ItemID }

func (r *Report) derive() {
	end := r.Ended
	if !r.finished {
		end = r.last
		r.State = domain.StateNotFinished
	}
	if !r.Started.IsZero() && end.After(r.Started) {
		r.DurationS = round3(end.Sub(r.Started).Seconds())
	}
	if r.DurationS > 0 {
		r.ItemsPerS = round3(float64(r.ItemsStored+r.ItemsUnchanged) / r.DurationS)
		r.MBPerS = round3(float64(r.BytesStored) / 1e6 / r.DurationS)
	}
	r.StallSourceS = round3(r.stallSource.Seconds())
	r.StallTargetS = round3(r.stallTarget.Seconds())
}

// Parked is how many folders are waiting out a server's Retry-After now.
func (r *Report) Parked() int { return len(r.parked) }

// Live marks a report that is still being folded as running rather than
// not finished.
func (r *Report) Live() *Report {
	c := *r
	if r.Paces != nil {
		c.Paces, c.PaceLimits = maps.Clone(r.Paces), maps.Clone(r.PaceLimits)
	}
	if !r.finished {
		c.State = domain.StateRunning
	}
	return &c
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// itemStored counts one item a fetched batch stored, or found unchanged.
func (r *Report) itemStored(outcome string, size, newBytes int64) {
	if outcome != domain.OutcomeStored {
		r.ItemsUnchanged++
		return
	}
	r.ItemsStored++
	r.BytesStored += size
	r.BytesWritten += newBytes
}

// Decode reads a domain event from a log record.
func Decode(rec eventlog.Record) (domain.Event, error) {
	var ev domain.Event
	// encoding/json's semantics on json/v2's faster decoder: every
	// projection decodes every event.
	if err := jsonv1.Unmarshal(rec.Payload, &ev); err != nil {
		return ev, &eventlog.CorruptError{Seq: rec.Seq, Key: []byte(fmt.Sprintf("e/%d", rec.Seq)), Err: err}
	}
	if ev.Type == "" || ev.Run == "" {
		return ev, &eventlog.CorruptError{Seq: rec.Seq, Key: []byte(fmt.Sprintf("e/%d", rec.Seq)), Err: fmt.Errorf("not a mailvault event")}
	}
	if err := domain.Upgrade(&ev); err != nil {
		return ev, fmt.Errorf("event log entry %d: %w", rec.Seq, err)
	}
	return ev, nil
}

// ScanRun calls fn for every event of run, in log order.
func ScanRun(log Scanner, run string, fn func(*domain.Event) error) error {
	return log.Scan(eventlog.Run(run), 0, func(rec eventlog.Record) error {
		ev, err := Decode(rec)
		if err != nil {
			return err
		}
		return fn(&ev)
	})
}

// BuildReport rebuilds a run's report from the log.
func BuildReport(log Scanner, run string) (*Report, error) {
	r := NewReport(run)
	found := false
	err := ScanRun(log, run, func(ev *domain.Event) error {
		found = true
		r.Apply(ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("run %s is not in this data directory", run)
	}
	return r, nil
}

// ResolveRun turns "last" or a run id prefix into a run id.
func ResolveRun(log Reader, run string) (string, error) {
	ids, err := Resume{Log: log}.RunIDs()
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", ErrNoRuns
	}
	if run == "last" || run == "" {
		return ids[len(ids)-1], nil
	}
	var match []string
	for _, id := range ids {
		if id == run {
			return id, nil
		}
		if strings.HasPrefix(id, run) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return "", fmt.Errorf("no run %q in this data directory (see 'mailvault runs')", run)
	default:
		return "", fmt.Errorf("run %q is ambiguous: %s", run, strings.Join(match, ", "))
	}
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("Run %s: %s", r.RunID, r.State)
	p("  items scanned      %d", r.ItemsScanned)
	p("  items stored       %d (%s; %s written after dedup and compression)", r.ItemsStored, HumanBytes(r.BytesStored), HumanBytes(r.BytesWritten))
	p("  items unchanged    %d", r.ItemsUnchanged)
	p("  items quarantined  %d", r.ItemsQuarantined)
	if r.ItemsReleased > 0 {
		p("  items released     %d (readable again)", r.ItemsReleased)
	}
	if r.ItemsRemoved+r.ItemsGone > 0 {
		p("  items removed      %d deleted at the source (%d while being fetched)", r.ItemsRemoved+r.ItemsGone, r.ItemsGone)
	}
	if r.ListingRestarts > 0 {
		p("  listing restarts   %d (the server discarded a delta state)", r.ListingRestarts)
	}
	if r.DiscoveryRequests > 0 {
		p("  requests           %d fetch (%s), %d listing, %d discovery", r.Requests, outcomes(r.RequestsByOutcome), r.ListRequests, r.DiscoveryRequests)
	} else {
		p("  requests           %d fetch (%s), %d listing", r.Requests, outcomes(r.RequestsByOutcome), r.ListRequests)
	}
	if r.ThrottledItems > 0 {
		p("  throttled requests %d (+%d items inside batches)", r.ThrottledRequests, r.ThrottledItems)
	} else {
		p("  throttled requests %d", r.ThrottledRequests)
	}
	if len(r.Paces) > 0 || r.PaceHolds > 0 {
		p("  pace               %s", paceLine(r.Paces, r.PaceLimits, r.PaceHolds))
	}
	p("  folders            %d completed, %d skipped, of %d", r.FoldersCompleted, r.FoldersSkipped, r.FoldersTotal)
	p("  duration           %.1fs, %.1f items/s, %.2f MB/s", r.DurationS, r.ItemsPerS, r.MBPerS)
	p("  stalled            %.1fs on the source (server), %.1fs on the target (storage)", r.StallSourceS, r.StallTargetS)
	for _, s := range r.Skipped {
		if s.Reason == domain.ReasonThrottled {
			p("  skipped: %s / %s: throttled, continues next run at #%d", s.Mailbox, s.Folder, s.Resume)
		} else {
			p("  skipped: %s / %s: %s", s.Mailbox, s.Folder, s.Reason)
		}
	}
	for _, q := range r.Quarantined {
		p("  quarantined: %s / %s #%d %s (%s, %s)", q.Mailbox, q.Folder, q.Position, q.ItemID, q.Code, q.How)
	}
	for _, e := range r.Errors {
		p("  error: %s", e)
	}
	return nil
}

func outcomes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// HumanBytes prints a byte count for people.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// paceLine says where throttling held the pace: the slowest mailboxes
// first, at most five, and the requests held back without asking.
func paceLine(paces map[string]float64, limits map[string]string, holds int) string {
	who := make([]string, 0, len(paces))
	for k := range paces {
		who = append(who, k)
	}
	sort.Slice(who, func(i, j int) bool {
		if paces[who[i]] != paces[who[j]] {
			return paces[who[i]] < paces[who[j]]
		}
		return who[i] < who[j]
	})
	var parts []string
	for i, k := range who {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(who)-5))
			break
		}
		part := fmt.Sprintf("%s %.1f/s", k, paces[k])
		if l := limits[k]; l != "" {
			part += " (" + l + ")"
		}
		parts = append(parts, part)
	}
	line := "held by throttling: " + strings.Join(parts, ", ")
	if len(who) == 0 {
		line = "not held by throttling"
	}
	switch {
	case holds == 1:
		line += "; 1 request waited for the pace without asking the server"
	case holds > 1:
		line += fmt.Sprintf("; %d requests waited for the pace without asking the server", holds)
	}
	return line
}
