package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Job is a backup job as an administrator defines it once and the daemon
// runs for years: what to back up, from which connection, into which
// storage, when, and which items.
type Job struct {
	Name       string
	Connection string
	Storage    string
	// Mailboxes lists the mailboxes, or AllMailboxes takes every mailbox
	// of the connection except ExcludeMailboxes.
	Mailboxes        []string
	AllMailboxes     bool
	ExcludeMailboxes []string
	// PublicFolders by path; "PATH/**" takes every subfolder too.
	PublicFolders []string
	// Archives adds each mailbox's archive, backed up as a mailbox of its
	// own ("ADDRESS (archive)").
	Archives     bool
	Continuity   Continuity
	Schedule     Schedule
	TimeFilter   TimeFilter
	FolderFilter FolderFilter
}

// Validate explains everything wrong with a job definition, one line each.
func (j Job) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if strings.TrimSpace(j.Name) == "" || strings.ContainsAny(j.Name, "/\\\x00") || len(j.Name) > 100 {
		bad("job name %q: give a name of 1 to 100 characters without slashes", j.Name)
	}
	if j.Connection == "" {
		bad("the job has no connection")
	}
	if j.Storage == "" {
		bad("the job has no target storage")
	}
	switch {
	case j.AllMailboxes && len(j.Mailboxes) > 0:
		bad("give either a mailbox list or all mailboxes, not both")
	case !j.AllMailboxes && len(j.Mailboxes) == 0 && len(j.PublicFolders) == 0:
		bad("the job backs up nothing: give mailboxes, all mailboxes, or public folders")
	case !j.AllMailboxes && len(j.ExcludeMailboxes) > 0:
		bad("mailbox exclusions apply to all mailboxes only")
	}
	for _, m := range append(append([]string{}, j.Mailboxes...), j.ExcludeMailboxes...) {
		if !strings.Contains(m, "@") || strings.ContainsAny(m, " /\\") {
			bad("%q is not a mailbox address", m)
		}
	}
	if j.Continuity.Idle < 0 {
		bad("the idle time must not be negative")
	}
	for _, err := range []error{j.Schedule.Validate(), j.TimeFilter.Validate(), j.FolderFilter.Validate()} {
		if err != nil {
			bad("%v", err)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Touches says whether two jobs could write the same mailbox into the same
// storage: such jobs are queued, never run at once.
func (j Job) Touches(o Job) bool {
	if j.Storage != o.Storage || j.Connection != o.Connection {
		return false
	}
	if j.AllMailboxes || o.AllMailboxes {
		return true
	}
	set := map[string]bool{}
	for _, m := range j.Mailboxes {
		set[strings.ToLower(m)] = true
	}
	for _, m := range o.Mailboxes {
		if set[strings.ToLower(m)] {
			return true
		}
	}
	return len(j.PublicFolders) > 0 && len(o.PublicFolders) > 0
}
