package domain

import "time"

// RunCompacted is the summary that replaces a run's per-item detail when the
// event log is compacted: it stands where the first removed event stood and
// carries what the removed events counted, so that the run's report reads
// the same afterwards and its replay says what was removed.
const RunCompacted EventType = "run_compacted"

// LogCompacted records a compaction of the log: the runs it reduced and the
// events it removed.
const LogCompacted EventType = "log_compacted"

// DefaultDetailRetention is how long the log keeps a run's per-item detail
// (every request, listing page and stored item) before compaction reduces
// the run to its summary, quarantine and skipped folders.
var DefaultDetailRetention = Period{N: 90, Unit: "days"}

// RunCounts are the counters of a run's report. The report folds them from
// the run's events; a compaction summary carries the part its removed
// events had counted, and the report adds it back.
type RunCounts struct {
	ItemsScanned     int `json:"items_scanned"`
	ItemsStored      int `json:"items_stored"`
	ItemsUnchanged   int `json:"items_unchanged"`
	ItemsQuarantined int `json:"items_quarantined"`
	ItemsReleased    int `json:"items_released"`
	ItemsRemoved     int `json:"items_removed"`
	ItemsGone        int `json:"items_gone"`
	ListingRestarts  int `json:"listing_restarts"`
	// ThrottledItems are items a batch answered throttled on their own
	// (a $batch sub-request's 429); they are fetched again.
	ThrottledItems int   `json:"throttled_items"`
	BytesStored    int64 `json:"bytes_stored"`
	// BytesWritten is what the storage wrote for the stored items after
	// deduplication and compression.
	BytesWritten      int64          `json:"bytes_written"`
	Requests          int            `json:"requests"`
	RequestsByOutcome map[string]int `json:"requests_by_outcome"`
	ListRequests      int            `json:"list_requests"`
	ThrottledRequests int            `json:"throttled_requests"`
	// DiscoveryRequests are the budget units discovery spent reading
	// mailboxes' folder trees (absent from logs written before they were
	// counted).
	DiscoveryRequests int `json:"discovery_requests,omitempty"`
	FoldersTotal      int `json:"folders_total"`
	FoldersCompleted  int `json:"folders_completed"`
	FoldersSkipped    int `json:"folders_skipped"`
	// Parks counts the times a folder was parked to wait out a back-off
	// (the server's Retry-After, or mailvault's own after an error).
	Parks int `json:"parks"`
}

// Add adds o's counters to c.
func (c *RunCounts) Add(o RunCounts) {
	c.ItemsScanned += o.ItemsScanned
	c.ItemsStored += o.ItemsStored
	c.ItemsUnchanged += o.ItemsUnchanged
	c.ItemsQuarantined += o.ItemsQuarantined
	c.ItemsReleased += o.ItemsReleased
	c.ItemsRemoved += o.ItemsRemoved
	c.ItemsGone += o.ItemsGone
	c.ListingRestarts += o.ListingRestarts
	c.ThrottledItems += o.ThrottledItems
	c.BytesStored += o.BytesStored
	c.BytesWritten += o.BytesWritten
	c.Requests += o.Requests
	if len(o.RequestsByOutcome) > 0 && c.RequestsByOutcome == nil {
		c.RequestsByOutcome = map[string]int{}
	}
	for k, v := range o.RequestsByOutcome {
		c.RequestsByOutcome[k] += v
	}
	c.ListRequests += o.ListRequests
	c.ThrottledRequests += o.ThrottledRequests
	c.DiscoveryRequests += o.DiscoveryRequests
	c.FoldersTotal += o.FoldersTotal
	c.FoldersCompleted += o.FoldersCompleted
	c.FoldersSkipped += o.FoldersSkipped
	c.Parks += o.Parks
}

// Compaction is what a run_compacted event says: when the run's detail was
// removed and under which retention, how many events of each type went, and
// what they had counted.
type Compaction struct {
	At        time.Time      `json:"at"`
	Retention string         `json:"retention"`
	Events    int            `json:"events"`
	ByType    map[string]int `json:"by_type"`
	// First and Last are the times of the first and last removed event.
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Counts RunCounts `json:"counts"`
	// StallSourceMS and StallTargetMS are the waits the removed events
	// recorded.
	StallSourceMS int64 `json:"stall_source_ms,omitempty"`
	StallTargetMS int64 `json:"stall_target_ms,omitempty"`
	// CurrentMailbox and CurrentFolder are where the run last fetched.
	CurrentMailbox string `json:"current_mailbox,omitempty"`
	CurrentFolder  string `json:"current_folder,omitempty"`
}

// IsRunDetail tells whether compaction removes ev: the per-request and
// per-item record of a backup run. What outlives it is the run's start and
// end, failed discoveries, quarantine (and release) of dirty items, folders
// skipped with their resume points, stop requests and alerts; the resume
// state and quarantine projections are kept apart from the events and are
// not touched.
func IsRunDetail(ev *Event) bool {
	switch ev.Type {
	case ListRequested, ItemsListed, BatchRequested, BatchFetched, BatchFailed, BatchSplit,
		ItemStored, ItemsStored, Throttled, FolderParked, FolderResumed, ParkExpired,
		FolderDiscovered, FolderCompleted, ItemRemoved, ItemGone, ListingRestarted:
		return true
	case MailboxDiscovered, DiscoveryCompleted:
		return ev.Outcome != OutcomeFailed
	}
	return false
}
