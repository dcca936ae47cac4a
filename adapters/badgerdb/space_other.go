//go:build !linux

package badgerdb

import "os"

// FreeBytes is not known on this platform.
func FreeBytes(string) (int64, bool) { return 0, false }

// ProbeLock is not possible on this platform.
func ProbeLock(string) error { return nil }

// allocated is a file's size: its blocks are not known here.
func allocated(info os.FileInfo) int64 { return info.Size() }
