package domain

// The event log's vocabulary, in one place: the topics events are written
// to and the words of reasons and outcomes that the pipeline writes and the
// projections read. A word changed here changes what old logs mean: the
// committed histories (tests/testdata/histories) catch it.

// Topics.
const (
	// TopicItems receives item_stored events: one topic for every run, so
	// that an item stored in a pass is deduplicated across its runs.
	TopicItems = "mailvault.items"
	// TopicConfig receives configuration changes.
	TopicConfig = "mailvault.config"
	// TopicRestore receives the events of restores.
	TopicRestore = "mailvault.restore"
	// TopicOps receives the events of storage operations (prune, repair,
	// alerts) and log salvage.
	TopicOps = "mailvault.ops"
	// TopicDamaged holds the placeholders a salvage of the log writes for
	// records it could not read, so the history shows the gap.
	TopicDamaged = "mailvault.damaged"
)

// RunRequestsTopic and RunOutcomesTopic are a run's own topics: a run's
// stages never read another run's messages.
func RunRequestsTopic(run string) string { return "mailvault.run." + run + ".requests" }
func RunOutcomesTopic(run string) string { return "mailvault.run." + run + ".outcomes" }

// Reasons and outcomes the planner writes and the reports read.
const (
	// ReasonThrottled is the skip reason of a folder that continues next
	// run.
	ReasonThrottled = "throttled"
	// ReasonFolderGone is the skip reason of a folder deleted at the
	// source during the run: not an error.
	ReasonFolderGone = "deleted at the source"
	// ReasonInferred marks an item quarantined by inference, never fetched.
	ReasonInferred = "inferred"
	// ReasonThrottledByServer and ReasonBackoff are why a folder parks.
	ReasonThrottledByServer = "throttled by the server"
	ReasonBackoff           = "transient error, backing off"
	// OutcomeLeftOut marks a known-dirty item left out of a batch.
	OutcomeLeftOut = "left_out"
)
