//go:build linux

package badgerdb

import (
	"bufio"
	"encoding/binary"
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
	var indexes map[string]int64
	for {
		select {
		case <-stop:
			return
		case now := <-check.C:
			if now.Sub(last) >= every || fileResident() >= fileLimit {
				indexes = pageOutMappings(prefix, indexes)
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

// pageOutMappings pages out the shared file mappings under prefix, all but
// each table's index: a table's blocks are read once by a lookup or a
// compaction, but its index and bloom filter (at the file's end) are read
// by every lookup that passes the table, and paged out they were faulted
// back in within the next tenth of a second, thousands of times a second
// once a million items were stored. indexes holds where each table's index
// starts, read once per table (tables never change); what it returns holds
// the tables still mapped.
func pageOutMappings(prefix string, indexes map[string]int64) map[string]int64 {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return indexes
	}
	defer f.Close()
	mapped := map[string]int64{}
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
		offset, err3 := strconv.ParseUint(fields[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil || end <= start {
			continue
		}
		if path := fields[5]; strings.HasSuffix(path, ".sst") && offset == 0 {
			at, known := indexes[path]
			if !known {
				at, known = tableIndexStart(path)
			}
			if known {
				mapped[path] = at // else being written: asked again next time
			}
			if at > 0 {
				// Up to the page the index starts in.
				page := uint64(os.Getpagesize())
				end = min(end, start+uint64(at)/page*page)
			}
		}
		if end > start {
			unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
		}
	}
	return mapped
}

// tableIndexStart is where a Badger table file's index begins, and false
// when the file does not end as a table does (one being written, whose
// footer is not there yet; the whole file is paged out then). A table ends
// in its index, the index's length (4 bytes), a checksum of the index (a
// few bytes), and the checksum's length (4 bytes), lengths big-endian.
func tableIndexStart(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	var b [4]byte
	pos := st.Size() - 4
	if pos < 0 {
		return 0, false
	}
	if _, err := f.ReadAt(b[:], pos); err != nil {
		return 0, false
	}
	sumLen := int64(binary.BigEndian.Uint32(b[:]))
	if sumLen == 0 || sumLen > 64 {
		return 0, false
	}
	if pos -= sumLen + 4; pos < 0 {
		return 0, false
	}
	if _, err := f.ReadAt(b[:], pos); err != nil {
		return 0, false
	}
	indexLen := int64(binary.BigEndian.Uint32(b[:]))
	if indexLen == 0 || indexLen > pos {
		return 0, false
	}
	return pos - indexLen, true
}
