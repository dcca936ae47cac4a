//go:build !linux

package badgerdb

// FreeBytes is not known on this platform.
func FreeBytes(string) (int64, bool) { return 0, false }

// ProbeLock is not possible on this platform.
func ProbeLock(string) error { return nil }
