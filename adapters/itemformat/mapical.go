package itemformat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"net/mail"

	"github.com/emersion/go-ical"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// Property sets and the named properties of appointments ([MS-OXOCAL],
// [MS-OXCICAL]).
var (
	psetidAppointment = ft.MustGUID("00062002-0000-0000-C000-000000000046")
	psetidMeeting     = ft.MustGUID("6ED8DA90-450B-101B-98DA-00AA003F1305")
	psetidAddress     = ft.MustGUID("00062004-0000-0000-C000-000000000046")
)

const (
	lidBusyStatus           = 0x8205
	lidLocation             = 0x8208
	lidStartWhole           = 0x820D
	lidEndWhole             = 0x820E
	lidDuration             = 0x8213
	lidSubType              = 0x8215 // all day
	lidAppointmentRecur     = 0x8216
	lidStateFlags           = 0x8217 // 0x1: a meeting
	lidRecurring            = 0x8223
	lidExceptionReplaceTime = 0x8228
	lidTimeZoneStruct       = 0x8233
	lidTimeZoneDescription  = 0x8234
	// PidLidAppointmentTimeZoneDefinitionRecur: the zone's rules by year.
	lidTimeZoneDefinitionRecur = 0x8260
	lidGlobalObjectID          = 0x0003 // in PSETID_Meeting
	lidOwnerCriticalChange     = 0x001A
	lidCleanGlobalObjectID     = 0x0023
	asfMeeting                 = 0x1
	// The class of an exception's embedded message.
	exceptionClass = "IPM.OLE.CLASS.{00061055-0000-0000-C000-000000000046}"
)

var (
	tagStartDate             = ft.NewTag(0x0060, ft.TypeTime)
	tagEndDate               = ft.NewTag(0x0061, ft.TypeTime)
	tagExceptionReplaceTime  = ft.NewTag(0x7FF9, ft.TypeTime)
	tagExceptionStartTime    = ft.NewTag(0x7FFA, ft.TypeTime)
	tagExceptionEndTime      = ft.NewTag(0x7FFB, ft.TypeTime)
	tagRecipientTrackStatus  = ft.NewTag(0x5FFF, ft.TypeInteger32)
	globalObjectIDArrayID, _ = hex.DecodeString("040000008200E00074C5B7101A82E008")
	vcalUIDMarker            = []byte("vCal-Uid\x01\x00\x00\x00")
)

// named is the named property set/lid of ps; absent, a Prop without a
// value, whose readers give the zero value.
func named(ps ft.Props, set ft.GUID, lid uint32) ft.Prop {
	p, _ := ps.GetNamed(set, lid)
	return p
}

// uidOf reads an iCalendar UID from a PidLidGlobalObjectId: the UID it was
// made from ([MS-OXCICAL] 2.1.3.1.1.20.26), or the id in hex.
func uidOf(goid []byte) string {
	if len(goid) >= 40 {
		data := goid[40:]
		if bytes.HasPrefix(data, vcalUIDMarker) {
			return string(bytes.TrimRight(data[len(vcalUIDMarker):], "\x00"))
		}
	}
	return strings.ToUpper(hex.EncodeToString(goid))
}

// globalObjectID makes the PidLidGlobalObjectId of an iCalendar UID: a UID
// that is such an id in hex is that id; any other is carried in it.
func globalObjectID(uid string) []byte {
	if b, err := hex.DecodeString(uid); err == nil && len(b) >= 40 && bytes.HasPrefix(b, globalObjectIDArrayID) {
		return b
	}
	data := append(append([]byte(nil), vcalUIDMarker...), uid...)
	data = append(data, 0)
	out := make([]byte, 40, 40+len(data))
	copy(out, globalObjectIDArrayID)
	binary.LittleEndian.PutUint32(out[36:], uint32(len(data)))
	return append(out, data...)
}

// appointmentICS writes an appointment's iCalendar ([MS-OXCICAL]): the
// series or single event, its exceptions as overriding VEVENTs, deleted
// occurrences as EXDATE; attendees as data, never as an invitation (METHOD
// PUBLISH, no RSVP).
func appointmentICS(m *ft.Message) ([]byte, error) {
	comps, err := appointmentComponents(m)
	if err != nil {
		return nil, err
	}
	return publish("-//mailvault//FastTransfer//EN", comps)
}

// publish writes components as an iCalendar object published as data
// (METHOD:PUBLISH), not sent as an invitation.
func publish(product string, comps []*ical.Component) ([]byte, error) {
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, product)
	cal.Props.SetText(ical.PropMethod, "PUBLISH")
	cal.Children = comps
	var b bytes.Buffer
	if err := guarded("iCalendar", func() error { return ical.NewEncoder(&b).Encode(cal) }); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func appointmentComponents(m *ft.Message) ([]*ical.Component, error) {
	ps := m.Props
	start, end := named(ps, psetidAppointment, lidStartWhole).Time(), named(ps, psetidAppointment, lidEndWhole).Time()
	if start.IsZero() {
		start, end = ps.Time(tagStartDate), ps.Time(tagEndDate)
	}
	if start.IsZero() {
		return nil, fmt.Errorf("the appointment has no start")
	}
	if end.Before(start) {
		end = start
	}
	// The UID: from the global object id, else the search key, else made
	// from what the appointment says (the same for the same appointment).
	var uid string
	if goid := named(ps, psetidMeeting, lidGlobalObjectID).Value; len(goid) > 0 {
		uid = uidOf(goid)
	} else if key := ps.Bytes(tagSearchKey); len(key) > 0 {
		uid = fmt.Sprintf("%X", key)
	} else {
		sum := sha256.Sum256([]byte(ps.String(tagSubject) + "\x00" + start.UTC().Format(time.RFC3339)))
		uid = fmt.Sprintf("%X@mailvault", sum[:16])
	}
	stamp := named(ps, psetidMeeting, lidOwnerCriticalChange).Time()
	if stamp.IsZero() {
		stamp = firstTime(ps.Time(tagLastModified), start)
	}
	allDay := named(ps, psetidAppointment, lidSubType).Int32() != 0
	master := ical.NewComponent(ical.CompEvent)
	master.Props.SetText(ical.PropUID, uid)
	master.Props.SetDateTime(ical.PropDateTimeStamp, stamp.UTC())
	setWhen := func(c *ical.Component, start, end time.Time) {
		if allDay {
			c.Props.SetDate(ical.PropDateTimeStart, start)
			c.Props.SetDate(ical.PropDateTimeEnd, end)
			return
		}
		c.Props.SetDateTime(ical.PropDateTimeStart, start.UTC())
		c.Props.SetDateTime(ical.PropDateTimeEnd, end.UTC())
	}
	setWhen(master, start, end)
	if s := ps.String(tagSubject); s != "" {
		master.Props.SetText(ical.PropSummary, s)
	}
	if s := named(ps, psetidAppointment, lidLocation).Text(); s != "" {
		master.Props.SetText(ical.PropLocation, s)
	}
	if s := ps.String(tagBody); s != "" {
		master.Props.SetText(ical.PropDescription, s)
	}
	if named(ps, psetidAppointment, lidStateFlags).Int32()&asfMeeting != 0 {
		if from := sender(ps); from != "" {
			if a, err := mail.ParseAddress(from); err == nil {
				p := ical.NewProp(ical.PropOrganizer)
				p.Value = "mailto:" + a.Address
				if a.Name != "" {
					p.Params.Set(ical.ParamCommonName, icalParam(a.Name))
				}
				master.Props.Set(p)
			}
		}
		for _, r := range m.Recipients {
			addr := recipientAddress(r)
			if addr == "" {
				continue
			}
			p := ical.NewProp(ical.PropAttendee)
			p.Value = "mailto:" + addr
			if n := r.String(tagDisplayName); n != "" && n != addr {
				p.Params.Set(ical.ParamCommonName, icalParam(n))
			}
			switch r.Int32(tagRecipientType) & 0xF {
			case recipCc:
				p.Params.Set(ical.ParamRole, "OPT-PARTICIPANT")
			case recipBcc:
				p.Params.Set(ical.ParamRole, "NON-PARTICIPANT")
				p.Params.Set(ical.ParamCalendarUserType, "RESOURCE")
			default:
				p.Params.Set(ical.ParamRole, "REQ-PARTICIPANT")
			}
			master.Props.Add(p)
		}
	}
	out := []*ical.Component{master}
	blob := named(ps, psetidAppointment, lidAppointmentRecur).Value
	if blob == nil {
		return out, nil
	}
	r, err := parseRecurrence(blob)
	if err != nil {
		return nil, err
	}
	// The blob's times are local to the appointment's zone. A zone with
	// daylight saving time is written as a VTIMEZONE and the series in its
	// local time, so that every occurrence keeps its hour across the
	// changes; otherwise the offset is read from the first occurrence and
	// the series written in UTC.
	z, _ := parseZone(named(ps, psetidAppointment, lidTimeZoneStruct).Value, named(ps, psetidAppointment, lidTimeZoneDescription).Text())
	z = z.withHistory(named(ps, psetidAppointment, lidTimeZoneDefinitionRecur).Value)
	zoned := z.daylight() && !allDay
	offset := r.start.Add(time.Duration(r.startMin) * time.Minute).Sub(start)
	utc := func(local time.Time) time.Time {
		if zoned {
			return z.utc(local)
		}
		return local.Add(-offset)
	}
	setTime := func(c *ical.Component, name string, local time.Time) {
		switch {
		case allDay:
			p := ical.NewProp(name)
			p.SetDate(local)
			c.Props.Add(p)
		case zoned:
			z.setLocal(c, name, local)
		default:
			p := ical.NewProp(name)
			p.SetDateTime(utc(local))
			c.Props.Add(p)
		}
	}
	first := start.Add(offset)
	if zoned {
		first = z.local(start)
		master.Props.Del(ical.PropDateTimeStart)
		master.Props.Del(ical.PropDateTimeEnd)
		setTime(master, ical.PropDateTimeStart, first)
		setTime(master, ical.PropDateTimeEnd, z.local(end))
		out = append([]*ical.Component{z.vtimezone()}, out...)
	}
	var until time.Time
	if !r.until.IsZero() {
		until = utc(r.until.Add(time.Duration(r.startMin) * time.Minute))
	}
	rule := ical.NewProp(ical.PropRecurrenceRule)
	rule.Value = r.rrule(first, until)
	master.Props.Set(rule)
	changed := map[time.Time]bool{}
	for _, ex := range r.exceptions {
		changed[midnight(ex.original)] = true
	}
	for _, d := range r.deleted {
		if !changed[d] {
			setTime(master, ical.PropExceptionDates, d.Add(time.Duration(r.startMin)*time.Minute))
		}
	}
	for _, ex := range r.exceptions {
		c := ical.NewComponent(ical.CompEvent)
		c.Props.SetText(ical.PropUID, uid)
		c.Props.SetDateTime(ical.PropDateTimeStamp, stamp.UTC())
		orig := ex.original
		if allDay {
			orig = midnight(orig)
		}
		setTime(c, ical.PropRecurrenceID, orig)
		setTime(c, ical.PropDateTimeStart, ex.start)
		setTime(c, ical.PropDateTimeEnd, ex.end)
		subject := ps.String(tagSubject)
		if ex.subject != nil {
			subject = *ex.subject
		}
		if subject != "" {
			c.Props.SetText(ical.PropSummary, subject)
		}
		if ex.location != nil && *ex.location != "" {
			c.Props.SetText(ical.PropLocation, *ex.location)
		}
		out = append(out, c)
	}
	return out, nil
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// appointmentProps converts an iCalendar (its first event, the series, and
// the events overriding its occurrences) into an appointment's properties
// and exception attachments.
func appointmentProps(cal *ical.Calendar, m *ft.Message) error {
	var master *ical.Component
	var overrides []*ical.Component
	for _, c := range cal.Children {
		if c.Name != ical.CompEvent {
			continue
		}
		if c.Props.Get(ical.PropRecurrenceID) != nil {
			overrides = append(overrides, c)
		} else if master == nil {
			master = c
		}
	}
	if master == nil {
		return fmt.Errorf("the iCalendar holds no event")
	}
	text := func(c *ical.Component, name string) (string, bool) {
		p := c.Props.Get(name)
		if p == nil {
			return "", false
		}
		s, err := p.Text()
		return s, err == nil
	}
	start, err := master.Props.DateTime(ical.PropDateTimeStart, time.UTC)
	if err != nil {
		return fmt.Errorf("event start: %w", err)
	}
	end, err := master.Props.DateTime(ical.PropDateTimeEnd, time.UTC)
	if err != nil {
		end = start
	}
	start, end = start.UTC(), end.UTC()
	allDay := master.Props.Get(ical.PropDateTimeStart).ValueType() == ical.ValueDate
	uid, _ := text(master, ical.PropUID)
	add := func(p ft.Prop) { m.Props = append(m.Props, p) }
	add(ft.String16(tagMessageClass, "IPM.Appointment"))
	if s, ok := text(master, ical.PropSummary); ok {
		add(ft.String16(tagSubject, s))
	}
	if s, ok := text(master, ical.PropDescription); ok {
		add(ft.String16(tagBody, s))
	}
	add(ft.TimeProp(tagStartDate, start))
	add(ft.TimeProp(tagEndDate, end))
	add(ft.WithName(ft.TimeProp(0, start), psetidAppointment, lidStartWhole))
	add(ft.WithName(ft.TimeProp(0, end), psetidAppointment, lidEndWhole))
	add(ft.WithName(ft.Int32Prop(0, int32(end.Sub(start)/time.Minute)), psetidAppointment, lidDuration))
	add(ft.WithName(ft.Int32Prop(0, 2), psetidAppointment, lidBusyStatus))
	add(ft.WithName(ft.BoolProp(0, allDay), psetidAppointment, lidSubType))
	if s, ok := text(master, ical.PropLocation); ok {
		add(ft.WithName(ft.String16(0, s), psetidAppointment, lidLocation))
	}
	goid := globalObjectID(uid)
	add(ft.WithName(ft.BinaryProp(0, goid), psetidMeeting, lidGlobalObjectID))
	add(ft.WithName(ft.BinaryProp(0, goid), psetidMeeting, lidCleanGlobalObjectID))
	if stamp, err := master.Props.DateTime(ical.PropDateTimeStamp, time.UTC); err == nil {
		add(ft.WithName(ft.TimeProp(0, stamp), psetidMeeting, lidOwnerCriticalChange))
	}
	// The simulator's events are in UTC: a zone of no offset.
	add(ft.WithName(ft.String16(0, "UTC"), psetidAppointment, lidTimeZoneDescription))
	add(ft.WithName(ft.BinaryProp(0, make([]byte, 48)), psetidAppointment, lidTimeZoneStruct))
	var state int32
	if org := master.Props.Get(ical.PropOrganizer); org != nil {
		state |= asfMeeting
		name := org.Params.Get(ical.ParamCommonName)
		addr := strings.TrimPrefix(strings.TrimPrefix(org.Value, "mailto:"), "MAILTO:")
		add(ft.String16(tagSentRepName, firstNonEmpty(name, addr)))
		add(ft.String16(tagSentRepAddrType, "SMTP"))
		add(ft.String16(tagSentRepEmail, addr))
		add(ft.String16(tagSentRepSMTP, addr))
	}
	for i, a := range master.Props.Values(ical.PropAttendee) {
		addr := strings.TrimPrefix(strings.TrimPrefix(a.Value, "mailto:"), "MAILTO:")
		typ := int32(recipTo)
		switch strings.ToUpper(a.Params.Get(ical.ParamRole)) {
		case "OPT-PARTICIPANT":
			typ = recipCc
		case "NON-PARTICIPANT":
			typ = recipBcc
		}
		m.Recipients = append(m.Recipients, recipientProps(i, typ, a.Params.Get(ical.ParamCommonName), addr))
	}
	add(ft.WithName(ft.Int32Prop(0, state), psetidAppointment, lidStateFlags))
	rule := master.Props.Get(ical.PropRecurrenceRule)
	add(ft.WithName(ft.BoolProp(0, rule != nil), psetidAppointment, lidRecurring))
	if rule == nil {
		return nil
	}
	r, err := ruleFromRRULE(rule.Value, start)
	if err != nil {
		return err
	}
	r.startMin = start.Hour()*60 + start.Minute()
	for _, ex := range master.Props.Values(ical.PropExceptionDates) {
		for _, v := range strings.Split(ex.Value, ",") {
			p := ical.Prop{Name: ex.Name, Params: ex.Params, Value: v}
			if t, err := p.DateTime(time.UTC); err == nil {
				r.deleted = append(r.deleted, midnight(t.UTC()))
			}
		}
	}
	for _, o := range overrides {
		orig, err := o.Props.DateTime(ical.PropRecurrenceID, time.UTC)
		if err != nil {
			return fmt.Errorf("an exception's RECURRENCE-ID: %w", err)
		}
		os, err := o.Props.DateTime(ical.PropDateTimeStart, time.UTC)
		if err != nil {
			return fmt.Errorf("an exception's start: %w", err)
		}
		oe, err := o.Props.DateTime(ical.PropDateTimeEnd, time.UTC)
		if err != nil {
			oe = os.Add(end.Sub(start))
		}
		ex := exception{start: os.UTC(), end: oe.UTC(), original: orig.UTC()}
		subject, _ := text(o, ical.PropSummary)
		if s, _ := text(master, ical.PropSummary); subject != s {
			ex.subject = &subject
		}
		if loc, ok := text(o, ical.PropLocation); ok {
			ex.location = &loc
		}
		r.exceptions = append(r.exceptions, ex)
		r.deleted = append(r.deleted, midnight(ex.original))
		r.modified = append(r.modified, midnight(ex.start))
		m.Attachments = append(m.Attachments, exceptionAttachment(ex, subject))
	}
	blob, err := r.blob(start, end.Sub(start))
	if err != nil {
		return err
	}
	add(ft.WithName(ft.BinaryProp(0, blob), psetidAppointment, lidAppointmentRecur))
	return nil
}

// exceptionAttachment is the hidden attachment [MS-OXOCAL] 2.2.10.1 keeps
// a changed occurrence in.
func exceptionAttachment(ex exception, subject string) ft.Attachment {
	inner := &ft.Message{Props: ft.Props{
		ft.String16(tagMessageClass, exceptionClass),
		ft.String16(tagSubject, subject),
		ft.WithName(ft.TimeProp(0, ex.start), psetidAppointment, lidStartWhole),
		ft.WithName(ft.TimeProp(0, ex.end), psetidAppointment, lidEndWhole),
		ft.WithName(ft.TimeProp(0, ex.original), psetidAppointment, lidExceptionReplaceTime),
	}}
	return ft.Attachment{Props: ft.Props{
		ft.Int32Prop(tagAttachMethod, attachEmbedded),
		ft.BoolProp(tagAttachmentHidden, true),
		ft.Int32Prop(tagAttachmentFlags, afException),
		ft.TimeProp(tagExceptionReplaceTime, ex.original),
		ft.TimeProp(tagExceptionStartTime, ex.start),
		ft.TimeProp(tagExceptionEndTime, ex.end),
		ft.Int32Prop(tagRenderingPosition, -1),
	}, Embedded: inner}
}

// recipientProps are a recipient's row.
func recipientProps(row int, typ int32, name, addr string) ft.Props {
	return ft.Props{
		ft.Int32Prop(tagRowID, int32(row)),
		ft.Int32Prop(tagRecipientType, typ),
		ft.String16(tagDisplayName, firstNonEmpty(name, addr)),
		ft.String16(tagAddressType, "SMTP"),
		ft.String16(tagEmailAddress, addr),
		ft.String16(tagSMTPAddress, addr),
		ft.Int32Prop(tagObjectType, 6), // a mail user
		ft.Int32Prop(tagDisplayType, 0),
		ft.Int32Prop(tagRecipientTrackStatus, 0),
	}
}
