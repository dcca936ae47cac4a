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

// go test -run '^$' -bench BenchmarkExportContacts -benchtime 3x ./adapters/export
func BenchmarkExportContacts(b *testing.B) {
	cards := make([]Item, 2000)
	for i := range cards {
		cards[i] = Item{ID: fmt.Sprintf("%016x", i), Mailbox: "a@contoso.test", Folder: fmt.Sprintf("Contacts/F%d", i/500), FolderID: fmt.Sprint(i / 500),
			Kind: "contacts", Format: "graph-json", Content: []byte(fmt.Sprintf(`{"displayName":"Person %d","givenName":"Person","surname":"%d",`+
				`"companyName":"Contoso","emailAddresses":[{"address":"p%d@contoso.test"}],"businessPhones":["+1 555 %04d"],`+
				`"businessAddress":{"street":"1 Main St","city":"Springfield","postalCode":"12345","countryOrRegion":"US"},"personalNotes":"%s"}`,
				i, i, i, i, strings.Repeat(`note line\r\n`, 20)))}
	}
	for _, c := range []struct {
		name string
		opts Options
	}{{"3.0/folder", Options{}}, {"3.0/contact", Options{CardPerContact: true}}, {"4.0/folder", Options{CardVersion: "4.0"}}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				e, err := New("vcf", filepath.Join(b.TempDir(), "out"), "bench", c.opts)
				if err != nil {
					b.Fatal(err)
				}
				for _, it := range cards {
					if err := e.Add(it); err != nil {
						b.Fatal(err)
					}
				}
				if res, err := e.Close(); err != nil || res.Contacts != len(cards) {
					b.Fatalf("%+v %v", res, err)
				}
			}
			b.ReportMetric(float64(len(cards)*b.N)/b.Elapsed().Seconds(), "contacts/s")
		})
	}
}
