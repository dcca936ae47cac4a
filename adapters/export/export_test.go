package export

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Inbox", "Inbox"},
		{"..", "_"},
		{".", "_"},
		{"../../etc", "_._.._etc"}, // one level: "/" is replaced, the leading dot made visible
		{".hidden", "_hidden"},
		{"a/b\\c", "a_b_c"},
		{"con:*?\"<>|", "con_______"},
		{"trailing. ", "trailing"},
		{"tab\there", "tab_here"},
		{"", "_"},
		{"名前", "名前"},
		{strings.Repeat("é", 100), strings.Repeat("é", 60)},
	} {
		if got := SafeName(c.in); got != c.want {
			t.Errorf("SafeName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A symlink planted inside the output cannot redirect a write outside it.
func TestExportDoesNotFollowPlantedSymlinks(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o700)
	e, err := New("eml", out)
	if err != nil {
		t.Fatal(err)
	}
	// Planted after New checked the directory was empty.
	if err := os.Symlink(outside, filepath.Join(out, "a@contoso.test")); err != nil {
		t.Fatal(err)
	}
	err = e.Add(Item{ID: "x1", Mailbox: "a@contoso.test", Folder: "Inbox", FolderID: "f", Kind: "mail", Format: "mime", Content: []byte("Subject: s\r\n\r\nhi")})
	e.Close()
	if err == nil {
		t.Fatal("the export wrote through a symlink")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("written outside --out: %v", entries)
	}
}
