package itemformat

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// tzStruct writes a PidLidTimeZoneStruct: biases, then the standard and
// daylight changes as SYSTEMTIMEs (month, day of the week, week, hour).
func tzStruct(bias, dstBias int32, std, dst [4]uint16) []byte {
	b := make([]byte, 48)
	binary.LittleEndian.PutUint32(b[0:], uint32(bias))
	binary.LittleEndian.PutUint32(b[8:], uint32(dstBias))
	for i, at := range []int{14, 32} {
		c := [][4]uint16{std, dst}[i]
		for j, v := range c {
			binary.LittleEndian.PutUint16(b[at+2+2*j:], v)
		}
	}
	return b
}

var (
	westEurope  = tzStruct(-60, -60, [4]uint16{10, 0, 5, 3}, [4]uint16{3, 0, 5, 2})  // last Sunday of October / March
	eastAustral = tzStruct(-600, -60, [4]uint16{4, 0, 1, 3}, [4]uint16{10, 0, 1, 2}) // first Sunday of April / October
)

func TestZoneConvertsLocalTimes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tz         []byte
		local, utc time.Time
	}{
		{"winter in Europe", westEurope, time.Date(2026, 3, 19, 9, 0, 0, 0, time.UTC), time.Date(2026, 3, 19, 8, 0, 0, 0, time.UTC)},
		{"summer in Europe", westEurope, time.Date(2026, 4, 9, 9, 0, 0, 0, time.UTC), time.Date(2026, 4, 9, 7, 0, 0, 0, time.UTC)},
		{"the last hour of summer time", westEurope, time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)},
		{"summer in Australia (January)", eastAustral, time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)},
		{"winter in Australia (July)", eastAustral, time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 2, 0, 0, 0, time.UTC)},
	} {
		z, ok := parseZone(tc.tz, "Z")
		if !ok || !z.daylight() {
			t.Fatalf("%s: zone not read", tc.name)
		}
		if got := z.utc(tc.local); !got.Equal(tc.utc) {
			t.Errorf("%s: %v local is %v UTC, want %v", tc.name, tc.local, got, tc.utc)
		}
		if got := z.local(tc.utc); !got.Equal(tc.local) {
			t.Errorf("%s: %v UTC is %v local, want %v", tc.name, tc.utc, got, tc.local)
		}
	}
}

// A weekly series across the start of summer time keeps its hour: written
// with its VTIMEZONE and in local time, its cancelled and moved
// occurrences too.
func TestSeriesAcrossDaylightSavingKeepsItsHour(t *testing.T) {
	const tzid = "W. Europe Standard Time"
	z, _ := parseZone(westEurope, tzid)
	first := time.Date(2026, 3, 19, 9, 0, 0, 0, time.UTC) // local
	r, err := ruleFromRRULE("FREQ=WEEKLY;COUNT=4", first)
	if err != nil {
		t.Fatal(err)
	}
	moved := exception{start: time.Date(2026, 4, 2, 10, 0, 0, 0, time.UTC), end: time.Date(2026, 4, 2, 11, 0, 0, 0, time.UTC),
		original: time.Date(2026, 4, 2, 9, 0, 0, 0, time.UTC)}
	subject := "moved"
	moved.subject = &subject
	r.exceptions = []exception{moved}
	r.deleted = []time.Time{time.Date(2026, 3, 26, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)}
	r.modified = []time.Time{time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)}
	blob, err := r.blob(first, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := &ft.Message{Props: ft.Props{
		ft.String16(tagMessageClass, "IPM.Appointment"),
		ft.String16(tagSubject, "Weekly"),
		ft.WithName(ft.TimeProp(0, z.utc(first)), psetidAppointment, lidStartWhole),
		ft.WithName(ft.TimeProp(0, z.utc(first.Add(time.Hour))), psetidAppointment, lidEndWhole),
		ft.WithName(ft.BinaryProp(0, globalObjectID("weekly@contoso.test")), psetidMeeting, lidGlobalObjectID),
		ft.WithName(ft.BinaryProp(0, westEurope), psetidAppointment, lidTimeZoneStruct),
		ft.WithName(ft.String16(0, tzid), psetidAppointment, lidTimeZoneDescription),
		ft.WithName(ft.BinaryProp(0, blob), psetidAppointment, lidAppointmentRecur),
	}}
	b, err := appointmentICS(m)
	if err != nil {
		t.Fatal(err)
	}
	ics := strings.ReplaceAll(string(b), "\r\n ", "")
	for _, want := range []string{
		"BEGIN:VTIMEZONE", "TZID:" + tzid, "BYMONTH=3;BYDAY=-1SU", "BYMONTH=10;BYDAY=-1SU", "TZOFFSETTO:+0200", "TZOFFSETTO:+0100",
		"DTSTART;TZID=" + tzid + ":20260319T090000", "DTEND;TZID=" + tzid + ":20260319T100000", "RRULE:FREQ=WEEKLY;COUNT=4",
		"EXDATE;TZID=" + tzid + ":20260326T090000",
		"RECURRENCE-ID;TZID=" + tzid + ":20260402T090000", "DTSTART;TZID=" + tzid + ":20260402T100000", "SUMMARY:moved",
	} {
		if !strings.Contains(ics, want) {
			t.Errorf("no %q in\n%s", want, ics)
		}
	}
	// Without a global object id the UID is still there, and stable.
	m.Props = append(m.Props[:4], m.Props[5:]...)
	again, _ := appointmentICS(m)
	twice, _ := appointmentICS(m)
	if !strings.Contains(string(again), "UID:") || strings.Contains(string(again), "UID:\r\n") || string(again) != string(twice) {
		t.Errorf("without a global object id:\n%s", again)
	}
	if strings.Contains(ics, "EXDATE;TZID="+tzid+":20260402") {
		t.Errorf("the moved occurrence is also cancelled:\n%s", ics)
	}
}

// Every cut of a series' blob is refused: the parser never reads past
// the end, and never takes a blob cut short for a whole one.
func TestRecurrenceBlobCutShortIsRefused(t *testing.T) {
	first := time.Date(2026, 3, 19, 9, 0, 0, 0, time.UTC)
	r, _ := ruleFromRRULE("FREQ=WEEKLY;COUNT=4", first)
	subject, place := "moved", "Room 2"
	r.exceptions = []exception{{start: first.AddDate(0, 0, 14).Add(time.Hour), end: first.AddDate(0, 0, 14).Add(2 * time.Hour),
		original: first.AddDate(0, 0, 14), subject: &subject, location: &place}}
	r.deleted = []time.Time{midnight(first.AddDate(0, 0, 7)), midnight(first.AddDate(0, 0, 14))}
	r.modified = []time.Time{midnight(first.AddDate(0, 0, 14))}
	blob, err := r.blob(first, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := parseRecurrence(blob)
	if err != nil || len(whole.exceptions) != 1 || *whole.exceptions[0].subject != subject || *whole.exceptions[0].location != place {
		t.Fatalf("whole blob: %+v %v", whole, err)
	}
	for n := range len(blob) {
		if _, err := parseRecurrence(blob[:n]); err == nil {
			t.Fatalf("a blob cut at %d of %d bytes was read as whole", n, len(blob))
		}
	}
}
