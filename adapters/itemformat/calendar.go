package itemformat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-message"
	"github.com/emersion/go-vcard"

	"github.com/mailvault/mailvault/domain"
)

// CalendarComponents returns the VEVENTs or VTODOs (and VTIMEZONEs) of a
// stored calendar item or task: converted from Graph's JSON (series, recurrence,
// exceptions and cancelled occurrences kept) or taken from the text/calendar
// part of a MIME item.
func CalendarComponents(format string, content []byte) ([]*ical.Component, error) {
	if format == domain.FormatGraphJSON {
		var r Resource
		if err := json.Unmarshal(content, &r); err != nil {
			return nil, fmt.Errorf("event JSON: %w", err)
		}
		return eventFromGraph(r)
	}
	part, err := findPart(format, content, "text/calendar")
	if err != nil {
		return nil, err
	}
	var cal *ical.Calendar
	err = guarded("iCalendar", func() (err error) {
		cal, err = ical.NewDecoder(bytes.NewReader(part)).Decode()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("iCalendar part: %w", err)
	}
	var out []*ical.Component
	for _, c := range cal.Children {
		if c.Name == ical.CompEvent && c.Props.Get(ical.PropDateTimeStamp) == nil {
			// Required by RFC 5545 but missing in some servers' output.
			stamp := c.Props.Get(ical.PropLastModified)
			if stamp == nil {
				stamp = c.Props.Get(ical.PropDateTimeStart)
			}
			if stamp != nil {
				p := *stamp
				p.Name = ical.PropDateTimeStamp
				c.Props.Set(&p)
			}
		}
		if c.Name == ical.CompEvent || c.Name == ical.CompToDo || c.Name == ical.CompTimezone {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the iCalendar part holds no event or task")
	}
	return out, nil
}

// Card returns the vCard of a stored contact.
func Card(format string, content []byte) (vcard.Card, error) {
	if format == domain.FormatGraphJSON {
		var r Resource
		if err := json.Unmarshal(content, &r); err != nil {
			return nil, fmt.Errorf("contact JSON: %w", err)
		}
		return cardFromGraph(r), nil
	}
	part, err := findPart(format, content, "text/vcard", "text/x-vcard", "text/directory")
	if err != nil {
		return nil, err
	}
	var card vcard.Card
	err = guarded("vCard", func() (err error) {
		card, err = vcard.NewDecoder(bytes.NewReader(part)).Decode()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vCard part: %w", err)
	}
	unescapeText(card)
	return card, nil
}

// findPart returns the decoded body of the first MIME part of one of the
// media types, searching multipart messages depth first.
func findPart(format string, content []byte, types ...string) ([]byte, error) {
	raw, err := MIME(format, content)
	if err != nil {
		return nil, err
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("read MIME: %w", err)
	}
	var found []byte
	err = ent.Walk(func(_ []int, e *message.Entity, err error) error {
		if err != nil || found != nil {
			return nil
		}
		mt, _, _ := e.Header.ContentType()
		for _, t := range types {
			if strings.EqualFold(mt, t) {
				found, err = io.ReadAll(e.Body)
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("no %s part in the item", types[0])
	}
	return found, nil
}

const icalStamp = "20060102T150405Z"

func eventFromGraph(r Resource) ([]*ical.Component, error) {
	master, err := veventFromGraph(r)
	if err != nil {
		return nil, err
	}
	out := []*ical.Component{master}
	if r.Recurrence != nil {
		rule, err := rruleOf(*r.Recurrence)
		if err != nil {
			return nil, err
		}
		p := ical.NewProp(ical.PropRecurrenceRule)
		p.Value = rule
		master.Props.Set(p)
		start, _ := r.Start.Time()
		for _, id := range r.CancelledOccurrences {
			day := id[strings.LastIndex(id, ".")+1:]
			d, err := time.Parse("2006-01-02", day)
			if err != nil {
				continue
			}
			ex := time.Date(d.Year(), d.Month(), d.Day(), start.Hour(), start.Minute(), start.Second(), 0, start.Location())
			p := ical.NewProp(ical.PropExceptionDates)
			p.SetDateTime(ex.UTC())
			master.Props.Add(p)
		}
	}
	for _, ex := range r.Exceptions {
		if ex.ICalUID == "" {
			ex.ICalUID = r.ICalUID
		}
		c, err := veventFromGraph(ex)
		if err != nil {
			return nil, fmt.Errorf("exception: %w", err)
		}
		orig, err := time.Parse(time.RFC3339, ex.OriginalStart)
		if err != nil {
			return nil, fmt.Errorf("exception without a valid originalStart %q", ex.OriginalStart)
		}
		p := ical.NewProp(ical.PropRecurrenceID)
		p.SetDateTime(orig.UTC())
		c.Props.Set(p)
		out = append(out, c)
	}
	return out, nil
}

func veventFromGraph(r Resource) (*ical.Component, error) {
	c := ical.NewComponent(ical.CompEvent)
	uid := r.ICalUID
	if uid == "" {
		uid = r.ID
	}
	c.Props.SetText(ical.PropUID, icalText(uid))
	stamp := time.Now().UTC()
	if t, err := time.Parse(time.RFC3339, r.LastModified); err == nil {
		stamp = t.UTC()
	}
	c.Props.SetDateTime(ical.PropDateTimeStamp, stamp)
	start, err := r.Start.Time()
	if err != nil {
		return nil, fmt.Errorf("event start: %w", err)
	}
	end, err := r.End.Time()
	if err != nil {
		return nil, fmt.Errorf("event end: %w", err)
	}
	if r.IsAllDay {
		c.Props.SetDate(ical.PropDateTimeStart, start)
		c.Props.SetDate(ical.PropDateTimeEnd, end)
	} else {
		c.Props.SetDateTime(ical.PropDateTimeStart, start.UTC())
		c.Props.SetDateTime(ical.PropDateTimeEnd, end.UTC())
	}
	if r.Subject != "" {
		c.Props.SetText(ical.PropSummary, icalText(r.Subject))
	}
	if r.Body != nil && r.Body.Content != "" {
		c.Props.SetText(ical.PropDescription, icalText(r.Body.Content))
	}
	if r.Location != nil && r.Location.DisplayName != "" {
		c.Props.SetText(ical.PropLocation, icalText(r.Location.DisplayName))
	}
	if r.Organizer != nil && r.Organizer.EmailAddress.Address != "" {
		p := ical.NewProp(ical.PropOrganizer)
		p.Value = "mailto:" + icalParam(r.Organizer.EmailAddress.Address)
		if r.Organizer.EmailAddress.Name != "" {
			p.Params.Set(ical.ParamCommonName, icalParam(r.Organizer.EmailAddress.Name))
		}
		c.Props.Set(p)
	}
	for _, a := range r.Attendees {
		p := ical.NewProp(ical.PropAttendee)
		p.Value = "mailto:" + icalParam(a.EmailAddress.Address)
		if a.EmailAddress.Name != "" {
			p.Params.Set(ical.ParamCommonName, icalParam(a.EmailAddress.Name))
		}
		if a.Type == "optional" {
			p.Params.Set(ical.ParamRole, "OPT-PARTICIPANT")
		}
		c.Props.Add(p)
	}
	if r.IsCancelled {
		c.Props.SetText(ical.PropStatus, "CANCELLED")
	}
	return c, nil
}

var graphDays = map[string]string{"sunday": "SU", "monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR", "saturday": "SA"}
var graphIndex = map[string]string{"first": "1", "second": "2", "third": "3", "fourth": "4", "last": "-1"}

// rruleOf writes Graph's patternedRecurrence as an RFC 5545 RRULE.
func rruleOf(rec Recurrence) (string, error) {
	p := rec.Pattern
	var parts []string
	days := func() string {
		var d []string
		for _, day := range p.DaysOfWeek {
			if v, ok := graphDays[strings.ToLower(day)]; ok {
				d = append(d, v)
			}
		}
		return strings.Join(d, ",")
	}
	switch p.Type {
	case "daily":
		parts = append(parts, "FREQ=DAILY")
	case "weekly":
		parts = append(parts, "FREQ=WEEKLY")
		if d := days(); d != "" {
			parts = append(parts, "BYDAY="+d)
		}
		if wk, ok := graphDays[strings.ToLower(p.FirstDayOfWeek)]; ok && wk != "MO" {
			parts = append(parts, "WKST="+wk)
		}
	case "absoluteMonthly":
		parts = append(parts, "FREQ=MONTHLY", fmt.Sprintf("BYMONTHDAY=%d", p.DayOfMonth))
	case "relativeMonthly":
		parts = append(parts, "FREQ=MONTHLY", "BYDAY="+days(), "BYSETPOS="+graphIndex[strings.ToLower(p.Index)])
	case "absoluteYearly":
		parts = append(parts, "FREQ=YEARLY", fmt.Sprintf("BYMONTH=%d", p.Month), fmt.Sprintf("BYMONTHDAY=%d", p.DayOfMonth))
	case "relativeYearly":
		parts = append(parts, "FREQ=YEARLY", fmt.Sprintf("BYMONTH=%d", p.Month), "BYDAY="+days(), "BYSETPOS="+graphIndex[strings.ToLower(p.Index)])
	default:
		return "", fmt.Errorf("recurrence pattern %q", p.Type)
	}
	if p.Interval > 1 {
		parts = append(parts, fmt.Sprintf("INTERVAL=%d", p.Interval))
	}
	switch rec.Range.Type {
	case "numbered":
		parts = append(parts, fmt.Sprintf("COUNT=%d", rec.Range.NumberOfOccurrences))
	case "endDate":
		d, err := time.Parse("2006-01-02", rec.Range.EndDate)
		if err != nil {
			return "", fmt.Errorf("recurrence end date %q", rec.Range.EndDate)
		}
		// UNTIL is inclusive: the whole end day.
		parts = append(parts, "UNTIL="+d.Add(24*time.Hour-time.Second).Format(icalStamp))
	}
	return strings.Join(parts, ";"), nil
}

// MessageInfo is what export needs to file a message: its sender and date
// for an mbox "From " line.
func MessageInfo(raw []byte) (from string, date time.Time) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "MAILER-DAEMON", time.Unix(0, 0).UTC()
	}
	from = "MAILER-DAEMON"
	if a, err := mail.ParseAddress(msg.Header.Get("From")); err == nil && a.Address != "" {
		from = a.Address
	}
	date, err = msg.Header.Date()
	if err != nil {
		date = time.Unix(0, 0).UTC()
	}
	return from, date
}

// icalText makes text from Exchange fit an iCalendar TEXT value (RFC 5545
// 3.3.11): Exchange's CRLF and lone CR line breaks become the LF the
// encoder writes as "\n", and other control characters (tab aside) are
// dropped, since TEXT cannot carry them.
func icalText(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// icalParam makes text fit a parameter value (a name, an address): no
// control characters and no double quotes (RFC 5545 3.1, QSAFE-CHAR).
func icalParam(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// ErrUnparsable: a parser of a third-party library failed on the input
// in a way it does not report (it panicked): the item is left out with
// this error instead of ending the command, or the daemon.
var ErrUnparsable = errors.New("the parser failed on this input")

// guarded runs a library parser on server-supplied bytes, turning a panic
// inside it into ErrUnparsable (go-ical panics on some malformed
// parameters, found by FuzzStoredItem).
func guarded(what string, parse func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %w (%v)", what, ErrUnparsable, r)
		}
	}()
	return parse()
}
