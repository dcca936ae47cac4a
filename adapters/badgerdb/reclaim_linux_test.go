//go:build linux

package badgerdb

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The reclaimer pages a database's mapped files out as soon as the
// process's file-backed pages pass the limit, without waiting for its
// interval, and stops when asked.
func TestReclaimPagesOutPastTheLimitBeforeTheInterval(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) == nil && (fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC) {
		t.Skip("a file in memory cannot be paged out (no swap)")
	}
	path := filepath.Join(dir, "000001.vlog")
	const size = fileLimit + 16<<20
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	before := fileResident()
	if before < 0 {
		t.Skip("/proc/self/statm cannot be read here")
	}
	for i := 0; i < len(m); i += os.Getpagesize() {
		m[i] = 1 // every page resident (and dirty: written back first)
	}
	if got := fileResident(); got < before+size/2 {
		t.Skipf("the mapping's pages are not counted as resident (%d then %d bytes)", before, got)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go reclaimMapped(dir, time.Hour, stop, done) // the interval never comes
	deadline := time.Now().Add(30 * time.Second)
	for fileResident() >= fileLimit && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done
	if got := fileResident(); got >= fileLimit {
		t.Fatalf("file-backed pages still %d MB after 30 s, limit %d MB", got>>20, fileLimit>>20)
	}
}
