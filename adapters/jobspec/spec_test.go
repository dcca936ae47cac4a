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
