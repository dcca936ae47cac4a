// Package atomicfile replaces a small file whole: a reader sees the old
// content or the new, never a part, and a crash leaves at worst a stray
// temporary file beside it.
package atomicfile

import "os"

// Write replaces path with b (mode 0600) through a synced temporary file
// renamed over it; the temporary file is removed when writing it fails.
func Write(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
