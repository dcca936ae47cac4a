//go:build linux

package badgerdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"
)

// The reclaimer pages a database's mapped files out as soon as the
// process's file-backed pages pass the limit, without waiting for its
// interval, and stops when asked.
func TestReclaimPagesOutPastTheLimitBeforeTheInterval(t *testing.T) {
	dir := t.TempDir()
	skipInMemory(t, dir)
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

// A page-out leaves each table's index and bloom filter resident (every
// lookup reads them) and pages its blocks out; where the index starts is
// read from the table's footer, and is where its last block ends.
func TestPageOutKeepsTableIndexes(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithCompression(options.None))
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	for i := range 50_000 {
		if err := wb.Set([]byte(fmt.Sprintf("key-%08d", i)), bytes.Repeat([]byte{byte(i)}, 40)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // the memtable becomes a table
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table written")
	}
	path := tables[0]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start, ok := tableIndexStart(path)
	if !ok || start <= 0 || start >= int64(len(data)) {
		t.Fatalf("index start %d (%v) in a table of %d bytes", start, ok, len(data))
	}
	indexLen := int64(len(data)) - start - 4 - 4 - int64(binary.BigEndian.Uint32(data[len(data)-4:]))
	idx := fb.GetRootAsTableIndex(data[start:start+indexLen], 0)
	var last fb.BlockOffset
	if idx.OffsetsLength() == 0 || !idx.Offsets(&last, idx.OffsetsLength()-1) || int64(last.Offset())+int64(last.Len()) != start {
		t.Fatalf("the index at %d does not follow the last block (%d blocks, last at %d+%d)", start, idx.OffsetsLength(), last.Offset(), last.Len())
	}
	// Not a table, or one being written (its footer still zeros): no
	// index start, asked again at the next page-out.
	unwritten := filepath.Join(dir, "999999.sst")
	if err := os.WriteFile(unwritten, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "MANIFEST"), filepath.Join(dir, "missing.sst"), unwritten} {
		if at, ok := tableIndexStart(p); ok {
			t.Fatalf("%s has an index start, %d", filepath.Base(p), at)
		}
	}
	os.Remove(unwritten)

	skipInMemory(t, dir)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	for i := 0; i < len(m); i += os.Getpagesize() {
		touched += m[i] // every page resident
	}
	if r := residentPages(t, m); bytes.Count(r, []byte{1}) != len(r) {
		t.Skipf("%d of %d pages resident after reading them all", bytes.Count(r, []byte{1}), len(r))
	}
	abs, _ := filepath.Abs(dir)
	indexes := pageOutMappings(abs+string(filepath.Separator), nil)
	if indexes[path] != start {
		t.Fatalf("the page-out kept %v, want %s at %d", indexes, path, start)
	}
	page := int64(os.Getpagesize())
	vec := residentPages(t, m)
	blocksResident, blockPages := 0, int(start/page)
	for i := range blockPages {
		blocksResident += int(vec[i] & 1)
	}
	for i := start / page; i < int64(len(vec)); i++ {
		if vec[i]&1 == 0 {
			t.Fatalf("page %d of the index (from page %d of %d) was paged out", i, start/page, len(vec))
		}
	}
	if blocksResident > blockPages/2 {
		t.Skipf("the kernel kept %d of %d block pages resident (no MADV_PAGEOUT here?)", blocksResident, blockPages)
	}
}

// skipInMemory skips a test whose files under dir live in memory (tmpfs,
// ramfs): without swap they cannot be paged out.
func skipInMemory(t *testing.T, dir string) {
	t.Helper()
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) == nil && (fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC) {
		t.Skip("a file in memory cannot be paged out (no swap)")
	}
}

// touched keeps the reads that make pages resident from being optimised out.
var touched byte

// residentPages says for each page of m whether it is in this process's
// page table (bit 63 of its entry in /proc/self/pagemap): 1 or 0.
func residentPages(t *testing.T, m []byte) []byte {
	t.Helper()
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skip(err)
	}
	defer pm.Close()
	page := int64(os.Getpagesize())
	vec := make([]byte, (int64(len(m))+page-1)/page)
	entries := make([]byte, 8*len(vec))
	if _, err := pm.ReadAt(entries, int64(uintptr(unsafe.Pointer(&m[0])))/page*8); err != nil {
		t.Skip("pagemap:", err)
	}
	for i := range vec {
		vec[i] = byte(binary.LittleEndian.Uint64(entries[8*i:]) >> 63)
	}
	return vec
}
