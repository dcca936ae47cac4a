package itemformat

import (
	"strings"
	"testing"

	"github.com/emersion/go-ical"

	"github.com/mailvault/mailvault/domain"
)

func TestRRuleOf(t *testing.T) {
	for _, c := range []struct {
		name string
		rec  Recurrence
		want string
	}{
		{"weekly numbered", Recurrence{Pattern: RecurrencePattern{Type: "weekly", Interval: 1, DaysOfWeek: []string{"monday", "Wednesday"}, FirstDayOfWeek: "sunday"},
			Range: RecurrenceRange{Type: "numbered", NumberOfOccurrences: 8}}, "FREQ=WEEKLY;BYDAY=MO,WE;WKST=SU;COUNT=8"},
		{"daily every 2 until", Recurrence{Pattern: RecurrencePattern{Type: "daily", Interval: 2}, Range: RecurrenceRange{Type: "endDate", EndDate: "2026-12-31"}},
			"FREQ=DAILY;INTERVAL=2;UNTIL=20261231T235959Z"},
		{"monthly on the 15th, no end", Recurrence{Pattern: RecurrencePattern{Type: "absoluteMonthly", Interval: 1, DayOfMonth: 15}, Range: RecurrenceRange{Type: "noEnd"}},
			"FREQ=MONTHLY;BYMONTHDAY=15"},
		{"last friday", Recurrence{Pattern: RecurrencePattern{Type: "relativeMonthly", Interval: 1, DaysOfWeek: []string{"friday"}, Index: "last"}, Range: RecurrenceRange{Type: "noEnd"}},
			"FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1"},
		{"yearly", Recurrence{Pattern: RecurrencePattern{Type: "absoluteYearly", Interval: 1, Month: 3, DayOfMonth: 1}, Range: RecurrenceRange{Type: "numbered", NumberOfOccurrences: 5}},
			"FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1;COUNT=5"},
	} {
		got, err := rruleOf(c.rec)
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
	if _, err := rruleOf(Recurrence{Pattern: RecurrencePattern{Type: "hourly"}}); err == nil {
		t.Error("an unknown pattern was accepted")
	}
}

const seriesJSON = `{"id":"AAk1","subject":"Standup","iCalUId":"040000008200E00074C5B7101A82E008AA",
 "lastModifiedDateTime":"2026-01-01T00:00:00Z","type":"seriesMaster",
 "start":{"dateTime":"2026-01-05T09:00:00.0000000","timeZone":"W. Europe Standard Time"},
 "end":{"dateTime":"2026-01-05T09:15:00.0000000","timeZone":"W. Europe Standard Time"},
 "organizer":{"emailAddress":{"name":"Ann","address":"ann@contoso.test"}},
 "attendees":[{"emailAddress":{"address":"ben@contoso.test"},"type":"required"}],
 "recurrence":{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["monday"]},"range":{"type":"numbered","startDate":"2026-01-05","numberOfOccurrences":10}},
 "cancelledOccurrences":["OID.AAk1.2026-01-19"],
 "exceptionOccurrences":[{"type":"exception","subject":"Standup (moved)","originalStart":"2026-01-12T08:00:00Z",
   "start":{"dateTime":"2026-01-12T10:00:00.0000000","timeZone":"UTC"},"end":{"dateTime":"2026-01-12T10:15:00.0000000","timeZone":"UTC"}}]}`

func TestCalendarFromGraphJSON(t *testing.T) {
	comps, err := CalendarComponents(domain.FormatGraphJSON, []byte(seriesJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(comps) != 2 {
		t.Fatalf("%d components, want the series and its exception", len(comps))
	}
	master, ex := comps[0], comps[1]
	prop := func(c *ical.Component, name string) string {
		if p := c.Props.Get(name); p != nil {
			return p.Value
		}
		return ""
	}
	for name, want := range map[string]string{"UID": "040000008200E00074C5B7101A82E008AA", "DTSTART": "20260105T080000Z", "DTEND": "20260105T081500Z",
		"RRULE": "FREQ=WEEKLY;BYDAY=MO;COUNT=10", "EXDATE": "20260119T080000Z", "ORGANIZER": "mailto:ann@contoso.test", "ATTENDEE": "mailto:ben@contoso.test"} {
		if got := prop(master, name); got != want {
			t.Errorf("series %s = %q, want %q", name, got, want)
		}
	}
	if prop(ex, "UID") != prop(master, "UID") || prop(ex, "RECURRENCE-ID") != "20260112T080000Z" || prop(ex, "DTSTART") != "20260112T100000Z" {
		t.Errorf("exception: UID %q RECURRENCE-ID %q DTSTART %q", prop(ex, "UID"), prop(ex, "RECURRENCE-ID"), prop(ex, "DTSTART"))
	}
}

func TestCardFromGraphJSON(t *testing.T) {
	card, err := Card(domain.FormatGraphJSON, []byte(`{"displayName":"Zoë Müller","givenName":"Zoë","surname":"Müller","companyName":"Contoso",
	 "emailAddresses":[{"address":"zoe@contoso.test"}],"businessPhones":["+1 555 0100"],"mobilePhone":"+1 555 0199",
	 "homeAddress":{"street":"1 Main St","city":"Springfield","postalCode":"12345","countryOrRegion":"US"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if card.PreferredValue("FN") != "Zoë Müller" || card.Value("EMAIL") != "zoe@contoso.test" || len(card["TEL"]) != 2 || card.Value("ORG") != "Contoso" {
		t.Fatalf("card %v", card)
	}
	if a := card.Addresses(); len(a) != 1 || a[0].Locality != "Springfield" {
		t.Fatalf("address %v", a)
	}
}

func TestMIMEOfExportStreams(t *testing.T) {
	mime := []byte("Subject: x\r\n\r\nbody")
	for _, c := range []struct {
		format  string
		content []byte
		opaque  bool
	}{
		{domain.FormatMIME, mime, false},
		{domain.FormatGraphExport, append([]byte(SimGraphExportPrefix), mime...), false},
		{domain.FormatEWSExport, append([]byte(SimEWSExportPrefix), mime...), false},
		{domain.FormatGraphExport, []byte("\x00\x01FastTransfer"), true},
	} {
		got, err := MIME(c.format, c.content)
		if c.opaque != (err != nil) || !c.opaque && string(got) != string(mime) {
			t.Errorf("%s: %q %v", c.format, got, err)
		}
	}
	if s := Summarize(domain.FormatMIME, []byte("From: =?utf-8?q?Gr=C3=BC=C3=9Fe?= <g@x.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nDate: Mon, 02 Jun 2025 10:00:00 +0200\r\n\r\n")); s.Subject != "Café" || !strings.HasPrefix(s.From, "Grüße") || s.Date.Hour() != 8 {
		t.Errorf("summary %+v", s)
	}
}

// Exchange's bodies break lines with CRLF; names may hold quotes and
// control characters. The event still encodes, as RFC 5545 text.
func TestCalendarFromGraphJSONWithCRLF(t *testing.T) {
	ev := `{"id":"AAMkEv1","iCalUId":"uid-1","subject":"Plan\r\nreview","start":{"dateTime":"2026-01-05T08:00:00.0000000","timeZone":"UTC"},` +
		`"end":{"dateTime":"2026-01-05T09:00:00.0000000","timeZone":"UTC"},"body":{"contentType":"text","content":"Line one\r\nLine two\rLine three\u0007"},` +
		`"organizer":{"emailAddress":{"name":"Ann \"the\" Boss\r\n","address":"ann@contoso.test"}}}`
	comps, err := CalendarComponents(domain.FormatGraphJSON, []byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//test//EN")
	cal.Children = comps
	var b strings.Builder
	if err := ical.NewEncoder(&b).Encode(cal); err != nil {
		t.Fatalf("encode: %v", err)
	}
	back, err := ical.NewDecoder(strings.NewReader(b.String())).Decode()
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := back.Children[0].Props.Text(ical.PropDescription)
	sum, _ := back.Children[0].Props.Text(ical.PropSummary)
	if desc != "Line one\nLine two\nLine three" || sum != "Plan\nreview" {
		t.Fatalf("description %q, summary %q", desc, sum)
	}
}
