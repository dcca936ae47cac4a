package app

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/vault"
)

// Selection chooses stored versions for browsing, export and restore. Its
// exported fields are the selection as an operation's input carries it;
// prepare derives the rest.
type Selection struct {
	Mailbox string `json:"mailbox,omitempty"`
	Folder  string `json:"folder,omitempty"`
	Source  string `json:"source,omitempty"`
	Subject string `json:"subject,omitempty"`
	From    string `json:"from,omitempty"`
	// Recipient: a To or Cc recipient (name or address) contains it.
	Recipient   string   `json:"recipient,omitempty"`
	After       string   `json:"after,omitempty"`
	Before      string   `json:"before,omitempty"`
	Items       []string `json:"items,omitempty"`
	AllVersions bool     `json:"all_versions,omitempty"`
	// AsOf chooses the mailbox as it was then: of each item, the newest
	// version stored by that time, and no item the source had deleted by
	// then.
	AsOf              string `json:"as_of,omitempty"`
	afterT, beforeT   time.Time
	asOfT             time.Time
	subjectLC, fromLC string
	recipientLC       string
	itemSet           map[string]bool
}

// Check says whether the selection reads (dates that parse), for a caller
// that wants to refuse bad input before doing anything else.
func (f Selection) Check() error { return f.prepare() }

// key names the selection, for an export that continues an interrupted one.
func (f *Selection) key() string {
	items := make([]string, 0, len(f.itemSet))
	for id := range f.itemSet {
		items = append(items, id)
	}
	sort.Strings(items)
	return strings.Join([]string{f.Mailbox, f.Folder, f.Source, f.Subject, f.From, f.After, f.Before, strings.Join(items, ","), f.AsOf, f.Recipient}, "\x00")
}

func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, Invalid("--%s %q: give a date (2025-06-01) or an RFC 3339 time", flag, s)
}

func (f *Selection) prepare() error {
	var err error
	if f.afterT, err = parseWhen("after", f.After); err != nil {
		return err
	}
	if f.beforeT, err = parseWhen("before", f.Before); err != nil {
		return err
	}
	if f.asOfT, err = parseWhen("as-of", f.AsOf); err != nil {
		return err
	}
	if f.AsOf != "" && len(f.AsOf) == len("2006-01-02") {
		f.asOfT = f.asOfT.Add(24*time.Hour - time.Nanosecond) // a day: as it was at its end
	}
	f.subjectLC, f.fromLC, f.recipientLC = strings.ToLower(f.Subject), strings.ToLower(f.From), strings.ToLower(f.Recipient)
	f.Folder = strings.Trim(f.Folder, "/")
	f.itemSet = nil
	if len(f.Items) > 0 {
		f.itemSet = map[string]bool{}
		for _, arg := range f.Items {
			for _, id := range strings.Split(arg, ",") {
				if id = strings.ToLower(strings.TrimSpace(id)); id != "" {
					f.itemSet[id] = true
				}
			}
		}
	}
	return nil
}

// When is the date an item is found by: its own date, else its
// modification time, else when it was stored.
func When(v vault.Version) time.Time {
	switch {
	case !v.Date.IsZero():
		return v.Date
	case !v.ItemTime.IsZero():
		return v.ItemTime
	}
	return v.StoredAt
}

func (f *Selection) match(v vault.Version) bool {
	if f.Mailbox != "" && !strings.EqualFold(f.Mailbox, v.Mailbox) {
		return false
	}
	if f.Source != "" && !strings.EqualFold(f.Source, v.Source) {
		return false
	}
	if f.Folder != "" && v.FolderPath != f.Folder && !strings.HasPrefix(v.FolderPath, f.Folder+"/") {
		return false
	}
	if f.itemSet != nil && !f.itemSet[v.ID] && !f.itemSet[strings.ToLower(v.ItemID)] {
		return false
	}
	if f.subjectLC != "" && !strings.Contains(strings.ToLower(v.Subject), f.subjectLC) {
		return false
	}
	if f.fromLC != "" && !strings.Contains(strings.ToLower(v.From), f.fromLC) {
		return false
	}
	if f.recipientLC != "" && !strings.Contains(strings.ToLower(v.To), f.recipientLC) {
		return false
	}
	t := When(v)
	if !f.afterT.IsZero() && t.Before(f.afterT) {
		return false
	}
	if !f.beforeT.IsZero() && !t.Before(f.beforeT) {
		return false
	}
	return true
}

// eachSelected calls fn for the newest stored version of every item the
// selection chooses (every version with AllVersions). It streams the
// index: versions of one item are adjacent in it.
func eachSelected(v *vault.Vault, f *Selection, fn func(vault.Version) error) error {
	var latest *vault.Version
	flush := func() error {
		if latest == nil {
			return nil
		}
		cur := *latest
		latest = nil
		if f.match(cur) {
			return fn(cur)
		}
		return nil
	}
	err := v.Walk(f.Mailbox, func(ver vault.Version) error {
		if !f.asOfT.IsZero() && (ver.StoredAt.After(f.asOfT) || !ver.DeletedAt.IsZero() && !ver.DeletedAt.After(f.asOfT)) {
			return nil // not stored yet then, or already deleted at the source
		}
		if f.AllVersions {
			if f.match(ver) {
				return fn(ver)
			}
			return nil
		}
		if latest != nil && (latest.Mailbox != ver.Mailbox || latest.Source != ver.Source || latest.FolderID != ver.FolderID || latest.ItemID != ver.ItemID) {
			if err := flush(); err != nil {
				return err
			}
		}
		if latest == nil || ver.StoredAt.After(latest.StoredAt) {
			c := ver
			latest = &c
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// sourcesOf counts the selected items per mailbox and source; a mailbox
// backed up through two connections is two backups, and restoring or
// exporting both would give every item twice.
func sourcesOf(v *vault.Vault, f *Selection) (items int, multi map[string][]string, err error) {
	seen := map[string]map[string]bool{}
	err = eachSelected(v, f, func(ver vault.Version) error {
		items++
		if seen[ver.Mailbox] == nil {
			seen[ver.Mailbox] = map[string]bool{}
		}
		seen[ver.Mailbox][ver.Source] = true
		return nil
	})
	multi = map[string][]string{}
	for mbx, set := range seen {
		if len(set) > 1 {
			for s := range set {
				multi[mbx] = append(multi[mbx], s)
			}
			sort.Strings(multi[mbx])
		}
	}
	return items, multi, err
}

// ambiguousSources refuses a selection that spans sources.
func ambiguousSources(multi map[string][]string) error {
	var parts []string
	for mbx, srcs := range multi {
		parts = append(parts, fmt.Sprintf("%s (%s)", mbx, strings.Join(srcs, ", ")))
	}
	sort.Strings(parts)
	return Invalid("the selection holds mailboxes backed up from more than one source: %s; choose one with --source", strings.Join(parts, "; "))
}
