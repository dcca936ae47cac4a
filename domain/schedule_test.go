package domain

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	z, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func clock(t *testing.T, s string) ClockTime {
	c, err := ParseClock(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestScheduleWindows(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	end := at("2026-12-31 00:00")
	cases := []struct {
		name      string
		s         Schedule
		now       string
		in        bool
		start     string // of the current or next window
		end       string
		noNext    bool
		durationH float64 // of that window, when set
	}{
		{"daily all day, no end date", Schedule{Pattern: PatternDaily, AllDay: true, RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-06-10 13:00", true, "2026-01-01 00:00", "", false, 0},
		{"daily window, inside", Schedule{Pattern: PatternDaily, From: clock(t, "22:00"), To: clock(t, "06:00"), RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-06-10 23:30", true, "2026-06-10 22:00", "2026-06-11 06:00", false, 8},
		{"daily window past midnight, early morning", Schedule{Pattern: PatternDaily, From: clock(t, "22:00"), To: clock(t, "06:00"), RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-06-11 05:00", true, "2026-06-10 22:00", "2026-06-11 06:00", false, 8},
		{"daily window, outside: next tonight", Schedule{Pattern: PatternDaily, From: clock(t, "22:00"), To: clock(t, "06:00"), RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-06-11 12:00", false, "2026-06-11 22:00", "2026-06-12 06:00", false, 8},
		{"weekly on weekends", Schedule{Pattern: PatternWeekly, AllDay: true, Weekdays: []time.Weekday{time.Saturday, time.Sunday}, RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-12-02 10:00", false, "2026-12-05 00:00", "2026-12-07 00:00", false, 48},
		{"monthly on the 31st skips short months", Schedule{Pattern: PatternMonthly, AllDay: true, MonthDays: []int{31}, RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-04-05 10:00", false, "2026-05-31 00:00", "2026-06-01 00:00", false, 24},
		{"range not started yet", Schedule{Pattern: PatternDaily, AllDay: true, RangeStart: at("2027-02-01 00:00"), Zone: berlin},
			"2026-12-01 10:00", false, "2027-02-01 00:00", "", false, 0},
		{"range over", Schedule{Pattern: PatternDaily, AllDay: true, RangeStart: at("2026-01-01 00:00"), RangeEnd: &end, Zone: berlin},
			"2027-01-02 10:00", false, "", "", true, 0},
		{"last day of the range is included", Schedule{Pattern: PatternDaily, From: clock(t, "09:00"), To: clock(t, "17:00"), RangeStart: at("2026-01-01 00:00"), RangeEnd: &end, Zone: berlin},
			"2026-12-31 10:00", true, "2026-12-31 09:00", "2026-12-31 17:00", false, 8},
		{"custom periods", Schedule{Pattern: PatternCustom, Custom: []DateRange{{at("2026-12-24 18:00"), at("2026-12-26 08:00")}, {at("2026-12-05 20:00"), at("2026-12-06 06:00")}}, Zone: berlin},
			"2026-12-01 10:00", false, "2026-12-05 20:00", "2026-12-06 06:00", false, 10},
		// DST in Europe/Berlin: 29 March 2026 02:00 -> 03:00, 25 October 2026 03:00 -> 02:00.
		{"all day on the spring-forward day is 23 hours", Schedule{Pattern: PatternWeekly, AllDay: true, Weekdays: []time.Weekday{time.Sunday}, RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-03-29 12:00", true, "2026-03-29 00:00", "2026-03-30 00:00", false, 23},
		{"all day on the fall-back day is 25 hours", Schedule{Pattern: PatternWeekly, AllDay: true, Weekdays: []time.Weekday{time.Sunday}, RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-10-25 12:00", true, "2026-10-25 00:00", "2026-10-26 00:00", false, 25},
		{"a window across the spring gap loses the missing hour", Schedule{Pattern: PatternDaily, From: clock(t, "01:00"), To: clock(t, "04:00"), RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-03-29 01:30", true, "2026-03-29 01:00", "2026-03-29 04:00", false, 2},
		{"a window across the autumn fold gains the repeated hour", Schedule{Pattern: PatternDaily, From: clock(t, "01:00"), To: clock(t, "04:00"), RangeStart: at("2026-01-01 00:00"), Zone: berlin},
			"2026-10-25 01:30", true, "2026-10-25 01:00", "2026-10-25 04:00", false, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.s.Validate(); err != nil {
				t.Fatal(err)
			}
			now := at(c.now)
			w, in := c.s.Current(now)
			if in != c.in {
				t.Fatalf("active %v, want %v (window %v)", in, c.in, w)
			}
			if !in {
				var ok bool
				w, ok = c.s.Next(now)
				if ok == c.noNext {
					t.Fatalf("next window %v found=%v, want found=%v", w, ok, !c.noNext)
				}
				if c.noNext {
					return
				}
			}
			if c.start != "" && !w.Start.Equal(at(c.start)) && !(c.end == "" && w.Start.Before(at(c.now))) {
				t.Fatalf("window starts %v, want %s", w.Start, c.start)
			}
			if c.end != "" && !w.End.Equal(at(c.end)) {
				t.Fatalf("window ends %v, want %s", w.End, c.end)
			}
			if c.durationH > 0 && w.End.Sub(w.Start).Hours() != c.durationH {
				t.Fatalf("window lasts %v, want %vh", w.End.Sub(w.Start), c.durationH)
			}
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	utc := time.UTC
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, utc)
	before := t0.Add(-time.Hour)
	for _, s := range []Schedule{
		{Pattern: "hourly", Zone: utc},
		{Pattern: PatternCustom, Zone: utc},
		{Pattern: PatternCustom, Custom: []DateRange{{t0, before}}, Zone: utc},
		{Pattern: PatternWeekly, AllDay: true, Zone: utc},
		{Pattern: PatternMonthly, AllDay: true, MonthDays: []int{32}, Zone: utc},
		{Pattern: PatternDaily, From: 600, To: 600, Zone: utc},
		{Pattern: PatternDaily, AllDay: true, RangeStart: t0, RangeEnd: &before, Zone: utc},
		{Pattern: PatternDaily, AllDay: true},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v was accepted", s)
		}
	}
	for _, in := range []string{"25:00", "9:00", "12:60", "noon"} {
		if _, err := ParseClock(in); err == nil {
			t.Errorf("ParseClock(%q) accepted", in)
		}
	}
}

func TestDecide(t *testing.T) {
	utc := time.UTC
	day := func(h, m int) time.Time { return time.Date(2026, 12, 1, h, m, 0, 0, utc) }
	nightly := Schedule{Pattern: PatternDaily, From: 22 * 60, To: 6 * 60, RangeStart: day(0, 0), Zone: utc}
	continuous := Continuity{Idle: 10 * time.Minute}
	once := Continuity{OneTime: true}
	cases := []struct {
		name    string
		s       Schedule
		c       Continuity
		now     time.Time
		lastEnd time.Time
		ran     bool
		want    Decision
	}{
		{"no periods, never ran: start by hand", Schedule{}, continuous, day(12, 0), time.Time{}, false, Decision{Run: true}},
		{"no periods, one-time ran once: done", Schedule{}, once, day(12, 0), day(11, 0), true, Decision{Done: true}},
		{"no periods, continuous: idle then again", Schedule{}, continuous, day(12, 5), day(12, 0), true, Decision{Next: day(12, 10)}},
		{"outside the window: wait for it", nightly, continuous, day(12, 0), time.Time{}, false, Decision{Next: day(22, 0)}},
		{"inside: run until the window closes", nightly, continuous, day(23, 0), time.Time{}, false, Decision{Run: true, Until: day(30, 0)}},
		{"inside, idle not over", nightly, continuous, day(23, 5), day(23, 0), true, Decision{Next: day(23, 10)}},
		{"inside, idle reaches past the window: next window", nightly, continuous, day(29, 55), day(29, 52), true, Decision{Next: day(46, 0)}},
		{"one-time ran in this window: next window", nightly, once, day(23, 30), day(23, 0), true, Decision{Next: day(46, 0)}},
		{"default idle is a minute", Schedule{}, Continuity{}, day(12, 0), day(11, 59).Add(30 * time.Second), true, Decision{Next: day(12, 0).Add(30 * time.Second)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Decide(c.s, c.c, c.now, c.lastEnd, c.ran)
			if got.Run != c.want.Run || got.Done != c.want.Done || !got.Until.Equal(c.want.Until) || !got.Next.Equal(c.want.Next) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
