package badgerdb

import "sync"

// SpaceGauge answers "how much room is left" for a writer that asks before
// every write, without a statfs call each time: it counts what the writer
// spent since the last reading and reads the file system again once that
// reaches Recheck bytes, or once the estimate comes near the floor a caller
// tests against. Other writers on the same disk are seen within Recheck
// bytes of this writer's own writing.
type SpaceGauge struct {
	Dir     string
	Recheck int64 // bytes spent between readings; 0 means every call

	read func(dir string) (int64, bool) // FreeBytes; tests replace it

	mu    sync.Mutex
	free  int64 // at the last reading
	spent int64 // since the last reading
	known bool
}

// Free reports the free bytes left before a write of need bytes, the way
// FreeBytes does, and counts need as spent. Estimates stay at least
// floor+Recheck above zero; anything closer is read from the disk.
func (g *SpaceGauge) Free(need, floor int64) (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.known && g.spent+need < g.Recheck && g.free-g.spent-need > floor+g.Recheck {
		g.spent += need
		return g.free - g.spent + need, true
	}
	read := g.read
	if read == nil {
		read = FreeBytes
	}
	free, ok := read(g.Dir)
	g.free, g.spent, g.known = free, need, ok
	return free, ok
}
