package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestAbsArgsKeepsStorageNames(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir(filepath.Join(dir, "vault"), 0o700)
	abs := func(p string) string { return filepath.Join(dir, p) }
	for _, c := range []struct{ in, want []string }{
		{[]string{"restore", "--storage", "nas", "--to", "online"}, []string{"restore", "--storage", "nas", "--to", "online"}},
		{[]string{"backup", "--storage", "./store"}, []string{"backup", "--storage", abs("store")}},
		{[]string{"backup", "--storage=vault"}, []string{"backup", "--storage=" + abs("vault")}},
		{[]string{"ls", "nas", "a@x/Inbox"}, []string{"ls", "nas", "a@x/Inbox"}},
		{[]string{"verify", "vault", "--read-data"}, []string{"verify", abs("vault"), "--read-data"}},
		{[]string{"storage", "stats", "sub/dir"}, []string{"storage", "stats", abs("sub/dir")}},
		{[]string{"export", "--storage", "nas", "--out", "x"}, []string{"export", "--storage", "nas", "--out", abs("x")}},
		{[]string{"job", "create", "-f", "job.yaml"}, []string{"job", "create", "-f", abs("job.yaml")}},
	} {
		if got := absArgs(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("absArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
