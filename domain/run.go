package domain

// RunState is the outcome of a run, as an administrator reads it.
type RunState string

const (
	StateRunning     RunState = "running"
	StateFinished    RunState = "finished"
	StateWarnings    RunState = "finished with warnings"
	StateNotFinished RunState = "not finished"
)

// JudgeRun decides a run's state from what happened in it.
func JudgeRun(errors, quarantined, skippedThrottled int) RunState {
	switch {
	case errors > 0:
		return StateNotFinished
	case quarantined > 0 || skippedThrottled > 0:
		return StateWarnings
	default:
		return StateFinished
	}
}
