package domain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Period is a span of calendar time: N days, weeks, months or years.
type Period struct {
	N    int    `json:"n"`
	Unit string `json:"unit"` // days, weeks, months, years
}

// ParsePeriod reads "90d", "12w", "6m", "7y" or "90 days".
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return Period{}, fmt.Errorf("period %q: write a number and a unit, as 90d, 12w, 6m or 7y", s)
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 1 {
		return Period{}, fmt.Errorf("period %q: the number must be at least 1", s)
	}
	unit := strings.TrimSpace(s[i:])
	switch unit {
	case "d", "day", "days":
		unit = "days"
	case "w", "week", "weeks":
		unit = "weeks"
	case "m", "month", "months":
		unit = "months"
	case "y", "year", "years":
		unit = "years"
	default:
		return Period{}, fmt.Errorf("period %q: unit %q: use d, w, m or y", s, unit)
	}
	return Period{N: n, Unit: unit}, nil
}

// String is the short form ParsePeriod reads.
func (p Period) String() string { return fmt.Sprintf("%d%s", p.N, p.Unit[:1]) }

// Before is the moment p before t, in calendar units of t's zone.
func (p Period) Before(t time.Time) time.Time {
	switch p.Unit {
	case "days":
		return t.AddDate(0, 0, -p.N)
	case "weeks":
		return t.AddDate(0, 0, -7*p.N)
	case "months":
		return t.AddDate(0, -p.N, 0)
	default:
		return t.AddDate(-p.N, 0, 0)
	}
}

// Retention is a storage's policy for what pruning removes. The zero value
// keeps everything.
type Retention struct {
	// KeepDeletedFor keeps an item deleted at the source for this long after
	// its deletion; nil keeps it forever.
	KeepDeletedFor *Period `json:"keep_deleted_for,omitempty"`
	// KeepVersions keeps the newest N versions of each item; 0 keeps all.
	KeepVersions int `json:"keep_versions,omitempty"`
}

// Validate explains what is wrong with a policy.
func (r Retention) Validate() error {
	if r.KeepVersions < 0 {
		return fmt.Errorf("keep versions %d: use 0 (all) or more", r.KeepVersions)
	}
	if r.KeepDeletedFor != nil && r.KeepDeletedFor.N < 1 {
		return fmt.Errorf("keep deleted items for %d %s: use at least 1", r.KeepDeletedFor.N, r.KeepDeletedFor.Unit)
	}
	return nil
}

// String describes the policy for people.
func (r Retention) String() string {
	var parts []string
	if r.KeepVersions > 0 {
		parts = append(parts, fmt.Sprintf("keep the last %d versions", r.KeepVersions))
	}
	if r.KeepDeletedFor != nil {
		parts = append(parts, fmt.Sprintf("keep deleted items %d %s after deletion", r.KeepDeletedFor.N, r.KeepDeletedFor.Unit))
	}
	if len(parts) == 0 {
		return "keep everything"
	}
	return strings.Join(parts, "; ")
}

// PruneReason says why a version goes.
const (
	PruneDeleted  = "deleted_at_source"
	PruneVersions = "older_version"
)

// Prune decides which versions of one item go at now: stored lists when
// each version was stored; deletedAt is when the source deleted the item
// (zero: it still exists). It returns a reason per index of stored, empty
// for versions that stay.
func (r Retention) Prune(stored []time.Time, deletedAt, now time.Time) []string {
	out := make([]string, len(stored))
	if r.KeepDeletedFor != nil && !deletedAt.IsZero() && deletedAt.Before(r.KeepDeletedFor.Before(now)) {
		for i := range out {
			out[i] = PruneDeleted
		}
		return out
	}
	if r.KeepVersions > 0 && len(stored) > r.KeepVersions {
		order := make([]int, len(stored))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return stored[order[a]].After(stored[order[b]]) })
		for _, i := range order[r.KeepVersions:] {
			out[i] = PruneVersions
		}
	}
	return out
}
