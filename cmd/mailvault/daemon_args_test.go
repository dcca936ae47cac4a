package main

import (
	"os"
	"path/filepath"
	"testing"
)

// An operation's storage argument is absolute when it is a path and stays
// a name when it is one, so the daemon opens what the caller meant.
func TestNameOrPathKeepsStorageNames(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir(filepath.Join(dir, "vault"), 0o700)
	for in, want := range map[string]string{
		"nas":     "nas",
		"./store": filepath.Join(dir, "store"),
		"vault":   filepath.Join(dir, "vault"), // a directory here
		"sub/dir": filepath.Join(dir, "sub/dir"),
		"/srv/mv": "/srv/mv",
	} {
		if got := nameOrPath(in); got != want {
			t.Errorf("nameOrPath(%q) = %q, want %q", in, got, want)
		}
	}
}
