// Package jobspec is the YAML form of backup jobs (`mailvault job create -f
// job.yaml`, `job show --format yaml`): a document an administrator writes
// and reads, converted to and from the domain's Job with errors that name
// the line.
package jobspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mailvault/mailvault/domain"
)

// Spec is a job as YAML.
type Spec struct {
	Name             string    `yaml:"name" json:"name"`
	Connection       string    `yaml:"connection" json:"connection"`
	Storage          string    `yaml:"storage" json:"storage"`
	Mailboxes        []string  `yaml:"mailboxes,omitempty" json:"mailboxes,omitempty"`
	AllMailboxes     bool      `yaml:"all_mailboxes,omitempty" json:"all_mailboxes,omitempty"`
	ExcludeMailboxes []string  `yaml:"exclude_mailboxes,omitempty" json:"exclude_mailboxes,omitempty"`
	PublicFolders    []string  `yaml:"public_folders,omitempty" json:"public_folders,omitempty"`
	Archives         bool      `yaml:"archives,omitempty" json:"archives,omitempty"`
	Continuity       string    `yaml:"continuity" json:"continuity"` // continuous | one-time
	Idle             string    `yaml:"idle,omitempty" json:"idle,omitempty"`
	Schedule         *Schedule `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	TimeFilter       *Age      `yaml:"time_filter,omitempty" json:"time_filter,omitempty"`
	ExcludeFolders   []string  `yaml:"exclude_folders,omitempty" json:"exclude_folders,omitempty"`
}

// Schedule is the activity periods.
type Schedule struct {
	Pattern   string   `yaml:"pattern" json:"pattern"`
	AllDay    *bool    `yaml:"all_day,omitempty" json:"all_day,omitempty"`
	From      string   `yaml:"from,omitempty" json:"from,omitempty"`
	To        string   `yaml:"to,omitempty" json:"to,omitempty"`
	Weekdays  []string `yaml:"weekdays,omitempty" json:"weekdays,omitempty"`
	MonthDays []int    `yaml:"month_days,omitempty" json:"month_days,omitempty"`
	Periods   []Period `yaml:"periods,omitempty" json:"periods,omitempty"`
	StartDate string   `yaml:"start_date,omitempty" json:"start_date,omitempty"`
	EndDate   string   `yaml:"end_date,omitempty" json:"end_date,omitempty"` // empty: no end date
	TimeZone  string   `yaml:"time_zone" json:"time_zone"`
}

// Period is one custom period.
type Period struct {
	Start string `yaml:"start" json:"start"`
	End   string `yaml:"end" json:"end"`
}

// Age is the time filter.
type Age struct {
	Mode         string `yaml:"mode" json:"mode"` // all | older | not_older
	N            int    `yaml:"n,omitempty" json:"n,omitempty"`
	Unit         string `yaml:"unit,omitempty" json:"unit,omitempty"`
	KeepContacts bool   `yaml:"keep_contacts,omitempty" json:"keep_contacts,omitempty"`
}

// Parse reads a YAML job; errors start with the line number.
func Parse(data []byte) (Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return s, errors.New("1: the job file is empty")
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
		msg = strings.TrimPrefix(msg, "line ")
		msg = strings.ReplaceAll(msg, "\n  line ", "; ")
		// yaml names Go types ("field all_mailbox not found in type
		// jobspec.Spec"); an administrator wants the key and the one meant.
		msg = unknownField.ReplaceAllStringFunc(msg, func(m string) string {
			sub := unknownField.FindStringSubmatch(m)
			out := "unknown key " + sub[1]
			if near := nearestKey(sub[1], keysOf[sub[2]]); near != "" {
				out += " (did you mean " + near + "?)"
			}
			return out
		})
		return s, errors.New(msg)
	}
	return s, nil
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type jobspec\.(\w+)`)

// keysOf are the YAML keys of each type of the job file.
var keysOf = map[string][]string{
	"Spec": yamlKeys(Spec{}), "Schedule": yamlKeys(Schedule{}), "Period": yamlKeys(Period{}), "Age": yamlKeys(Age{}),
}

func yamlKeys(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// nearestKey is the key closest to a mistyped one, if it is close: a
// prefix of it, or at most two edits away.
func nearestKey(typo string, keys []string) string {
	best, bestD := "", 3
	for _, k := range keys {
		if strings.HasPrefix(k, typo) || strings.HasPrefix(typo, k) {
			return k
		}
		if d := editDistance(typo, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is Levenshtein's distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// YAML renders a spec; Parse reads it back to the same spec.
func (s Spec) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// Job converts a spec to a validated domain job. Every problem is
// reported, not only the first.
func (s Spec) Job() (domain.Job, error) {
	j := domain.Job{Name: s.Name, Connection: s.Connection, Storage: s.Storage, Mailboxes: s.Mailboxes, AllMailboxes: s.AllMailboxes,
		ExcludeMailboxes: s.ExcludeMailboxes, PublicFolders: s.PublicFolders, Archives: s.Archives, FolderFilter: domain.FolderFilter{Exclude: s.ExcludeFolders}}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch s.Continuity {
	case "", "continuous":
		j.Continuity.Idle = domain.DefaultIdle
		if s.Idle != "" {
			d, err := parseHMS(s.Idle)
			switch {
			case err != nil:
				errs = append(errs, err)
			case d <= 0:
				fail("idle %q: a continuous job waits at least 00:00:01 between runs", s.Idle)
			default:
				j.Continuity.Idle = d
			}
		}
	case "one-time":
		j.Continuity.OneTime = true
		if s.Idle != "" {
			fail("a one-time job has no idle time")
		}
	default:
		fail("continuity %q: use continuous or one-time", s.Continuity)
	}
	if sc := s.Schedule; sc != nil {
		j.Schedule = s.schedule(sc, fail)
	}
	if a := s.TimeFilter; a != nil {
		j.TimeFilter = domain.TimeFilter{Mode: a.Mode, N: a.N, Unit: a.Unit, KeepContacts: a.KeepContacts}
	}
	if err := j.Validate(); err != nil {
		errs = append(errs, err)
	}
	return j, errors.Join(errs...)
}

// schedule converts the activity periods, reporting each problem to fail.
func (s Spec) schedule(sc *Schedule, fail func(string, ...any)) domain.Schedule {
	zone := time.UTC // as the flag form: a schedule without a zone is in UTC
	if sc.TimeZone != "" {
		z, err := time.LoadLocation(sc.TimeZone)
		if err != nil {
			fail("time zone %q is not a zone name such as Europe/Berlin or UTC", sc.TimeZone)
		} else {
			zone = z
		}
	}
	out := domain.Schedule{Pattern: sc.Pattern, AllDay: sc.AllDay == nil || *sc.AllDay, MonthDays: sc.MonthDays, Zone: zone}
	if sc.From != "" || sc.To != "" {
		if sc.AllDay != nil && *sc.AllDay {
			fail("give either all_day or from/to, not both")
		}
		out.AllDay = false
		var err error
		if out.From, err = domain.ParseClock(sc.From); err != nil {
			fail("schedule from: %v", err)
		}
		if out.To, err = domain.ParseClock(sc.To); err != nil {
			fail("schedule to: %v", err)
		}
	}
	for _, w := range sc.Weekdays {
		d, ok := weekdays[strings.ToLower(w)[:min(3, len(w))]]
		if !ok {
			fail("%q is not a day of the week (mon, tue, ...)", w)
			continue
		}
		out.Weekdays = append(out.Weekdays, d)
	}
	for i, p := range sc.Periods {
		a, err1 := time.ParseInLocation("2006-01-02 15:04", p.Start, zone)
		b, err2 := time.ParseInLocation("2006-01-02 15:04", p.End, zone)
		if err1 != nil || err2 != nil {
			fail("period %d: dates are \"YYYY-MM-DD hh:mm\"", i+1)
			continue
		}
		out.Custom = append(out.Custom, domain.DateRange{Start: a, End: b})
	}
	if sc.Pattern != domain.PatternCustom {
		switch start, err := time.ParseInLocation(time.DateOnly, sc.StartDate, zone); {
		case sc.StartDate == "":
			fail("the schedule needs a start_date (YYYY-MM-DD)")
		case err != nil:
			fail("start_date %q is not YYYY-MM-DD", sc.StartDate)
		default:
			out.RangeStart = start
		}
		if sc.EndDate != "" {
			e, err := time.ParseInLocation(time.DateOnly, sc.EndDate, zone)
			if err != nil {
				fail("end_date %q is not YYYY-MM-DD", sc.EndDate)
			} else {
				out.RangeEnd = &e
			}
		}
	}
	return out
}

// hms is hh:mm:ss, digits only: no sign.
var hms = regexp.MustCompile(`^[0-9]{2,}:[0-9]{2}:[0-9]{2}$`)

// parseHMS reads hh:mm:ss.
func parseHMS(s string) (time.Duration, error) {
	var h, m, sec int
	if !hms.MatchString(s) {
		return 0, fmt.Errorf("idle %q is not hh:mm:ss", s)
	}
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec); err != nil || m > 59 || sec > 59 {
		return 0, fmt.Errorf("idle %q is not hh:mm:ss", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}
