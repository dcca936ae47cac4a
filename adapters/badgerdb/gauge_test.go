package badgerdb

import "testing"

func TestSpaceGaugeReadsTheDiskOnlyWhenItMatters(t *testing.T) {
	const mb = 1 << 20
	disk, reads := int64(1000*mb), 0
	g := &SpaceGauge{Dir: "x", Recheck: 16 * mb, read: func(string) (int64, bool) { reads++; return disk, true }}
	steps := []struct {
		name      string
		need      int64
		diskAfter int64 // what another writer left on the disk meanwhile
		wantFree  int64
		wantReads int
	}{
		{"first call reads", 1 * mb, 1000 * mb, 1000 * mb, 1},
		{"small writes are counted", 4 * mb, 1000 * mb, 999 * mb, 1},
		{"still counted", 4 * mb, 500 * mb, 995 * mb, 1},
		{"recheck after 16 MB spent sees the other writer", 8 * mb, 500 * mb, 500 * mb, 2},
		{"counted again", 1 * mb, 500 * mb, 492 * mb, 2},
		{"a write that would cross the recheck reads", 20 * mb, 500 * mb, 500 * mb, 3},
	}
	for _, s := range steps {
		free, ok := g.Free(s.need, 32*mb)
		if !ok || free != s.wantFree || reads != s.wantReads {
			t.Fatalf("%s: free %d MB (ok %v) after %d reads, want %d MB after %d", s.name, free/mb, ok, reads, s.wantFree/mb, s.wantReads)
		}
		disk = s.diskAfter
	}
	// Near the floor every call reads.
	disk, reads = 40*mb, 0
	g = &SpaceGauge{Dir: "x", Recheck: 16 * mb, read: func(string) (int64, bool) { reads++; return disk, true }}
	for i := 0; i < 3; i++ {
		g.Free(mb, 32*mb)
	}
	if reads != 3 {
		t.Fatalf("near the floor: %d reads for 3 writes, want 3", reads)
	}
}
