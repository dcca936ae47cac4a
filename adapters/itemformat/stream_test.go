package itemformat

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-vcard"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// view is what a rendering says, read by independent parsers: header
// fields, text, attachments, events and card fields, each as text.
func view(t *testing.T, raw []byte) []string {
	t.Helper()
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read MIME: %v", err)
	}
	h := gomail.Header{Header: ent.Header}
	var out []string
	if from, err := h.AddressList("From"); err == nil {
		out = append(out, fmt.Sprintf("From: %v", from))
	}
	if d, err := h.Date(); err == nil {
		out = append(out, "Date: "+d.UTC().Format(time.RFC3339))
	}
	out = append(out, "Message-ID: "+h.Get("Message-Id"))
	mt, _, _ := ent.Header.ContentType()
	switch mt {
	case "text/calendar":
		cal, err := ical.NewDecoder(ent.Body).Decode()
		if err != nil {
			t.Fatalf("iCalendar: %v", err)
		}
		for _, c := range cal.Children {
			if c.Name != ical.CompEvent && c.Name != ical.CompToDo {
				continue
			}
			var fields []string
			names := []string{ical.PropUID, ical.PropRecurrenceID, ical.PropDateTimeStart, ical.PropDateTimeEnd, ical.PropDateTimeStamp,
				ical.PropSummary, ical.PropDescription, ical.PropLocation, ical.PropRecurrenceRule, ical.PropExceptionDates}
			if c.Name == ical.CompToDo {
				// Exchange keeps no UID for a task, nor a stamp apart from
				// its last change.
				names = []string{ical.PropDateTimeStart, ical.PropDue, ical.PropSummary, ical.PropDescription,
					ical.PropStatus, ical.PropPercentComplete, ical.PropCompleted}
			}
			for _, name := range names {
				for _, p := range c.Props.Values(name) {
					v := p.Value
					if tm, err := p.DateTime(time.UTC); err == nil && name != ical.PropRecurrenceRule {
						v = tm.UTC().Format(time.RFC3339)
					}
					fields = append(fields, name+"="+v)
				}
			}
			out = append(out, c.Name+" "+strings.Join(fields, " | "))
		}
	case "text/vcard":
		card, err := vcard.NewDecoder(ent.Body).Decode()
		if err != nil {
			t.Fatalf("vCard: %v", err)
		}
		for _, f := range []string{vcard.FieldFormattedName, vcard.FieldEmail, vcard.FieldTelephone, vcard.FieldNote} {
			out = append(out, f+": "+strings.Join(card.Values(f), ","))
		}
	default:
		if s, err := h.Subject(); err == nil {
			out = append(out, "Subject: "+s)
		}
		for _, f := range []string{"To", "Cc"} {
			if l, err := h.AddressList(f); err == nil && len(l) > 0 {
				out = append(out, fmt.Sprintf("%s: %v", f, l))
			}
		}
		ent.Walk(func(_ []int, e *message.Entity, err error) error {
			if err != nil || e.MultipartReader() != nil {
				return err
			}
			mt, params, _ := e.Header.ContentType()
			_, dp, _ := e.Header.ContentDisposition()
			b, _ := io.ReadAll(e.Body)
			out = append(out, fmt.Sprintf("part %s %q %x", mt, firstNonEmpty(dp["filename"], params["name"]), sha256.Sum256(b)))
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// TestStreamRoundTrip: for every kind the simulator generates, its MIME
// rendering -> export stream -> properties -> MIME says the same as the
// MIME rendering it started from.
func TestStreamRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind string
		pos  int
		size *simtenant.SizeRange
	}{
		{domain.KindMail, 1, nil},
		{domain.KindMail, 2, &simtenant.SizeRange{Min: 1024, Max: 1024}},
		{domain.KindMail, 3, &simtenant.SizeRange{Min: 200 << 10, Max: 200 << 10}},
		{domain.KindCalendar, 1, &simtenant.SizeRange{Min: 1500, Max: 1500}},
		{domain.KindCalendar, 3, &simtenant.SizeRange{Min: 2000, Max: 2000}}, // a series with a change and a cancellation
		{domain.KindCalendar, 13, nil},
		{domain.KindContacts, 4, &simtenant.SizeRange{Min: 1024, Max: 1024}},
		{domain.KindTasks, 1, &simtenant.SizeRange{Min: 1024, Max: 1024}},
		{domain.KindTasks, 3, nil}, // completed
		{domain.KindNotes, 2, &simtenant.SizeRange{Min: 700, Max: 700}},
	} {
		t.Run(fmt.Sprintf("%s %d", tc.kind, tc.pos), func(t *testing.T) {
			f := &simtenant.Folder{Path: "F", Kind: tc.kind, Items: 20, Size: tc.size}
			raw := simtenant.Content(7, "a@contoso.test", f, tc.pos)
			stream, err := ExportStream(raw, true)
			if err != nil {
				t.Fatal(err)
			}
			back, err := MIME(domain.FormatGraphExport, stream)
			if err != nil {
				t.Fatal(err)
			}
			want, got := view(t, raw), view(t, back)
			if !slices.Equal(want, got) {
				t.Fatalf("the stream's MIME says\n%s\nthe simulator's MIME says\n%s\n\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), back)
			}
			if again, _ := ExportStream(raw, true); !bytes.Equal(again, stream) {
				t.Fatal("the same item gave two streams")
			}
			s, r := Summarize(domain.FormatGraphExport, stream), Summarize(domain.FormatMIME, raw)
			if s.From != r.From || !s.Date.Equal(r.Date) || ((tc.kind == domain.KindMail || tc.kind == domain.KindNotes) && s.Subject != r.Subject) {
				t.Fatalf("summary of the stream %+v, of the MIME %+v", s, r)
			}
		})
	}
}

func TestStreamIsAnAppointmentWithItsSeries(t *testing.T) {
	f := &simtenant.Folder{Path: "Calendar", Kind: domain.KindCalendar, Items: 5}
	stream, err := ExportStream(simtenant.Content(7, "a@contoso.test", f, 3), false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ft.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Props.String(tagMessageClass); c != "IPM.Appointment" {
		t.Fatalf("class %q", c)
	}
	r, err := parseRecurrence(named(m.Props, psetidAppointment, lidAppointmentRecur).Value)
	if err != nil {
		t.Fatal(err)
	}
	if r.freq != "WEEKLY" || r.count != 8 || len(r.deleted) != 2 || len(r.modified) != 1 || len(r.exceptions) != 1 {
		t.Fatalf("recurrence %+v", r)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Embedded == nil || m.Attachments[0].Props.Int32(tagAttachmentFlags) != afException {
		t.Fatalf("the changed occurrence has no exception attachment: %+v", m.Attachments)
	}
	if m.Props.Int32(tagMessageFlags)&msgflagRead != 0 {
		t.Fatal("unread item marked read")
	}
}

func TestUnreadableStreamIsNamed(t *testing.T) {
	for _, content := range [][]byte{[]byte("not a stream at all"), {2, 0, 0, 0, 200, 0, 0, 0, 1}} {
		_, err := MIME(domain.FormatEWSExport, content)
		if !errors.Is(err, ErrOpaque) || !errors.Is(err, ft.ErrMalformed) {
			t.Errorf("%q: %v", content, err)
		}
	}
}

func TestGlobalObjectIDCarriesTheUID(t *testing.T) {
	for _, uid := range []string{"abc@sim.contoso.test", "040000008200E00074C5B7101A82E00800000000D0B5E5B5F0C0D901000000000000000010000000A8F0E5B4F6C84C4FAC2E6A1B2C3D4E5F"} {
		if got := uidOf(globalObjectID(uid)); got != uid {
			t.Errorf("UID %q came back as %q", uid, got)
		}
	}
}

// FuzzExportStream: whatever an export stream holds, converting it never
// panics, and what converts reads back: MIME with go-message, an
// appointment's iCalendar with go-ical.
func FuzzExportStream(f *testing.F) {
	for i, kind := range []string{domain.KindMail, domain.KindCalendar, domain.KindContacts} {
		folder := &simtenant.Folder{Path: "F", Kind: kind, Items: 5, Size: &simtenant.SizeRange{Min: 1024, Max: 2048}}
		for _, pos := range []int{1, 3} {
			s, err := ExportStream(simtenant.Content(int64(i), "a@contoso.test", folder, pos), pos == 1)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		Summarize(domain.FormatEWSExport, stream)
		raw, err := MIME(domain.FormatEWSExport, stream)
		if err != nil {
			return
		}
		if _, err := message.Read(bytes.NewReader(raw)); err != nil && !message.IsUnknownCharset(err) {
			t.Fatalf("the stream's MIME does not read back: %v\n%s", err, raw)
		}
		if comps, err := CalendarComponents(domain.FormatEWSExport, stream); err == nil && len(comps) == 0 {
			t.Fatal("a calendar without events")
		}
	})
}
