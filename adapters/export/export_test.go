package export

import (
	"fmt"
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
	e, err := New("eml", out, "k", Options{})
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

func mailItem(i int, folder string) Item {
	return Item{ID: fmt.Sprintf("v%03d", i), Mailbox: "a@contoso.test", Folder: folder, FolderID: folder, Kind: "mail", Format: "mime",
		Content: fmt.Appendf(nil, "From: A <a@contoso.test>\r\nSubject: n %d\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n\r\nbody %d\r\n", i, i)}
}

// An export stopped half-way leaves no file under a final name that is not
// whole; the same export started again continues, a different one is
// refused, and the result holds every item once.
func TestInterruptedExportContinues(t *testing.T) {
	for _, format := range []string{"eml", "mbox", "maildir"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			items := []Item{}
			for i := range 30 {
				items = append(items, mailItem(i, []string{"Inbox", "Sent", "Archive"}[i/10]))
			}
			e, err := New(format, out, "sel", Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items[:15] { // stopped in the middle of the second folder
				if err := e.Add(it); err != nil {
					t.Fatal(err)
				}
			}
			e.Abort()
			if _, err := New(format, out, "another selection", Options{}); err == nil || !strings.Contains(err.Error(), "another format or selection") {
				t.Fatalf("a different export into the same directory: %v", err)
			}
			e, err = New(format, out, "sel", Options{})
			if err != nil {
				t.Fatal(err)
			}
			written := 0
			for _, it := range items {
				if e.Exported(it) {
					continue
				}
				written++
				if err := e.Add(it); err != nil {
					t.Fatal(err)
				}
			}
			res, err := e.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"eml": 15, "maildir": 15, "mbox": 20}[format] // mbox redoes the cut folder
			if written != want || res.Resumed != 30-want {
				t.Fatalf("wrote %d, resumed %d", written, res.Resumed)
			}
			messages := 0
			filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
				if err != nil || info.IsDir() {
					return nil
				}
				if strings.HasSuffix(p, partialSuffix) {
					t.Errorf("partial file left: %s", p)
				}
				b, _ := os.ReadFile(p)
				messages += strings.Count(string(b), "Subject: n ")
				return nil
			})
			if messages != 30 {
				t.Fatalf("%d messages in the export, want each of 30 once", messages)
			}
		})
	}
}

// A zip appears under its name only when whole; an aborted one leaves
// nothing, and damaged items are named in the result.
func TestZipIsAtomicAndDamageIsNamed(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.zip")
	e, err := New("zip", out, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Add(mailItem(1, "Inbox"))
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the zip is under its name before it is finished")
	}
	e.Abort()
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Fatalf("an aborted zip left %v", entries)
	}
	e, err = New("zip", out, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Add(mailItem(1, "Inbox"))
	e.Damaged(Item{ID: "v2", Mailbox: "a@contoso.test", Folder: "Inbox", Subject: "budget"}, fmt.Errorf("chunk x: damaged"))
	res, err := e.Close()
	if err != nil || res.Messages != 1 || len(res.Damaged) != 1 || !strings.Contains(res.Damaged[0], `"budget"`) {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
