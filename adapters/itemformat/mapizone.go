package itemformat

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/emersion/go-ical"
)

// zone is an appointment's time zone as PidLidTimeZoneStruct holds it
// ([MS-OXOCAL] 2.2.1.39): UTC = local + bias + the standard or daylight
// bias, with the yearly rules of the two changes (month, day of the week,
// its week in the month, 5 for the last, and the local time).
type zone struct {
	name                   string
	bias, stdBias, dstBias int
	std, dst               change
}

type change struct{ month, weekday, week, hour, minute int }

// parseZone reads the 48-byte structure; ok is false when there is none.
func parseZone(b []byte, name string) (zone, bool) {
	if len(b) < 48 {
		return zone{}, false
	}
	i32 := func(at int) int { return int(int32(binary.LittleEndian.Uint32(b[at:]))) }
	u16 := func(at int) int { return int(binary.LittleEndian.Uint16(b[at:])) }
	// A SYSTEMTIME: year, month, day of the week, day (the week), hour, minute...
	sys := func(at int) change {
		return change{month: u16(at + 2), weekday: u16(at + 4), week: u16(at + 6), hour: u16(at + 8), minute: u16(at + 10)}
	}
	z := zone{name: name, bias: i32(0), stdBias: i32(4), dstBias: i32(8), std: sys(14), dst: sys(32)}
	if z.name == "" {
		z.name = "Custom"
	}
	valid := func(c change) bool {
		return c.month >= 1 && c.month <= 12 && c.weekday <= 6 && c.week >= 1 && c.week <= 5 && c.hour < 24 && c.minute < 60
	}
	if z.bias < -24*60 || z.bias > 24*60 || !valid(z.std) || !valid(z.dst) {
		z.std, z.dst = change{}, change{}
	}
	return z, true
}

// daylight tells whether the zone keeps daylight saving time.
func (z zone) daylight() bool { return z.std.month != 0 && z.dst.month != 0 }

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
func (z zone) isDaylight(local time.Time) bool {
	if !z.daylight() {
		return false
	}
	begins, ends := z.dst.onset(local.Year()), z.std.onset(local.Year())
	if begins.Before(ends) { // northern hemisphere
		return !local.Before(begins) && local.Before(ends)
	}
	return !(!local.Before(ends) && local.Before(begins))
}

// offset is local time less UTC for a local time.
func (z zone) offset(local time.Time) time.Duration {
	b := z.bias + z.stdBias
	if z.isDaylight(local) {
		b = z.bias + z.dstBias
	}
	return -time.Duration(b) * time.Minute
}

func (z zone) utc(local time.Time) time.Time { return local.Add(-z.offset(local)).UTC() }

// local converts a UTC time to the zone's clock (in a UTC-located time).
func (z zone) local(utc time.Time) time.Time {
	std := utc.Add(-time.Duration(z.bias+z.stdBias) * time.Minute)
	if !z.isDaylight(std) {
		return std
	}
	return utc.Add(-time.Duration(z.bias+z.dstBias) * time.Minute)
}

// vtimezone is the zone as RFC 5545 writes it: a STANDARD and a DAYLIGHT
// part, each with its yearly rule.
func (z zone) vtimezone() *ical.Component {
	tz := ical.NewComponent(ical.CompTimezone)
	tz.Props.SetText(ical.PropTimezoneID, z.name)
	stdOff, dstOff := -(z.bias + z.stdBias), -(z.bias + z.dstBias)
	part := func(name string, c change, from, to int) *ical.Component {
		p := ical.NewComponent(name)
		start := ical.NewProp(ical.PropDateTimeStart)
		start.Value = c.onset(1601).Format("20060102T150405")
		p.Props.Set(start)
		for _, o := range []struct {
			prop    string
			minutes int
		}{{ical.PropTimezoneOffsetFrom, from}, {ical.PropTimezoneOffsetTo, to}} {
			v := ical.NewProp(o.prop)
			v.Value = utcOffset(o.minutes)
			p.Props.Set(v)
		}
		rule := ical.NewProp(ical.PropRecurrenceRule)
		week := c.week
		if week == 5 {
			week = -1
		}
		rule.Value = fmt.Sprintf("FREQ=YEARLY;BYMONTH=%d;BYDAY=%d%s", c.month, week, weekdays[c.weekday])
		p.Props.Set(rule)
		return p
	}
	tz.Children = []*ical.Component{part(ical.CompTimezoneStandard, z.std, dstOff, stdOff), part(ical.CompTimezoneDaylight, z.dst, stdOff, dstOff)}
	return tz
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
