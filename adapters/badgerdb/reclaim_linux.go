//go:build linux

package badgerdb

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// reclaimMapped keeps a database's resident memory bounded. Badger maps its
// value-log and table files into memory; every page written or read stays
// mapped, and so counted in the process's RSS, until the kernel runs short
// of memory. Over a million-item backup that is gigabytes of clean or
// written-back page cache charged to mailvault (the event log and the
// storage index each). Every interval, and as soon as the process's
// file-backed pages pass fileLimit (checked every tenth of a second: a
// compaction reads tables of tens of megabytes within one interval), this
// asks the kernel to page the database's shared file mappings out
// (MADV_PAGEOUT): nothing is lost (dirty pages are written back first, and
// a page touched again is faulted back in), and should a range have been
// remapped in the meantime the advice is harmless.
func reclaimMapped(dir string, every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	prefix := abs + string(filepath.Separator)
	check := time.NewTicker(min(every, reclaimCheck))
	defer check.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-check.C:
			if now.Sub(last) >= every || fileResident() >= fileLimit {
				pageOutMappings(prefix)
				last = now
			}
		}
	}
}

// reclaimCheck is how often the file-backed pages are counted; fileLimit is
// how many of them (the binary's own code among them, about 20 MB) start a
// page-out before the interval is up.
const (
	reclaimCheck = 100 * time.Millisecond
	fileLimit    = 48 << 20
)

// fileResident is the process's resident file-backed and shared memory in
// bytes (statm's third field), -1 when it cannot be read.
func fileResident() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return -1
	}
	pages, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

func pageOutMappings(prefix string) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || len(fields[1]) < 4 || fields[1][3] != 's' || !strings.HasPrefix(fields[5], prefix) {
			continue
		}
		span := strings.SplitN(fields[0], "-", 2)
		start, err1 := strconv.ParseUint(span[0], 16, 64)
		end, err2 := strconv.ParseUint(span[1], 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
	}
}
