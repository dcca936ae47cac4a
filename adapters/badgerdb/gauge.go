package badgerdb

import (
	"sync"
	"time"
)

// SpaceGauge answers "how much room is left" for a writer that asks before
// every write, without a statfs call each time: it counts what the writer
// spent since the last reading and reads the file system again once that
// reaches Recheck bytes, once the reading is older than a second, or once
// the estimate comes near the floor a caller tests against. Other writers
// on the same disk are seen within Recheck bytes of this writer's own
// writing or within a second, whichever comes first.
type SpaceGauge struct {
	Dir     string
	Recheck int64 // bytes spent between readings; 0 means every call

	read func(dir string) (int64, bool) // FreeBytes; tests replace it
	now  func() time.Time               // time.Now; tests replace it
	at   time.Time                      // when the last reading was taken

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
	now := time.Now
	if g.now != nil {
		now = g.now
	}
	t := now()
	if g.known && g.spent+need < g.Recheck && g.free-g.spent-need > floor+g.Recheck && t.Sub(g.at) < time.Second {
		g.spent += need
		return g.free - g.spent + need, true
	}
	read := g.read
	if read == nil {
		read = FreeBytes
	}
	free, ok := read(g.Dir)
	g.free, g.spent, g.known, g.at = free, need, ok, t
	return free, ok
}
