package domain

import "strings"

// Kinds of folder content mailvault backs up. Exchange tells them apart by
// the folder's class (PidTagContainerClass); each kind's items carry a
// message class of their own.
const (
	KindMail     = "mail"
	KindCalendar = "calendar"
	KindContacts = "contacts"
	KindTasks    = "tasks"
	KindNotes    = "notes"
	KindJournal  = "journal"
)

// folderKinds pairs each kind with its folder class and its items' class
// ([MS-OXOSFLD], [MS-OXOCAL], [MS-OXOCNTC], [MS-OXOTASK], [MS-OXONOTE],
// [MS-OXOJRNL]).
var folderKinds = []struct{ kind, folderClass, itemClass string }{
	{KindMail, "IPF.Note", "IPM.Note"},
	{KindCalendar, "IPF.Appointment", "IPM.Appointment"},
	{KindContacts, "IPF.Contact", "IPM.Contact"},
	{KindTasks, "IPF.Task", "IPM.Task"},
	{KindNotes, "IPF.StickyNote", "IPM.StickyNote"},
	{KindJournal, "IPF.Journal", "IPM.Activity"},
}

// Kinds lists the kinds, mail first.
func Kinds() []string {
	out := make([]string, len(folderKinds))
	for i, k := range folderKinds {
		out[i] = k.kind
	}
	return out
}

// FolderClass is the class a folder of kind is made with; "" for no kind
// of these.
func FolderClass(kind string) string {
	for _, k := range folderKinds {
		if k.kind == kind {
			return k.folderClass
		}
	}
	return ""
}

// ItemClass is the message class of a kind's items; "" for no kind of
// these.
func ItemClass(kind string) string {
	for _, k := range folderKinds {
		if k.kind == kind {
			return k.itemClass
		}
	}
	return ""
}

// KindOfFolderClass is the kind a folder of class is backed up as: a
// class or one derived from it ("IPF.Contact.MOC.QuickContacts"); a folder
// without a class is a mail folder, as Outlook shows it. "" for the
// classes mailvault does not back up (search folders' "Outlook.Reminder",
// configuration and others).
func KindOfFolderClass(class string) string {
	if class == "" {
		return KindMail
	}
	for _, k := range folderKinds {
		if class == k.folderClass || strings.HasPrefix(class, k.folderClass+".") {
			return k.kind
		}
	}
	return ""
}
