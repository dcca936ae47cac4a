package badgerdb

import (
	"os"
	"syscall"
)

// FreeBytes is the space left for unprivileged writers on dir's file system.
func FreeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// ProbeLock tells whether a process holds the database in dir, by taking
// and releasing the lock Badger takes (a flock on the directory).
func ProbeLock(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return ErrLocked
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// DiskUsage is the space the files directly in dir take on disk: the
// blocks allocated, not the sizes (Badger's memory-mapped files are sized
// in advance and mostly holes until written).
func DiskUsage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
	}
	return n
}
