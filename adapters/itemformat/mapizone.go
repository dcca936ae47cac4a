package itemformat

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/emersion/go-ical"
)

// zone is an appointment's time zone: UTC = local + bias + the standard
// or daylight bias, with the yearly rules of the two changes (month, day
// of the week, its week in the month, 5 for the last, and the local time).
// A zone may have rules for past years ([MS-OXOCAL] 2.2.1.41): each rule
// holds from its year until the next one's; the first also before it.
type zone struct {
	name  string
	rules []zoneRule // by year, oldest first; at least one
}

type zoneRule struct {
	year                   int
	bias, stdBias, dstBias int
	std, dst               change
}

type change struct{ month, weekday, week, hour, minute int }

// ruleAt reads the biases and the two changes of a PidLidTimeZoneStruct
// (from its start) or of a TZRule (from its lBias): 3 biases, then the
// standard and daylight SYSTEMTIMEs, each after gap bytes (the struct's
// years); a rule whose changes make no sense keeps its biases without
// daylight saving time.
func ruleAt(b []byte, gap int) zoneRule {
	i32 := func(at int) int { return int(int32(binary.LittleEndian.Uint32(b[at:]))) }
	u16 := func(at int) int { return int(binary.LittleEndian.Uint16(b[at:])) }
	// A SYSTEMTIME: year, month, day of the week, day (the week), hour, minute...
	sys := func(at int) change {
		return change{month: u16(at + 2), weekday: u16(at + 4), week: u16(at + 6), hour: u16(at + 8), minute: u16(at + 10)}
	}
	r := zoneRule{bias: i32(0), stdBias: i32(4), dstBias: i32(8), std: sys(12 + gap), dst: sys(28 + 2*gap)}
	valid := func(c change) bool {
		return c.month >= 1 && c.month <= 12 && c.weekday <= 6 && c.week >= 1 && c.week <= 5 && c.hour < 24 && c.minute < 60
	}
	if r.bias < -24*60 || r.bias > 24*60 || !valid(r.std) || !valid(r.dst) {
		r.std, r.dst = change{}, change{}
	}
	return r
}

// parseZone reads the 48-byte PidLidTimeZoneStruct; ok is false when
// there is none.
func parseZone(b []byte, name string) (zone, bool) {
	if len(b) < 48 {
		return zone{}, false
	}
	if name == "" {
		name = "Custom"
	}
	return zone{name: name, rules: []zoneRule{ruleAt(b, 2)}}, true
}

// Flags of a TZRule: TZRULE_FLAG_RECUR_CURRENT_TZREG marks the rule the
// series' PidLidTimeZoneStruct was written from (Outlook's reading),
// TZRULE_FLAG_EFFECTIVE_TZREG the rule in force ([MS-OXOCAL]'s).
const tzRuleMarked = 0x0001 | 0x0002

// withHistory adds the rules of past and future years a
// PidLidAppointmentTimeZoneDefinitionRecur holds (a TZDefinition: version
// 2.1, a header with the zone's key name, then TZRules of 66 bytes, each
// with its year). The definition is taken only when it reads whole and a
// rule it marks is the zone's own (the test of consistency both readings
// make); otherwise the zone stays as it is.
func (z zone) withHistory(def []byte) zone {
	if len(z.rules) != 1 || len(def) < 6 || def[0] != 0x02 || def[1] != 0x01 {
		return z
	}
	header := int(binary.LittleEndian.Uint16(def[2:]))
	if len(def) < 4+header || header < 6 {
		return z
	}
	keyChars := int(binary.LittleEndian.Uint16(def[6:]))
	if 6+2*keyChars != header {
		return z
	}
	count := int(binary.LittleEndian.Uint16(def[4+header-2:]))
	const ruleSize = 66
	if count < 1 || count > 1024 || len(def) < 4+header+count*ruleSize {
		return z
	}
	rules := make([]zoneRule, 0, count)
	effective := false // a marked rule is the zone's own
	for i := 0; i < count; i++ {
		b := def[4+header+i*ruleSize:]
		if b[0] != 0x02 || b[1] != 0x01 {
			return z
		}
		r := ruleAt(b[22:], 0)
		r.year = int(binary.LittleEndian.Uint16(b[6:]))
		if i > 0 && r.year <= rules[i-1].year {
			return z // rules go from the oldest to the newest
		}
		if own := z.rules[0]; binary.LittleEndian.Uint16(b[4:])&tzRuleMarked != 0 {
			own.year = r.year
			effective = effective || r == own
		}
		rules = append(rules, r)
	}
	if !effective {
		return z // inconsistent with PidLidTimeZoneStruct, which wins
	}
	return zone{name: z.name, rules: rules}
}

// rule is the rule in force in year.
func (z zone) rule(year int) zoneRule {
	r := z.rules[0]
	for _, next := range z.rules[1:] {
		if next.year > year {
			break
		}
		r = next
	}
	return r
}

// daylight tells whether the zone keeps daylight saving time in any year.
func (z zone) daylight() bool {
	for _, r := range z.rules {
		if r.daylight() {
			return true
		}
	}
	return false
}

func (r zoneRule) daylight() bool { return r.std.month != 0 && r.dst.month != 0 }

// onset is the local time the change happens in year.
func (c change) onset(year int) time.Time {
	if c.week == 5 {
		last := time.Date(year, time.Month(c.month)+1, 0, c.hour, c.minute, 0, 0, time.UTC)
		return last.AddDate(0, 0, -((int(last.Weekday()) - c.weekday + 7) % 7))
	}
	first := time.Date(year, time.Month(c.month), 1, c.hour, c.minute, 0, 0, time.UTC)
	return first.AddDate(0, 0, (c.weekday-int(first.Weekday())+7)%7+7*(c.week-1))
}

// isDaylight tells whether a local time is in daylight saving time.
func (r zoneRule) isDaylight(local time.Time) bool {
	if !r.daylight() {
		return false
	}
	begins, ends := r.dst.onset(local.Year()), r.std.onset(local.Year())
	if begins.Before(ends) { // northern hemisphere
		return !local.Before(begins) && local.Before(ends)
	}
	return !(!local.Before(ends) && local.Before(begins))
}

// offset is local time less UTC for a local time.
func (z zone) offset(local time.Time) time.Duration {
	r := z.rule(local.Year())
	b := r.bias + r.stdBias
	if r.isDaylight(local) {
		b = r.bias + r.dstBias
	}
	return -time.Duration(b) * time.Minute
}

func (z zone) utc(local time.Time) time.Time { return local.Add(-z.offset(local)).UTC() }

// local converts a UTC time to the zone's clock (in a UTC-located time).
func (z zone) local(utc time.Time) time.Time {
	r := z.rule(utc.Year())
	std := utc.Add(-time.Duration(r.bias+r.stdBias) * time.Minute)
	if r = z.rule(std.Year()); !r.isDaylight(std) {
		return utc.Add(-time.Duration(r.bias+r.stdBias) * time.Minute)
	}
	return utc.Add(-time.Duration(r.bias+r.dstBias) * time.Minute)
}

// vtimezone is the zone as RFC 5545 writes it: per rule a STANDARD and a
// DAYLIGHT part with their yearly rules (a rule without daylight saving
// time, a STANDARD part alone), each from the rule's first year and, but
// for the newest, for its years only.
func (z zone) vtimezone() *ical.Component {
	tz := ical.NewComponent(ical.CompTimezone)
	tz.Props.SetText(ical.PropTimezoneID, z.name)
	for i, r := range z.rules {
		from := 1601
		if i > 0 {
			from = r.year
		}
		last := 0 // no end
		if i+1 < len(z.rules) {
			last = z.rules[i+1].year - 1
		}
		stdOff, dstOff := -(r.bias + r.stdBias), -(r.bias + r.dstBias)
		if !r.daylight() {
			p := observance(ical.CompTimezoneStandard, time.Date(from, 1, 1, 0, 0, 0, 0, time.UTC), stdOff, stdOff)
			tz.Children = append(tz.Children, p)
			continue
		}
		std := observance(ical.CompTimezoneStandard, r.std.onset(from), dstOff, stdOff)
		std.Props.Set(r.std.yearly(from, last))
		dst := observance(ical.CompTimezoneDaylight, r.dst.onset(from), stdOff, dstOff)
		dst.Props.Set(r.dst.yearly(from, last))
		tz.Children = append(tz.Children, std, dst)
	}
	return tz
}

// observance is a STANDARD or DAYLIGHT part starting at a local time, with
// the offsets before and after.
func observance(name string, start time.Time, from, to int) *ical.Component {
	p := ical.NewComponent(name)
	dt := ical.NewProp(ical.PropDateTimeStart)
	dt.Value = start.Format("20060102T150405")
	p.Props.Set(dt)
	for _, o := range []struct {
		prop    string
		minutes int
	}{{ical.PropTimezoneOffsetFrom, from}, {ical.PropTimezoneOffsetTo, to}} {
		v := ical.NewProp(o.prop)
		v.Value = utcOffset(o.minutes)
		p.Props.Set(v)
	}
	return p
}

// yearly is the change's RRULE from the year from to the year last (0:
// for ever). A bounded rule counts its years (COUNT) rather than naming
// its last change (UNTIL, which RFC 5545 wants in UTC here and common
// readers, Python's icalendar with dateutil among them, refuse beside a
// local DTSTART).
func (c change) yearly(from, last int) *ical.Prop {
	rule := ical.NewProp(ical.PropRecurrenceRule)
	week := c.week
	if week == 5 {
		week = -1
	}
	rule.Value = fmt.Sprintf("FREQ=YEARLY;BYMONTH=%d;BYDAY=%d%s", c.month, week, weekdays[c.weekday])
	if last >= from {
		rule.Value += fmt.Sprintf(";COUNT=%d", last-from+1)
	}
	return rule
}

func utcOffset(minutes int) string {
	sign := "+"
	if minutes < 0 {
		sign, minutes = "-", -minutes
	}
	return fmt.Sprintf("%s%02d%02d", sign, minutes/60, minutes%60)
}

// setLocal sets a date-time property to a local time of the zone.
func (z zone) setLocal(c *ical.Component, name string, local time.Time) {
	p := ical.NewProp(name)
	p.Params.Set(ical.ParamTimezoneID, z.name)
	p.Value = local.Format("20060102T150405")
	c.Props.Add(p)
}
