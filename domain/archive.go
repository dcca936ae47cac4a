package domain

import "strings"

// ArchiveSuffix ends the name an archive mailbox (In-Place Archive) is
// backed up under: "ADDRESS (archive)", a mailbox of its own in reports,
// resume state and storage, whichever server it came from.
const ArchiveSuffix = " (archive)"

// ArchiveOwner tells whether mailbox names an archive, and whose.
func ArchiveOwner(mailbox string) (owner string, archive bool) {
	return strings.CutSuffix(mailbox, ArchiveSuffix)
}

// WithArchives follows each mailbox of list with its archive (one named as
// an archive already is kept as it is).
func WithArchives(list []string) []string {
	out := make([]string, 0, 2*len(list))
	for _, m := range list {
		out = append(out, m)
		if _, archive := ArchiveOwner(m); !archive {
			out = append(out, m+ArchiveSuffix)
		}
	}
	return out
}
