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
	westEurope     = tzStruct(-60, -60, [4]uint16{10, 0, 5, 3}, [4]uint16{3, 0, 5, 2})  // last Sunday of October / March
	eastAustral    = tzStruct(-600, -60, [4]uint16{4, 0, 1, 3}, [4]uint16{10, 0, 1, 2}) // first Sunday of April / October
	eastern2007    = tzStruct(300, -60, [4]uint16{11, 0, 1, 2}, [4]uint16{3, 0, 2, 2})  // first Sunday of November / second of March
	eastern1987    = tzStruct(300, -60, [4]uint16{10, 0, 5, 2}, [4]uint16{4, 0, 1, 2})  // last Sunday of October / first of April
	easternHistory = tzDefinition("Eastern Standard Time", tzRule{2006, 0, eastern1987}, tzRule{2007, 0x0002, eastern2007})
)

type tzRule = struct {
	year, flags uint16
	tz          []byte
}

// Local times convert to UTC and back by the zone's rule of their year
// (US Eastern has two: the first Sunday of April to the last of October
// until 2006, the second Sunday of March to the first of November since).
func TestZoneConvertsLocalTimes(t *testing.T) {
	zoneOf := func(tz []byte) zone {
		z, ok := parseZone(tz, "Z")
		if !ok || !z.daylight() {
			t.Fatalf("zone not read")
		}
		return z
	}
	europe, australia, eastern := zoneOf(westEurope), zoneOf(eastAustral), zoneOf(eastern2007)
	withHistory := eastern.withHistory(easternHistory)
	for _, tc := range []struct {
		name       string
		z          zone
		local, utc time.Time
	}{
		{"winter in Europe", europe, time.Date(2026, 3, 19, 9, 0, 0, 0, time.UTC), time.Date(2026, 3, 19, 8, 0, 0, 0, time.UTC)},
		{"summer in Europe", europe, time.Date(2026, 4, 9, 9, 0, 0, 0, time.UTC), time.Date(2026, 4, 9, 7, 0, 0, 0, time.UTC)},
		{"the last hour of summer time", europe, time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)},
		{"summer in Australia (January)", australia, time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 15, 1, 0, 0, 0, time.UTC)},
		{"winter in Australia (July)", australia, time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 2, 0, 0, 0, time.UTC)},
		{"March 2006, the old rule: standard time", withHistory, time.Date(2006, 3, 20, 9, 0, 0, 0, time.UTC), time.Date(2006, 3, 20, 14, 0, 0, 0, time.UTC)},
		{"the end of October 2006: standard time again", withHistory, time.Date(2006, 10, 31, 9, 0, 0, 0, time.UTC), time.Date(2006, 10, 31, 14, 0, 0, 0, time.UTC)},
		{"March 2026, the new rule: daylight time", withHistory, time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC), time.Date(2026, 3, 20, 13, 0, 0, 0, time.UTC)},
		{"before the oldest rule, the oldest applies", withHistory, time.Date(1999, 3, 20, 9, 0, 0, 0, time.UTC), time.Date(1999, 3, 20, 14, 0, 0, 0, time.UTC)},
		{"without the history, March 2006 had the new rule", eastern, time.Date(2006, 3, 20, 9, 0, 0, 0, time.UTC), time.Date(2006, 3, 20, 13, 0, 0, 0, time.UTC)},
	} {
		if got := tc.z.utc(tc.local); !got.Equal(tc.utc) {
			t.Errorf("%s: %v local is %v UTC, want %v", tc.name, tc.local, got, tc.utc)
		}
		if got := tc.z.local(tc.utc); !got.Equal(tc.local) {
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

// tzDefinition writes a PidLidAppointmentTimeZoneDefinitionRecur: a
// TZDefinition of rules given as PidLidTimeZoneStructs, each with its year
// and flags.
func tzDefinition(key string, rules ...tzRule) []byte {
	name := utf16le(key)
	b := []byte{0x02, 0x01}
	b = binary.LittleEndian.AppendUint16(b, uint16(6+len(name)))
	b = binary.LittleEndian.AppendUint16(b, 0x0002)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)/2))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(rules)))
	for _, r := range rules {
		b = append(b, 0x02, 0x01, 0x3E, 0x00)
		b = binary.LittleEndian.AppendUint16(b, r.flags)
		b = binary.LittleEndian.AppendUint16(b, r.year)
		b = append(b, make([]byte, 14)...)
		b = append(b, r.tz[0:12]...)
		b = append(b, r.tz[14:30]...)
		b = append(b, r.tz[32:48]...)
	}
	return b
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

// A zone's rules of past years are written as a VTIMEZONE pair per rule,
// the older ones counting their years (TestZoneConvertsLocalTimes has
// their conversions); a definition that does not read whole, or whose
// marked rule is not the zone's own, is left aside for
// PidLidTimeZoneStruct.
func TestZoneRulesOfPastYears(t *testing.T) {
	history := easternHistory
	z, _ := parseZone(eastern2007, "Eastern Standard Time")
	withHistory := z.withHistory(history)
	var b strings.Builder
	for _, p := range withHistory.vtimezone().Children {
		b.WriteString(p.Name + " " + p.Props.Get("DTSTART").Value + " " + p.Props.Get("RRULE").Value + "\n")
	}
	want := "STANDARD 16011028T020000 FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;COUNT=406\n" +
		"DAYLIGHT 16010401T020000 FREQ=YEARLY;BYMONTH=4;BYDAY=1SU;COUNT=406\n" +
		"STANDARD 20071104T020000 FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\n" +
		"DAYLIGHT 20070311T020000 FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\n"
	if b.String() != want {
		t.Errorf("VTIMEZONE parts:\n%s\nwant:\n%s", b.String(), want)
	}
	for name, def := range map[string][]byte{
		"cut short":                         history[:len(history)-1],
		"its marked rule is not the zone's": tzDefinition("Eastern Standard Time", tzRule{2006, 0x0002, eastern1987}, tzRule{2007, 0, eastern2007}),
		"rules out of order":                tzDefinition("Eastern Standard Time", tzRule{2007, 0x0002, eastern2007}, tzRule{2006, 0, eastern1987}),
		"no rule":                           tzDefinition("Eastern Standard Time"),
		"empty":                             nil,
	} {
		if got := z.withHistory(def); len(got.rules) != 1 {
			t.Errorf("%s: taken, %d rules", name, len(got.rules))
		}
	}
	for n := range len(history) {
		z.withHistory(history[:n]) // never reads past the end
	}
}
