package jobspec

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

func TestSpecRoundTripsAndConverts(t *testing.T) {
	in := []byte(`name: holidays
connection: onprem
storage: nas
mailboxes: [a@contoso.test, b@contoso.test]
continuity: one-time
schedule:
  pattern: custom
  periods:
    - {start: "2026-12-24 18:00", end: "2026-12-27 08:00"}
  time_zone: America/New_York
`)
	s, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil || !reflect.DeepEqual(s, again) {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
	j, err := s.Job()
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	if !j.Continuity.OneTime || j.Schedule.Pattern != domain.PatternCustom || !j.Schedule.Custom[0].Start.Equal(time.Date(2026, 12, 24, 18, 0, 0, 0, ny)) {
		t.Fatalf("job %+v", j)
	}
	w, ok := j.Schedule.Current(time.Date(2026, 12, 25, 12, 0, 0, 0, ny))
	if !ok || w.End.Sub(w.Start) != 62*time.Hour {
		t.Fatalf("window %v %v", w, ok)
	}
}

func TestSpecErrors(t *testing.T) {
	base := "name: j\nconnection: c\nstorage: s\nmailboxes: [a@x]\n"
	for _, c := range []struct{ doc, want string }{
		{base + "continuity: sometimes\n", "continuity"},
		{base + "continuity: one-time\nidle: \"00:01:00\"\n", "one-time job has no idle"},
		{base + "schedule: {pattern: daily, time_zone: UTC}\n", "start_date"},
		{base + "schedule: {pattern: daily, start_date: 2026-13-01, time_zone: UTC}\n", "start_date"},
		{base + "schedule: {pattern: daily, all_day: true, from: \"01:00\", to: \"02:00\", start_date: 2026-01-01, time_zone: UTC}\n", "either all_day"},
		{base + "schedule: {pattern: weekly, weekdays: [funday], start_date: 2026-01-01, time_zone: UTC}\n", "day of the week"},
		{"name: j\nconnection: c\nstorage: s\n", "backs up nothing"},
		{base + "all_mailboxes: true\n", "not both"},
		{base + "idle: \"-00:00:01\"\n", `idle "-00:00:01" is not hh:mm:ss`},
		{base + "idle: \"00:00:00\"\n", "waits at least 00:00:01"},
		{base + "all_mailbox: true\n", "5: unknown key all_mailbox (did you mean all_mailboxes?)"},
		{base + "schedule: {pattern: daily, start_date: 2026-01-01, tim_zone: UTC}\n", "unknown key tim_zone (did you mean time_zone?)"},
		{base + "frobnicate: 1\n", "5: unknown key frobnicate"},
	} {
		s, err := Parse([]byte(c.doc))
		if err == nil {
			_, err = s.Job()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.doc, err, c.want)
		}
	}
}

// A schedule without a time zone is in UTC, as the flag form; every
// problem of a job file is reported, not only the first.
func TestSpecDefaultsAndAllErrors(t *testing.T) {
	base := "name: j\nconnection: c\nstorage: s\nmailboxes: [a@x]\n"
	s, err := Parse([]byte(base + "schedule: {pattern: daily, start_date: 2026-01-01}\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Job()
	if err != nil || j.Schedule.Zone != time.UTC {
		t.Fatalf("a schedule without time_zone: %v, zone %v", err, j.Schedule.Zone)
	}
	s, err = Parse([]byte(base + "continuity: sometimes\nschedule: {pattern: weekly, weekdays: [funday], start_date: 2026-13-01, time_zone: Mars/Base}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Job()
	for _, want := range []string{"continuity", "funday", "start_date", "Mars/Base"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the errors %v do not name %s", err, want)
		}
	}
}
