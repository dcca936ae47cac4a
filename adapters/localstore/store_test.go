package localstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

func TestPutIsIdempotentAndContained(t *testing.T) {
	root := t.TempDir()
	s, err := Open(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	hostile := []string{"..", "../../etc", "a/../../b", ".", "Inbox", "名前", "%2e%2e", "CON"}
	for _, folder := range hostile {
		k := domain.ItemKey{Mailbox: "../alice@contoso.test", FolderPath: folder, FolderID: "f-" + folder, ItemID: "i1", ChangeKey: "c1"}
		r1, err := s.Put(k, []byte("hello"))
		if err != nil {
			t.Fatalf("%q: %v", folder, err)
		}
		r2, err := s.Put(k, []byte("hello"))
		if err != nil || r1.Existed || !r2.Existed || r1.SHA256 != r2.SHA256 {
			t.Fatalf("%q: first %+v second %+v err %v", folder, r1, r2, err)
		}
		p := s.Path(k)
		rel, err := filepath.Rel(s.Root(), p)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("%q escapes the storage: %s", folder, p)
		}
		if b, _ := os.ReadFile(p); string(b) != "hello" {
			t.Fatalf("%q: content %q", folder, b)
		}
	}
	n, err := s.Count()
	if err != nil || n != len(hostile) {
		t.Fatalf("count %d, %v", n, err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("storage wrote outside its root: %v", entries)
	}
}
