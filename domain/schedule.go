package domain

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Continuity says whether a job runs cycle after cycle or once.
type Continuity struct {
	// OneTime: one cycle per activity period (or, without periods, one
	// cycle and the job stops).
	OneTime bool
	// Idle separates the cycles of a continuous job.
	Idle time.Duration
}

// DefaultIdle is the idle time between cycles of a continuous job.
const DefaultIdle = time.Minute

// Pattern kinds: one per job.
const (
	PatternNone    = ""
	PatternCustom  = "custom"
	PatternDaily   = "daily"
	PatternWeekly  = "weekly"
	PatternMonthly = "monthly"
)

// ClockTime is a time of day, minutes after midnight.
type ClockTime int

// ParseClock reads "hh:mm".
func ParseClock(s string) (ClockTime, error) {
	var h, m int
	if _, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || h < 0 || h > 24 || m < 0 || m > 59 || h == 24 && m != 0 || len(s) != 5 {
		return 0, fmt.Errorf("%q is not a time of day (use hh:mm, 00:00 to 24:00)", s)
	}
	return ClockTime(h*60 + m), nil
}

func (c ClockTime) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// DateRange is one period of a custom pattern, start included, end not.
type DateRange struct {
	Start, End time.Time
}

// Schedule is a job's activity periods: when cycles may start and run. The
// zero Schedule has no activity period: the job only runs when started by
// hand.
type Schedule struct {
	Pattern string
	// Custom periods, for PatternCustom.
	Custom []DateRange
	// AllDay, or the window [From, To) of each active day; a window whose
	// end is before its start runs past midnight into the next day.
	AllDay   bool
	From, To ClockTime
	// Weekdays for PatternWeekly, month days (1-31) for PatternMonthly.
	Weekdays  []time.Weekday
	MonthDays []int
	// Range of activity: from the start date, to the end date included,
	// or with no end date.
	RangeStart time.Time
	RangeEnd   *time.Time
	// Zone is the time zone every date and time of the schedule is in.
	Zone *time.Location
}

// Validate explains what is wrong with a schedule, if anything.
func (s Schedule) Validate() error {
	switch s.Pattern {
	case PatternNone:
		return nil
	case PatternCustom:
		if len(s.Custom) == 0 {
			return errors.New("a custom activity pattern needs at least one period")
		}
		for i, r := range s.Custom {
			if !r.End.After(r.Start) {
				return fmt.Errorf("custom period %d ends (%s) before it starts (%s)", i+1, r.End.Format(time.DateTime), r.Start.Format(time.DateTime))
			}
		}
		return nil
	case PatternDaily:
	case PatternWeekly:
		if len(s.Weekdays) == 0 {
			return errors.New("a weekly activity pattern needs at least one day of the week")
		}
	case PatternMonthly:
		if len(s.MonthDays) == 0 {
			return errors.New("a monthly activity pattern needs at least one day of the month")
		}
		for _, d := range s.MonthDays {
			if d < 1 || d > 31 {
				return fmt.Errorf("day of the month %d is outside 1..31", d)
			}
		}
	default:
		return fmt.Errorf("activity pattern %q: use custom, daily, weekly or monthly", s.Pattern)
	}
	if !s.AllDay && s.From == s.To {
		return fmt.Errorf("the daily window %s-%s is empty (use all day instead)", s.From, s.To)
	}
	if s.RangeEnd != nil && s.RangeEnd.Before(s.RangeStart) {
		return errors.New("the range of activity ends before it starts")
	}
	if s.Zone == nil {
		return errors.New("the schedule has no time zone")
	}
	return nil
}

// Window is one interval of activity, start included, end not.
type Window struct{ Start, End time.Time }

// Contains reports whether t is inside w.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// dayWindow is the activity window of a calendar day in the schedule's
// zone: midnight to midnight when all day (23 or 25 hours on DST days),
// else the wall-clock window, which time.Date maps through DST gaps and
// folds.
func (s Schedule) dayWindow(y int, m time.Month, d int) Window {
	if s.AllDay {
		return Window{time.Date(y, m, d, 0, 0, 0, 0, s.Zone), time.Date(y, m, d+1, 0, 0, 0, 0, s.Zone)}
	}
	start := time.Date(y, m, d, int(s.From)/60, int(s.From)%60, 0, 0, s.Zone)
	endDay := d
	if s.To <= s.From {
		endDay++ // past midnight
	}
	return Window{start, time.Date(y, m, endDay, int(s.To)/60, int(s.To)%60, 0, 0, s.Zone)}
}

// activeDay says whether the pattern is active on a calendar day.
func (s Schedule) activeDay(y int, m time.Month, d int) bool {
	day := time.Date(y, m, d, 12, 0, 0, 0, s.Zone)
	start := time.Date(s.RangeStart.Year(), s.RangeStart.Month(), s.RangeStart.Day(), 0, 0, 0, 0, s.Zone)
	if day.Before(start) {
		return false
	}
	if s.RangeEnd != nil {
		end := time.Date(s.RangeEnd.Year(), s.RangeEnd.Month(), s.RangeEnd.Day()+1, 0, 0, 0, 0, s.Zone)
		if !day.Before(end) {
			return false
		}
	}
	switch s.Pattern {
	case PatternDaily:
		return true
	case PatternWeekly:
		for _, w := range s.Weekdays {
			if day.Weekday() == w {
				return true
			}
		}
	case PatternMonthly:
		for _, md := range s.MonthDays {
			if md == d {
				return true
			}
		}
	}
	return false
}

// windows lists the activity windows that end after t, in order, looking
// ahead at most horizon days.
func (s Schedule) windows(t time.Time, horizon int) []Window {
	var out []Window
	if s.Pattern == PatternCustom {
		for _, r := range s.Custom {
			if r.End.After(t) {
				out = append(out, Window(r))
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
		return merge(out)
	}
	local := t.In(s.Zone)
	// Start a day early: yesterday's window may run past midnight.
	y0, m0, d0 := local.Date()
	for i := -1; i <= horizon; i++ {
		// Normalise first: "April 31" is 1 May, and must count as the 1st.
		y, m, d := time.Date(y0, m0, d0+i, 12, 0, 0, 0, s.Zone).Date()
		if !s.activeDay(y, m, d) {
			continue
		}
		if w := s.dayWindow(y, m, d); w.End.After(t) {
			out = append(out, w)
		}
	}
	return merge(out)
}

// merge joins windows that touch or overlap (consecutive all-day windows
// are one long activity).
func merge(ws []Window) []Window {
	var out []Window
	for _, w := range ws {
		if n := len(out); n > 0 && !w.Start.After(out[n-1].End) {
			if w.End.After(out[n-1].End) {
				out[n-1].End = w.End
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

// horizon bounds how far ahead a schedule is searched: a monthly pattern on
// the 31st waits at most a few months.
const horizon = 400

// Current returns the activity window containing t, if any.
func (s Schedule) Current(t time.Time) (Window, bool) {
	if s.Pattern == PatternNone {
		return Window{}, false
	}
	for _, w := range s.windows(t, 1) {
		if w.Contains(t) {
			return w, true
		}
	}
	return Window{}, false
}

// Next returns the next activity window starting after t (or containing
// it), if there is one.
func (s Schedule) Next(t time.Time) (Window, bool) {
	if s.Pattern == PatternNone {
		return Window{}, false
	}
	for _, w := range s.windows(t, horizon) {
		if w.End.After(t) {
			return w, true
		}
	}
	return Window{}, false
}

// Decision is what the scheduler does with a job at a moment.
type Decision struct {
	// Run: start (or continue) a cycle now; it must stop at a checkpoint
	// by Until (zero: no limit).
	Run   bool
	Until time.Time
	// Next is when to look again (zero: never by itself).
	Next time.Time
	// Done: the job has nothing more to do (a finished one-time job).
	Done bool
}

// Decide is the scheduler's rule for one job: now, when its last cycle
// ended (zero: never ran), and whether a cycle ran in the current window.
func Decide(s Schedule, c Continuity, now, lastEnd time.Time, ranInWindow bool) Decision {
	idle := c.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	if s.Pattern == PatternNone {
		// Without activity periods a job runs only when started by hand: a
		// one-time job then runs one cycle, a continuous one keeps cycling
		// until stopped.
		switch {
		case c.OneTime && !lastEnd.IsZero():
			return Decision{Done: true}
		case !lastEnd.IsZero() && now.Before(lastEnd.Add(idle)):
			return Decision{Next: lastEnd.Add(idle)}
		}
		return Decision{Run: true}
	}
	w, in := s.Current(now)
	if !in {
		if next, ok := s.Next(now); ok {
			return Decision{Next: next.Start}
		}
		return Decision{Done: true} // the range of activity is over
	}
	if c.OneTime && ranInWindow {
		if next, ok := s.Next(w.End); ok {
			return Decision{Next: next.Start}
		}
		return Decision{Done: true}
	}
	if !lastEnd.IsZero() && now.Before(lastEnd.Add(idle)) {
		at := lastEnd.Add(idle)
		if at.Before(w.End) {
			return Decision{Next: at}
		}
		if next, ok := s.Next(w.End); ok {
			return Decision{Next: next.Start}
		}
		return Decision{Done: true}
	}
	return Decision{Run: true, Until: w.End}
}
