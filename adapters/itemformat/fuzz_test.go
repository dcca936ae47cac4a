package itemformat

import (
	"bytes"
	"testing"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/mailvault/mailvault/domain"
)

var fuzzFormats = []string{domain.FormatMIME, domain.FormatGraphJSON, domain.FormatEWSExport, domain.FormatGraphExport}

// A stored item is whatever a server sent. Reading it for export and for
// ls/find never panics; an event converted from Graph's JSON always
// encodes as iCalendar; a contact always encodes as a vCard (3.0 and 4.0)
// that reads back, with FN, and lines folded at 75 octets.
func FuzzStoredItem(f *testing.F) {
	f.Add(uint8(0), []byte("From: =?utf-8?q?Gr=C3=BC=C3=9Fe?= <g@x.test>\r\nSubject: hi\r\nDate: Mon, 02 Jun 2025 10:00:00 +0200\r\n\r\nbody"))
	f.Add(uint8(0), []byte("Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260101T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	f.Add(uint8(0), []byte("Content-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ann Lee\r\nTEL;VALUE=uri:tel:+1\r\nEND:VCARD\r\n"))
	f.Add(uint8(1), []byte(`{"id":"e","subject":"Plan\r\nreview","start":{"dateTime":"2026-01-05T08:00:00.0000000","timeZone":"W. Europe Standard Time"},`+
		`"end":{"dateTime":"2026-01-05T09:00:00.0000000","timeZone":"UTC"},"body":{"contentType":"text","content":"a\r\nb"},`+
		`"recurrence":{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["monday"]},"range":{"type":"numbered","numberOfOccurrences":3}},`+
		`"organizer":{"emailAddress":{"name":"Ann \"the\" Boss","address":"ann@contoso.test"}}}`))
	f.Add(uint8(1), []byte(`{"displayName":"Ann Lee","givenName":"Ann","surname":"Lee","emailAddresses":[{"address":"a@x.test"}],"businessPhones":["1"],"personalNotes":"x\r\ny;z"}`))
	f.Add(uint8(2), []byte(SimEWSExportPrefix+"Subject: s\r\n\r\nb"))
	f.Add(uint8(3), []byte("\x00\x01FastTransfer"))
	f.Fuzz(func(t *testing.T, which uint8, content []byte) {
		format := fuzzFormats[int(which)%len(fuzzFormats)]
		if raw, err := MIME(format, content); err == nil {
			MessageInfo(raw)
		}
		Summarize(format, content)
		if comps, err := CalendarComponents(format, content); err == nil && format == domain.FormatGraphJSON {
			cal := ical.NewCalendar()
			cal.Props.SetText(ical.PropVersion, "2.0")
			cal.Props.SetText(ical.PropProductID, "-//fuzz//EN")
			cal.Children = comps
			var b bytes.Buffer
			if err := ical.NewEncoder(&b).Encode(cal); err != nil {
				t.Fatalf("an event from Graph JSON does not encode: %v", err)
			}
			if _, err := ical.NewDecoder(&b).Decode(); err != nil {
				t.Fatalf("an event from Graph JSON does not read back: %v", err)
			}
		}
		card, err := Card(format, content)
		if err != nil {
			return
		}
		for _, v := range CardVersions {
			b := encodeFolded(t, card, v)
			back, err := vcard.NewDecoder(bytes.NewReader(b)).Decode()
			if err != nil || back.Value(vcard.FieldVersion) != v || back.Value(vcard.FieldFormattedName) == "" {
				t.Fatalf("the %s card does not read back with FN: %v\n%s", v, err, b)
			}
		}
	})
}
