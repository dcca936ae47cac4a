package graph

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

// The mailbox API cannot delete items: replacing a task, a note or an
// archive's item is refused with what to do instead, before any request.
func TestReplaceRefusedWhereOnlyTheMailboxAPIReaches(t *testing.T) {
	_, src := serve(t, map[string]recorded{})
	for _, c := range []struct{ mailbox, kind, what string }{
		{"a@x", domain.KindTasks, "tasks folders"},
		{"a@x", domain.KindNotes, "notes folders"},
		{"a@x" + domain.ArchiveSuffix, domain.KindMail, "archive mailboxes"},
	} {
		err := src.Delete(context.Background(), c.mailbox, "f", "i", c.kind)
		var fl *domain.Failure
		if !errors.As(err, &fl) || fl.Code != "ReplaceNotPossible" || !strings.Contains(fl.Message, c.what) || !strings.Contains(fl.Message, "--collisions copy") {
			t.Fatalf("%s %s: %v", c.mailbox, c.kind, err)
		}
	}
}
