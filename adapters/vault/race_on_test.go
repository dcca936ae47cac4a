//go:build race

package vault

// raceEnabled: the race detector slows the single-goroutine fault matrices
// tenfold and finds nothing in them; they run a sample under it.
const raceEnabled = true
