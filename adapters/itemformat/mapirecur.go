package itemformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// recurrence is an appointment's series as PidLidAppointmentRecur holds it
// ([MS-OXOCAL] 2.2.1.44, the AppointmentRecurrencePattern). Dates and times
// in the blob are minutes since 1601 in the appointment's own time zone;
// here they are kept as times whose clock reads that local time (in UTC).
type recurrence struct {
	freq       string // DAILY, WEEKLY, MONTHLY or YEARLY
	interval   int
	weekdays   uint32 // weekly and month-nth: Sunday 0x1 ... Saturday 0x40
	monthDay   int    // monthly and yearly by day of the month
	nth        int    // month-nth: 1-4, 5 for the last
	count      int    // 0 when the series ends by date or never
	until      time.Time
	firstDOW   int
	deleted    []time.Time // local midnights of deleted and modified occurrences
	modified   []time.Time // local midnights of modified occurrences' new dates
	start, end time.Time   // local midnights of the first and last occurrence
	startMin   int         // minutes after midnight the occurrences start
	endMin     int         // and end
	exceptions []exception
}

type exception struct {
	start, end, original time.Time // local
	subject, location    *string
}

const (
	recurReaderVersion  = 0x3004
	recurReaderVersion2 = 0x3006
	recurWriterVersion2 = 0x3009
	endAfterDate        = 0x2021
	endAfterCount       = 0x2022
	endNever            = 0x2023
	neverEndDate        = 0x5AE980DF
	aroSubject          = 0x0001
	aroLocation         = 0x0010
)

var (
	recurFreq = map[string]uint16{"DAILY": 0x200A, "WEEKLY": 0x200B, "MONTHLY": 0x200C, "YEARLY": 0x200D}
	weekdays  = []string{"SU", "MO", "TU", "WE", "TH", "FR", "SA"}
)

func minutes1601(t time.Time) uint32 {
	return uint32((t.Unix() + 11644473600) / 60)
}

func from1601(m uint32) time.Time {
	return time.Unix(int64(m)*60-11644473600, 0).UTC()
}

func midnight(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

var errRecurrence = errors.New("recurrence pattern")

// parseRecurrence reads the blob; it refuses what it cannot read rather
// than guess.
func parseRecurrence(b []byte) (*recurrence, error) {
	r := &recurrence{}
	off := 0
	fail := func(why string) error { return fmt.Errorf("%w at byte %d: %s", errRecurrence, off, why) }
	u16 := func() (uint16, error) {
		if len(b)-off < 2 {
			return 0, fail("cut short")
		}
		v := binary.LittleEndian.Uint16(b[off:])
		off += 2
		return v, nil
	}
	u32 := func() (uint32, error) {
		if len(b)-off < 4 {
			return 0, fail("cut short")
		}
		v := binary.LittleEndian.Uint32(b[off:])
		off += 4
		return v, nil
	}
	skip := func(n uint32) error {
		if uint64(n) > uint64(len(b)-off) {
			return fail("cut short")
		}
		off += int(n)
		return nil
	}
	var err error
	// skipBlock passes a reserved block: its size, then that many bytes.
	skipBlock := func() error {
		n, e := u32()
		if e != nil {
			return e
		}
		return skip(n)
	}
	must16 := func() uint16 {
		v, e := u16()
		if err == nil {
			err = e
		}
		return v
	}
	must32 := func() uint32 {
		v, e := u32()
		if err == nil {
			err = e
		}
		return v
	}
	must16()
	must16()
	freq := must16()
	pattern := must16()
	must16() // calendar type
	must32() // FirstDateTime
	period := must32()
	must32() // sliding flag
	if err != nil {
		return nil, err
	}
	for name, v := range recurFreq {
		if v == freq {
			r.freq = name
		}
	}
	if r.freq == "" {
		return nil, fail(fmt.Sprintf("frequency 0x%04X", freq))
	}
	switch pattern {
	case 0: // day
		r.interval = int(period / 1440)
	case 1: // week
		r.weekdays = must32()
		r.interval = int(period)
	case 2, 4: // month (4: the month's last day)
		r.monthDay = int(must32())
		if pattern == 4 {
			r.monthDay = -1
		}
		r.interval = int(period)
	case 3: // month-nth
		r.weekdays = must32()
		r.nth = int(must32())
		r.interval = int(period)
	default:
		return nil, fail(fmt.Sprintf("pattern type 0x%04X (a non-Gregorian calendar)", pattern))
	}
	if r.freq == "YEARLY" {
		r.interval /= 12
	}
	if r.interval < 1 {
		r.interval = 1
	}
	endType := must32()
	count := must32()
	r.firstDOW = int(must32())
	if err != nil {
		return nil, err
	}
	dates := func() ([]time.Time, error) {
		n, err := u32()
		if err != nil {
			return nil, err
		}
		if uint64(n)*4 > uint64(len(b)-off) {
			return nil, fail(fmt.Sprintf("%d dates in %d bytes", n, len(b)-off))
		}
		out := make([]time.Time, n)
		for i := range out {
			v, _ := u32()
			out[i] = from1601(v)
		}
		return out, nil
	}
	if r.deleted, err = dates(); err != nil {
		return nil, err
	}
	if r.modified, err = dates(); err != nil {
		return nil, err
	}
	r.start, r.end = from1601(must32()), from1601(must32())
	if endType == endAfterCount {
		r.count = int(count)
	} else if endType == endAfterDate {
		r.until = r.end
	}
	must32() // ReaderVersion2
	writer2 := must32()
	r.startMin, r.endMin = int(must32()), int(must32())
	n := must16()
	if err != nil {
		return nil, err
	}
	if uint64(n)*14 > uint64(len(b)-off) {
		return nil, fail(fmt.Sprintf("%d exceptions in %d bytes", n, len(b)-off))
	}
	flags := make([]uint16, n)
	for i := range int(n) {
		var ex exception
		ex.start, ex.end, ex.original = from1601(must32()), from1601(must32()), from1601(must32())
		flags[i] = must16()
		ansi := func() *string {
			must16()
			l := must16()
			if err != nil || int(l) > len(b)-off {
				err = fail("an exception's text is cut short")
				return nil
			}
			s := decodeText8(b[off : off+int(l)])
			off += int(l)
			return &s
		}
		if flags[i]&aroSubject != 0 {
			ex.subject = ansi()
		}
		for _, f := range []uint16{0x2, 0x4, 0x8} { // meeting type, reminder delta, reminder
			if flags[i]&f != 0 {
				must32()
			}
		}
		if flags[i]&aroLocation != 0 {
			ex.location = ansi()
		}
		for _, f := range []uint16{0x20, 0x40, 0x80, 0x100} { // busy status, attachment, subtype, colour
			if flags[i]&f != 0 {
				must32()
			}
		}
		if err != nil {
			return nil, err
		}
		r.exceptions = append(r.exceptions, ex)
	}
	if err := skipBlock(); err != nil { // ReservedBlock1
		return nil, err
	}
	for i := range r.exceptions {
		if writer2 >= recurWriterVersion2 {
			if err := skipBlock(); err != nil { // ChangeHighlight
				return nil, err
			}
		}
		if err := skipBlock(); err != nil { // ReservedBlockEE1
			return nil, err
		}
		if flags[i]&(aroSubject|aroLocation) == 0 {
			continue
		}
		if err := skip(12); err != nil { // the exception's times again
			return nil, err
		}
		wide := func() *string {
			l := must16()
			if err != nil || int(l)*2 > len(b)-off {
				err = fail("an exception's text is cut short")
				return nil
			}
			u := make([]uint16, l)
			for j := range u {
				u[j] = binary.LittleEndian.Uint16(b[off+2*j:])
			}
			off += 2 * int(l)
			s := string(utf16.Decode(u))
			return &s
		}
		if flags[i]&aroSubject != 0 {
			r.exceptions[i].subject = wide() // the Unicode text wins over the ANSI one
		}
		if flags[i]&aroLocation != 0 {
			r.exceptions[i].location = wide()
		}
		if err != nil {
			return nil, err
		}
		if err := skipBlock(); err != nil { // ReservedBlockEE2
			return nil, err
		}
	}
	if err := skipBlock(); err != nil { // ReservedBlock2
		return nil, err
	}
	return r, nil
}

func decodeText8(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// rrule is the series' RRULE; BYDAY is left out when it is only the first
// occurrence's day, which RFC 5545 implies.
func (r *recurrence) rrule(first time.Time, until time.Time) string {
	parts := []string{"FREQ=" + r.freq}
	if r.interval > 1 {
		parts = append(parts, "INTERVAL="+strconv.Itoa(r.interval))
	}
	days := func() string {
		var d []string
		for i, name := range weekdays {
			if r.weekdays&(1<<i) != 0 {
				d = append(d, name)
			}
		}
		return strings.Join(d, ",")
	}
	switch {
	case r.nth > 0:
		pos := r.nth
		if pos == 5 {
			pos = -1
		}
		if r.freq == "YEARLY" {
			parts = append(parts, "BYMONTH="+strconv.Itoa(int(first.Month())))
		}
		parts = append(parts, "BYDAY="+days(), "BYSETPOS="+strconv.Itoa(pos))
	case r.freq == "WEEKLY":
		if r.weekdays != 1<<uint(first.Weekday()) {
			parts = append(parts, "BYDAY="+days())
		}
		if r.firstDOW != 1 && r.interval > 1 {
			parts = append(parts, "WKST="+weekdays[r.firstDOW%7])
		}
	case r.freq == "MONTHLY" || r.freq == "YEARLY":
		if r.freq == "YEARLY" {
			parts = append(parts, "BYMONTH="+strconv.Itoa(int(first.Month())))
		}
		if r.monthDay != 0 && r.monthDay != first.Day() {
			parts = append(parts, "BYMONTHDAY="+strconv.Itoa(r.monthDay))
		}
	}
	switch {
	case r.count > 0:
		parts = append(parts, "COUNT="+strconv.Itoa(r.count))
	case !until.IsZero():
		parts = append(parts, "UNTIL="+until.UTC().Format(icalStamp))
	}
	return strings.Join(parts, ";")
}

// ruleFromRRULE reads the RRULE forms recurrenceBlob can write: DAILY,
// WEEKLY (BYDAY), MONTHLY and YEARLY by day of the month, with INTERVAL,
// COUNT or UNTIL.
func ruleFromRRULE(rule string, first time.Time) (*recurrence, error) {
	r := &recurrence{interval: 1, firstDOW: 1}
	for _, part := range strings.Split(rule, ";") {
		k, v, _ := strings.Cut(part, "=")
		switch strings.ToUpper(k) {
		case "FREQ":
			r.freq = strings.ToUpper(v)
			if _, ok := recurFreq[r.freq]; !ok {
				return nil, fmt.Errorf("%w: FREQ=%s", errRecurrence, v)
			}
		case "INTERVAL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 999 {
				return nil, fmt.Errorf("%w: INTERVAL=%s", errRecurrence, v)
			}
			r.interval = n
		case "COUNT":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 999 {
				return nil, fmt.Errorf("%w: COUNT=%s", errRecurrence, v)
			}
			r.count = n
		case "UNTIL":
			t, err := time.Parse(icalStamp, v)
			if err != nil {
				if t, err = time.Parse("20060102", v); err != nil {
					return nil, fmt.Errorf("%w: UNTIL=%s", errRecurrence, v)
				}
			}
			r.until = t
		case "BYDAY":
			for _, d := range strings.Split(v, ",") {
				i := indexOf(weekdays, strings.ToUpper(d))
				if i < 0 {
					return nil, fmt.Errorf("%w: BYDAY=%s (only plain days)", errRecurrence, v)
				}
				r.weekdays |= 1 << i
			}
		case "BYMONTHDAY":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 31 {
				return nil, fmt.Errorf("%w: BYMONTHDAY=%s", errRecurrence, v)
			}
			r.monthDay = n
		case "WKST":
			if i := indexOf(weekdays, strings.ToUpper(v)); i >= 0 {
				r.firstDOW = i
			}
		case "BYMONTH":
			if n, err := strconv.Atoi(v); err != nil || n != int(first.Month()) {
				return nil, fmt.Errorf("%w: BYMONTH=%s other than the first occurrence's", errRecurrence, v)
			}
		default:
			return nil, fmt.Errorf("%w: %s is not converted", errRecurrence, k)
		}
	}
	if r.freq == "" {
		return nil, fmt.Errorf("%w: no FREQ", errRecurrence)
	}
	if r.weekdays == 0 && r.freq == "WEEKLY" {
		r.weekdays = 1 << uint(first.Weekday())
	}
	if r.monthDay == 0 && (r.freq == "MONTHLY" || r.freq == "YEARLY") {
		r.monthDay = first.Day()
	}
	return r, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// occurrences lists the series' starts (at most limit) for its end date.
func (r *recurrence) occurrences(first time.Time, limit int) []time.Time {
	var out []time.Time
	for i := 0; len(out) < limit && i < 100000; i++ {
		var t time.Time
		switch r.freq {
		case "DAILY":
			t = first.AddDate(0, 0, i*r.interval)
		case "WEEKLY":
			week := first.AddDate(0, 0, -((int(first.Weekday())-r.firstDOW+7)%7)+7*r.interval*(i/7))
			t = week.AddDate(0, 0, i%7)
			if r.weekdays&(1<<uint(t.Weekday())) == 0 || t.Before(first) {
				continue
			}
		case "MONTHLY":
			t = time.Date(first.Year(), first.Month()+time.Month(i*r.interval), r.monthDay, first.Hour(), first.Minute(), 0, 0, time.UTC)
			if t.Day() != r.monthDay {
				continue
			}
		case "YEARLY":
			t = time.Date(first.Year()+i*r.interval, first.Month(), r.monthDay, first.Hour(), first.Minute(), 0, 0, time.UTC)
			if t.Day() != r.monthDay {
				continue
			}
		}
		if !r.until.IsZero() && t.After(r.until) {
			break
		}
		out = append(out, t)
	}
	return out
}

// blob writes the AppointmentRecurrencePattern of a series starting at
// first (local time).
func (r *recurrence) blob(first time.Time, duration time.Duration) ([]byte, error) {
	var b bytes.Buffer
	w16 := func(v uint16) { binary.Write(&b, binary.LittleEndian, v) }
	w32 := func(v uint32) { binary.Write(&b, binary.LittleEndian, v) }
	start := midnight(first)
	limit := 1000
	if r.count > 0 {
		limit = r.count
	}
	occ := r.occurrences(first, limit)
	if len(occ) == 0 {
		return nil, fmt.Errorf("%w: the series has no occurrence", errRecurrence)
	}
	if r.count == 0 && r.until.IsZero() && len(occ) == limit {
		occ = occ[:0] // never ends
	}
	w16(recurReaderVersion)
	w16(recurReaderVersion)
	w16(recurFreq[r.freq])
	var pattern uint16
	var period, firstDateTime uint32
	switch r.freq {
	case "DAILY":
		period = uint32(r.interval * 1440)
		firstDateTime = minutes1601(start) % period
	case "WEEKLY":
		pattern, period = 1, uint32(r.interval)
		week := start.AddDate(0, 0, -((int(start.Weekday()) - r.firstDOW + 7) % 7))
		firstDateTime = minutes1601(week) % (period * 10080)
	case "MONTHLY", "YEARLY":
		pattern, period = 2, uint32(r.interval)
		if r.freq == "YEARLY" {
			period *= 12
		}
		months := uint32((start.Year()-1601)*12 + int(start.Month()) - 1)
		firstDateTime = minutes1601(time.Date(1601, time.Month(months%period)+1, 1, 0, 0, 0, 0, time.UTC))
	}
	w16(pattern)
	w16(0) // Gregorian
	w32(firstDateTime)
	w32(period)
	w32(0) // not sliding
	switch pattern {
	case 1:
		w32(r.weekdays)
	case 2:
		w32(uint32(r.monthDay))
	}
	endDate := uint32(neverEndDate)
	switch {
	case r.count > 0:
		w32(endAfterCount)
		w32(uint32(r.count))
		endDate = minutes1601(midnight(occ[len(occ)-1]))
	case !r.until.IsZero():
		w32(endAfterDate)
		w32(uint32(len(occ)))
		endDate = minutes1601(midnight(occ[len(occ)-1]))
	default:
		w32(endNever)
		w32(10)
	}
	w32(uint32(r.firstDOW))
	dates := func(ts []time.Time) {
		ts = append([]time.Time(nil), ts...)
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		w32(uint32(len(ts)))
		for _, t := range ts {
			w32(minutes1601(midnight(t)))
		}
	}
	dates(r.deleted)
	dates(r.modified)
	w32(minutes1601(start))
	w32(endDate)
	w32(recurReaderVersion2)
	w32(recurWriterVersion2)
	startMin := first.Hour()*60 + first.Minute()
	w32(uint32(startMin))
	w32(uint32(startMin + int(duration/time.Minute)))
	w16(uint16(len(r.exceptions)))
	flagsOf := func(ex exception) uint16 {
		var f uint16
		if ex.subject != nil {
			f |= aroSubject
		}
		if ex.location != nil {
			f |= aroLocation
		}
		return f
	}
	ansi := func(s string) {
		// The ANSI copy: characters outside Latin-1 become '?'; the
		// extended exception below carries the text whole.
		out := make([]byte, 0, len(s))
		for _, c := range s {
			if c > 0xFF {
				c = '?'
			}
			out = append(out, byte(c))
		}
		w16(uint16(len(out) + 1))
		w16(uint16(len(out)))
		b.Write(out)
	}
	for _, ex := range r.exceptions {
		w32(minutes1601(ex.start))
		w32(minutes1601(ex.end))
		w32(minutes1601(ex.original))
		w16(flagsOf(ex))
		if ex.subject != nil {
			ansi(*ex.subject)
		}
		if ex.location != nil {
			ansi(*ex.location)
		}
	}
	w32(0) // ReservedBlock1
	for _, ex := range r.exceptions {
		w32(4) // ChangeHighlight: its size and value
		w32(0)
		w32(0) // ReservedBlockEE1
		if flagsOf(ex) == 0 {
			continue
		}
		w32(minutes1601(ex.start))
		w32(minutes1601(ex.end))
		w32(minutes1601(ex.original))
		for _, s := range []*string{ex.subject, ex.location} {
			if s != nil {
				u := utf16.Encode([]rune(*s))
				w16(uint16(len(u)))
				for _, c := range u {
					w16(c)
				}
			}
		}
		w32(0) // ReservedBlockEE2
	}
	w32(0) // ReservedBlock2
	return b.Bytes(), nil
}
