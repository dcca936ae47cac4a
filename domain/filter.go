package domain

import (
	"fmt"
	"strings"
	"time"
)

// Time filter modes.
const (
	AgeAll      = "all"       // every item, whatever its age
	AgeOlder    = "older"     // only items older than the period
	AgeNotOlder = "not_older" // only items not older than the period
)

// TimeFilter selects items by age. Appointments are aged by when they
// occur, other items by their last modification; KeepContacts backs up every
// contact whatever its age.
type TimeFilter struct {
	Mode         string
	N            int
	Unit         string // days, weeks, months, years
	KeepContacts bool
}

// Validate explains what is wrong with a filter, if anything.
func (f TimeFilter) Validate() error {
	switch f.Mode {
	case "", AgeAll:
		return nil
	case AgeOlder, AgeNotOlder:
	default:
		return fmt.Errorf("time filter %q: use all, older or not_older", f.Mode)
	}
	if f.N < 1 {
		return fmt.Errorf("the time filter needs a period of at least 1 %s", f.Unit)
	}
	switch f.Unit {
	case "days", "weeks", "months", "years":
		return nil
	}
	return fmt.Errorf("time filter unit %q: use days, weeks, months or years", f.Unit)
}

// Cutoff is the moment that separates old from new at now, counted in
// calendar units in now's zone (6 months before 1 September is 1 March).
func (f TimeFilter) Cutoff(now time.Time) time.Time {
	return Period{N: f.N, Unit: f.Unit}.Before(now)
}

// Keep says whether an item of kind, whose age is measured from at (the
// occurrence of an appointment, the last modification of anything else),
// is backed up at now.
func (f TimeFilter) Keep(kind string, at, now time.Time) bool {
	if f.Mode == "" || f.Mode == AgeAll || kind == "contacts" && f.KeepContacts {
		return true
	}
	older := at.Before(f.Cutoff(now))
	if f.Mode == AgeOlder {
		return older
	}
	return !older
}

// SpecialFolders are the well-known folders a folder filter may exclude,
// by the names Graph and EWS share.
var SpecialFolders = []string{"deleteditems", "junkemail", "drafts", "sentitems", "outbox", "syncissues",
	"conversationhistory", "recoverableitemsdeletions", "archive", "clutter", "scheduled", "searchfolders",
	"conflicts", "localfailures", "serverfailures"}

// FolderFilter excludes special folders, and everything below them.
type FolderFilter struct {
	Exclude []string // well-known names
}

// Validate refuses names that are not special folders.
func (f FolderFilter) Validate() error {
	for _, x := range f.Exclude {
		known := false
		for _, s := range SpecialFolders {
			known = known || strings.EqualFold(x, s)
		}
		if !known {
			return fmt.Errorf("folder filter: %q is not a special folder (%s)", x, strings.Join(SpecialFolders, ", "))
		}
	}
	return nil
}

// NeedsWellKnown says the filter names folders by their well-known names,
// which a source may resolve with requests of their own.
func (f FolderFilter) NeedsWellKnown() bool { return len(f.Exclude) > 0 }

// Apply returns the folders to back up: those not excluded and not inside an
// excluded one (a subfolder of Deleted Items is deleted mail too).
func (f FolderFilter) Apply(folders []Folder) []Folder {
	var excluded []string
	for _, fd := range folders {
		for _, x := range f.Exclude {
			if fd.WellKnown != "" && strings.EqualFold(fd.WellKnown, x) {
				excluded = append(excluded, fd.Path)
			}
		}
	}
	out := make([]Folder, 0, len(folders))
next:
	for _, fd := range folders {
		for _, p := range excluded {
			if fd.Path == p || strings.HasPrefix(fd.Path, p+"/") {
				continue next
			}
		}
		out = append(out, fd)
	}
	return out
}
