package badgerdb

import (
	"testing"
	"time"
)

func TestSpaceGaugeReadsTheDiskOnlyWhenItMatters(t *testing.T) {
	const mb = 1 << 20
	disk, reads := int64(1000*mb), 0
	clock := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	g := &SpaceGauge{Dir: "x", Recheck: 16 * mb, read: func(string) (int64, bool) { reads++; return disk, true }, now: func() time.Time { return clock }}
	steps := []struct {
		name      string
		later     time.Duration // the clock moves on before the call
		need      int64
		diskAfter int64 // what another writer left on the disk meanwhile
		wantFree  int64
		wantReads int
	}{
		{"first call reads", 0, 1 * mb, 1000 * mb, 1000 * mb, 1},
		{"small writes are counted", 0, 4 * mb, 1000 * mb, 999 * mb, 1},
		{"still counted", 0, 4 * mb, 500 * mb, 995 * mb, 1},
		{"recheck after 16 MB spent sees the other writer", 0, 8 * mb, 500 * mb, 500 * mb, 2},
		{"counted again", 100 * time.Millisecond, 1 * mb, 450 * mb, 492 * mb, 2},
		{"a second after the reading the disk is read again", time.Second, 1 * mb, 450 * mb, 450 * mb, 3},
		{"a write that would cross the recheck reads", 0, 20 * mb, 450 * mb, 450 * mb, 4},
	}
	for _, s := range steps {
		clock = clock.Add(s.later)
		free, ok := g.Free(s.need, 32*mb)
		if !ok || free != s.wantFree || reads != s.wantReads {
			t.Fatalf("%s: free %d MB (ok %v) after %d reads, want %d MB after %d", s.name, free/mb, ok, reads, s.wantFree/mb, s.wantReads)
		}
		disk = s.diskAfter
	}
	// Near the floor every call reads.
	disk, reads = 40*mb, 0
	g = &SpaceGauge{Dir: "x", Recheck: 16 * mb, read: func(string) (int64, bool) { reads++; return disk, true }, now: func() time.Time { return clock }}
	for i := 0; i < 3; i++ {
		g.Free(mb, 32*mb)
	}
	if reads != 3 {
		t.Fatalf("near the floor: %d reads for 3 writes, want 3", reads)
	}
}
