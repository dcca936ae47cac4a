package export

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// go test -run '^$' -bench BenchmarkExport -benchtime 3x ./adapters/export
func BenchmarkExport(b *testing.B) {
	msgs := make([]Item, 2000)
	for i := range msgs {
		body := strings.Repeat("The figures for the quarter are in the attached table.\r\n", 300)
		msgs[i] = Item{ID: fmt.Sprintf("%016x", i), Mailbox: "a@contoso.test", Folder: fmt.Sprintf("Inbox/F%d", i/500), FolderID: fmt.Sprint(i / 500),
			Kind: "mail", Format: "mime", Content: []byte(fmt.Sprintf("From: A <a@contoso.test>\r\nSubject: n %d\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n\r\n%s", i, body))}
	}
	for _, format := range []string{"eml", "mbox", "maildir", "zip"} {
		b.Run(format, func(b *testing.B) {
			for range b.N {
				out := filepath.Join(b.TempDir(), "out")
				if format == "zip" {
					out += ".zip"
				}
				e, err := New(format, out, "bench", Options{})
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range msgs {
					if err := e.Add(m); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := e.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(msgs)*b.N)/b.Elapsed().Seconds(), "messages/s")
		})
	}
}
