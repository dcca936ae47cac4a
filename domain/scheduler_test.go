package domain

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanTick(t *testing.T) {
	utc := time.UTC
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, utc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	now := at("2026-12-05 23:00")
	nightly := Schedule{Pattern: PatternDaily, From: clock(t, "22:00"), To: clock(t, "06:00"), RangeStart: at("2026-01-01 00:00"), Zone: utc}
	tonight := at("2026-12-05 22:00")
	job := func(name string, mailboxes ...string) Job {
		return Job{Name: name, Connection: "online", Storage: "nas", Mailboxes: mailboxes, Continuity: Continuity{Idle: 10 * time.Minute}}
	}
	oneTime := func(j Job) Job { j.Continuity.OneTime = true; return j }
	scheduled := func(j Job) Job { j.Schedule = nightly; return j }
	otherStorage := func(j Job) Job { j.Storage = "usb"; return j }
	for _, tc := range []struct {
		name string
		jobs map[string]JobStatus
		want Plan
	}{
		{"no jobs", nil, Plan{Next: map[string]time.Time{}}},
		{"a job without activity periods waits for job start",
			map[string]JobStatus{"a": {Job: job("a", "lou")}},
			Plan{Next: map[string]time.Time{}}},
		{"started by hand: runs without limit",
			map[string]JobStatus{"a": {Job: job("a", "lou"), Active: true}},
			Plan{Start: []CycleStart{{Name: "a"}}, Next: map[string]time.Time{"a": {}}}},
		{"idle time since the last cycle: look again when it is over",
			map[string]JobStatus{"a": {Job: job("a", "lou"), Active: true, LastEnd: now.Add(-4 * time.Minute)}},
			Plan{Next: map[string]time.Time{"a": now.Add(6 * time.Minute)}}},
		{"idle time over: the next cycle",
			map[string]JobStatus{"a": {Job: job("a", "lou"), Active: true, LastEnd: now.Add(-10 * time.Minute)}},
			Plan{Start: []CycleStart{{Name: "a"}}, Next: map[string]time.Time{"a": {}}}},
		{"one-time job done after its cycle",
			map[string]JobStatus{"a": {Job: oneTime(job("a", "lou")), Active: true, LastEnd: now.Add(-time.Hour)}},
			Plan{Done: []string{"a"}, Next: map[string]time.Time{}}},
		{"a running job is left alone",
			map[string]JobStatus{"a": {Job: job("a", "lou"), Active: true, Running: true}},
			Plan{Next: map[string]time.Time{}}},
		{"inside its window: runs until the window ends",
			map[string]JobStatus{"a": {Job: scheduled(job("a", "lou"))}},
			Plan{Start: []CycleStart{{Name: "a", Until: at("2026-12-06 06:00"), Window: tonight}}, Next: map[string]time.Time{"a": {}}}},
		{"one-time per window: ran tonight, next tomorrow night",
			map[string]JobStatus{"a": {Job: oneTime(scheduled(job("a", "lou"))), LastEnd: now.Add(-30 * time.Minute), WindowStart: tonight}},
			Plan{Next: map[string]time.Time{"a": at("2026-12-06 22:00")}}},
		{"same mailbox and storage as a running job: waits",
			map[string]JobStatus{"a": {Job: job("a", "lou"), Active: true, Running: true}, "b": {Job: job("b", "LOU", "max"), Active: true}},
			Plan{Next: map[string]time.Time{"b": {}}}},
		{"two jobs touching each other at one tick: the first by name runs",
			map[string]JobStatus{"b": {Job: job("b", "lou"), Active: true}, "a": {Job: job("a", "lou"), Active: true}},
			Plan{Start: []CycleStart{{Name: "a"}}, Next: map[string]time.Time{"a": {}, "b": {}}}},
		{"other mailboxes or another storage: both run",
			map[string]JobStatus{"a": {Job: job("a", "lou"), Active: true}, "b": {Job: job("b", "max"), Active: true}, "c": {Job: otherStorage(job("c", "lou")), Active: true}},
			Plan{Start: []CycleStart{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Next: map[string]time.Time{"a": {}, "b": {}, "c": {}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanTick(tc.jobs, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PlanTick =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}
