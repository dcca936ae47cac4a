package export

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// A folder name or item id chosen by a server becomes one harmless path
// element, and a folder path stays inside the export, whatever it holds.
func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"Inbox", "..", "../../etc", "a/b\\c", ".hidden", "trailing. ", "\x00\x1b[31m", strings.Repeat("ü", 100), "CON"} {
		f.Add("alice@contoso.test", s)
	}
	f.Fuzz(func(t *testing.T, mailbox, name string) {
		n := SafeName(name)
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\\x00") || len(n) > 120 || !utf8.ValidString(n) || strings.HasPrefix(n, ".") {
			t.Fatalf("SafeName(%q) = %q", name, n)
		}
		p := folderPath(mailbox, name)
		if c := path.Clean(p); c != p || c == ".." || strings.HasPrefix(c, "../") || path.IsAbs(c) {
			t.Fatalf("folderPath(%q, %q) = %q leaves the export", mailbox, name, p)
		}
	})
}
