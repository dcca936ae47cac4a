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

// allocated is the space a file takes on disk: its blocks, not its size
// (Badger's memory-mapped files are sized in advance and mostly holes
// until written).
func allocated(info os.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
