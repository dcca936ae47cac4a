package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// Check is one probe of a connection test.
type Check struct {
	What       string // what was tried
	Permission string // the application permission it needs
	Err        error  // nil when it worked
}

// Probe tries each thing a backup needs, once, and says which permission is
// missing where one is: User.Read.All to list mailboxes, Mail.Read,
// Calendars.Read, Contacts.Read for the folders of mailbox, and
// MailboxFolder.Read.All to track folder trees (optional: without it each
// run walks every folder list), MailboxItem.Export.All for full-fidelity
// export (optional: without it backups fall back to MIME).
func (s *Source) Probe(ctx context.Context, mailbox string) []Check {
	var out []Check
	try := func(what, perm, url string) {
		var v collection[json.RawMessage]
		err := s.getJSON(ctx, url, nil, &v)
		// A throttle says nothing of the permission: asked again once after
		// the server's short hint, so that a busy tenant's checklist does
		// not show a permission as failing.
		var fl *domain.Failure
		if errors.As(err, &fl) && fl.Class == domain.ClassThrottled && fl.RetryAfter <= 5*time.Second {
			select {
			case <-ctx.Done():
			case <-time.After(max(fl.RetryAfter, 200*time.Millisecond)):
				err = s.getJSON(ctx, url, nil, &v)
			}
		}
		out = append(out, Check{What: what, Permission: perm, Err: err})
	}
	try("list users", "User.Read.All", s.c.url(false, "users")+"?$top=1&$select=id")
	try("read mail folders of "+mailbox, "Mail.Read", s.c.url(false, "users", mailbox, "mailFolders")+"?$top=1")
	try("read calendars of "+mailbox, "Calendars.Read", s.c.url(false, "users", mailbox, "calendars")+"?$top=1")
	try("read contact folders of "+mailbox, "Contacts.Read", s.c.url(false, "users", mailbox, "contactFolders")+"?$top=1")
	api, err := s.mailboxRoute(ctx, mailbox)
	tree := Check{What: "track the folder tree of " + mailbox + " (one request per unchanged mailbox; optional)", Permission: "MailboxFolder.Read.All", Err: err}
	if err == nil {
		var v collection[json.RawMessage]
		tree.Err = s.getJSON(ctx, api+"/folders/delta", http.Header{"Prefer": {"odata.maxpagesize=1"}}, &v)
	}
	out = append(out, tree)
	// exportItems with an id that does not exist: a per-item error means the
	// permission is there, ErrorAccessDenied means it is not.
	exp := Check{What: "export items of " + mailbox + " (full fidelity; optional)", Permission: "MailboxItem.Export.All"}
	if err == nil {
		body, _ := json.Marshal(map[string]any{"itemIds": []string{"AAMkAIprobe000000000000000000000"}})
		_, err = s.c.do(ctx, http.MethodPost, api+"/exportItems", nil, body)
		var fl *domain.Failure
		if errors.As(err, &fl) && fl.Code != "ErrorAccessDenied" && fl.Code != "Authorization_RequestDenied" && fl.Code != "HTTP403" {
			err = nil // refused for the bogus item, not for the permission
		}
	}
	exp.Err = err
	return append(out, exp)
}
