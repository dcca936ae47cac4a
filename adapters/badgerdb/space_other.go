//go:build !linux

package badgerdb

import "os"

// FreeBytes is not known on this platform.
func FreeBytes(string) (int64, bool) { return 0, false }

// ProbeLock is not possible on this platform.
func ProbeLock(string) error { return nil }

// DiskUsage is the size of the files directly in dir.
func DiskUsage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}
