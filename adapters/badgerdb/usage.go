package badgerdb

import "os"

// DiskUsage is the space the files directly in dir take on disk, as this
// platform can tell it (see allocated).
func DiskUsage(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += allocated(info)
		}
	}
	return n
}
