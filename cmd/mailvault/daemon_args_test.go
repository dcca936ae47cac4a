package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvault/adapters/vault"
)

// An operation's storage argument is absolute when it is a path and stays
// a name when it is one, so the daemon opens what the caller meant.
func TestNameOrPathKeepsStorageNames(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if _, _, err := vault.Create(filepath.Join(dir, "vault"), vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "plain"), 0o700)
	for in, want := range map[string]string{
		"nas":     "nas",
		"./store": filepath.Join(dir, "store"),
		"vault":   filepath.Join(dir, "vault"), // a storage here
		"plain":   "plain",                     // a directory, but no storage: a name
		"sub/dir": filepath.Join(dir, "sub/dir"),
		"/srv/mv": "/srv/mv",
	} {
		if got := nameOrPath(in); got != want {
			t.Errorf("nameOrPath(%q) = %q, want %q", in, got, want)
		}
	}
}
