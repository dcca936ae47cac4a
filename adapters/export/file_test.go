package export

import (
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

// File gives one item as the standard file of its kind, named by the
// version id, or says why it cannot.
func TestFile(t *testing.T) {
	cases := []struct {
		name, kind, content        string
		wantName, wantType         string
		wantStart, wantIn, wantErr string
	}{
		{"message", domain.KindMail, "Subject: hi\r\n\r\nbody\r\n", "v1.eml", "message/rfc822", "Subject: hi", "body", ""},
		{"event", domain.KindCalendar, "Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260101T100000Z\r\nSUMMARY:Plan\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
			"v1.ics", "text/calendar; charset=utf-8", "BEGIN:VCALENDAR", "SUMMARY:Plan\r\nUID:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", ""},
		{"contact", domain.KindContacts, "Content-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ann Lee\r\nEND:VCARD\r\n",
			"v1.vcf", "text/vcard; charset=utf-8", "BEGIN:VCARD", "VERSION:3.0", ""},
		{"event without iCalendar", domain.KindCalendar, "Subject: not an event\r\n\r\n", "", "", "", "", "without iCalendar data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name, ctype, b, err := File(Item{ID: "v1", Kind: c.kind, Format: domain.FormatMIME, Content: []byte(c.content)})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || name != c.wantName || ctype != c.wantType || !strings.HasPrefix(string(b), c.wantStart) || !strings.Contains(string(b), c.wantIn) {
				t.Fatalf("%q %q %v:\n%s", name, ctype, err, b)
			}
		})
	}
}
