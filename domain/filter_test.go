package domain

import (
	"strings"
	"testing"
	"time"
)

// The seed's example: today is 1 September 2015 and the filter keeps items
// not older than 6 months, so everything modified since 1 March 2015 is
// backed up; appointments count by when they occur, and contacts may be
// kept whatever their age.
func TestTimeFilterSeedExample(t *testing.T) {
	now := time.Date(2015, 9, 1, 12, 0, 0, 0, time.UTC)
	f := TimeFilter{Mode: AgeNotOlder, N: 6, Unit: "months"}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := f.Cutoff(now); !c.Equal(time.Date(2015, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("cutoff %v", c)
	}
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	cases := []struct {
		kind string
		at   time.Time
		keep bool
	}{
		{"mail", day(2015, 8, 31), true},
		{"mail", day(2015, 3, 1), true},
		{"mail", day(2015, 2, 28), false},
		{"calendar", day(2016, 1, 10), true}, // a future meeting is not old
		{"calendar", day(2014, 12, 24), false},
		{"contacts", day(2010, 1, 1), false},
	}
	for _, c := range cases {
		if got := f.Keep(c.kind, c.at, now); got != c.keep {
			t.Errorf("%s at %s: keep %v, want %v", c.kind, c.at.Format(time.DateOnly), got, c.keep)
		}
	}
	f.KeepContacts = true
	if !f.Keep("contacts", day(2010, 1, 1), now) {
		t.Error("KeepContacts dropped an old contact")
	}
	older := TimeFilter{Mode: AgeOlder, N: 2, Unit: "weeks"}
	if older.Keep("mail", day(2015, 8, 25), now) || !older.Keep("mail", day(2015, 8, 10), now) {
		t.Error("older than 2 weeks")
	}
	for _, bad := range []TimeFilter{{Mode: "newer"}, {Mode: AgeOlder, N: 0, Unit: "days"}, {Mode: AgeNotOlder, N: 3, Unit: "fortnights"}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestFolderFilterExcludesSpecialFoldersAndTheirChildren(t *testing.T) {
	folders := []Folder{
		{Path: "Inbox", WellKnown: "inbox"}, {Path: "Inbox/Projects"},
		{Path: "Deleted Items", WellKnown: "deleteditems"}, {Path: "Deleted Items/Old"},
		{Path: "Junk Email", WellKnown: "junkemail"}, {Path: "Sent Items", WellKnown: "sentitems"},
		{Path: "Deleted Items Archive"}, // a user's folder with a similar name stays
	}
	f := FolderFilter{Exclude: []string{"deleteditems", "JunkEmail"}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fd := range f.Apply(folders) {
		got = append(got, fd.Path)
	}
	if strings.Join(got, ",") != "Inbox,Inbox/Projects,Sent Items,Deleted Items Archive" {
		t.Fatalf("kept %v", got)
	}
	if (FolderFilter{Exclude: []string{"inbox"}}).Validate() == nil {
		t.Fatal("excluding the Inbox as a special folder was accepted")
	}
}

func TestAlertSettings(t *testing.T) {
	ok := AlertSettings{Host: "smtp.contoso.test", Port: 587, From: "mv@contoso.test", To: []string{"admin@contoso.test"}, TLS: "mandatory", On: []string{AlertBadNews}, Daily: "08:00"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := AlertSettings{Port: 0, From: "nope", TLS: "maybe", On: []string{"all"}, Daily: "8am"}
	err := bad.Validate()
	for _, want := range []string{"host", "port", "from", "recipient", "starttls", "alert kind", "HH:MM"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	for _, c := range []struct {
		on    []string
		state RunState
		want  bool
	}{
		{[]string{AlertBadNews}, StateWarnings, true},
		{[]string{AlertBadNews}, StateNotFinished, true},
		{[]string{AlertBadNews}, StateFinished, false},
		{[]string{AlertGoodNews}, StateFinished, true},
		{nil, StateWarnings, false},
	} {
		if got := (AlertSettings{On: c.on}).Wants(c.state); got != c.want {
			t.Errorf("on %v, %s: %v", c.on, c.state, got)
		}
	}
	loc := time.FixedZone("X", 3600)
	if day, due := ok.DailyDue(time.Date(2026, 12, 1, 7, 59, 0, 0, loc)); due || day != "2026-12-01" {
		t.Errorf("due before 08:00")
	}
	if _, due := ok.DailyDue(time.Date(2026, 12, 1, 8, 0, 0, 0, loc)); !due {
		t.Errorf("not due at 08:00")
	}
}
