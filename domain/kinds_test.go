package domain

import "testing"

func TestKindOfFolderClass(t *testing.T) {
	for _, c := range []struct{ class, want string }{
		{"", KindMail},
		{"IPF.Note", KindMail},
		{"IPF.Note.OutlookHomepage", KindMail},
		{"IPF.Notes", ""}, // a prefix only as a whole part
		{"IPF.Appointment", KindCalendar},
		{"IPF.Appointment.Birthday", KindCalendar},
		{"IPF.Contact", KindContacts},
		{"IPF.Contact.MOC.QuickContacts", KindContacts},
		{"IPF.Task", KindTasks},
		{"IPF.StickyNote", KindNotes},
		{"IPF.Journal", KindJournal},
		{"Outlook.Reminder", ""},
		{"IPF.Configuration", ""},
	} {
		if got := KindOfFolderClass(c.class); got != c.want {
			t.Errorf("%q: %q, want %q", c.class, got, c.want)
		}
	}
	for _, k := range Kinds() {
		if KindOfFolderClass(FolderClass(k)) != k || ItemClass(k) == "" {
			t.Errorf("%s does not round-trip through its class", k)
		}
	}
}
