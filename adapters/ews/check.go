package ews

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailvault/mailvault/domain"
)

// Check is one probe of a connection test.
type Check struct {
	What string
	Err  error // nil when it worked; the message says what is missing
}

// Probe logs on and opens a mailbox (and the public folders when asked) the
// way a backup does, and explains failures in the administrator's terms.
func (s *Source) Probe(ctx context.Context, mailbox string, publicFolders bool) []Check {
	explain := func(err error) error {
		var fl *domain.Failure
		if !errors.As(err, &fl) {
			return err
		}
		switch fl.Code {
		case "Unauthorized":
			return fmt.Errorf("logon failed: %s", fl.Message)
		case "ErrorImpersonateUserDenied", "ErrorImpersonationFailed":
			return fmt.Errorf("the account may not impersonate %s: give it the ApplicationImpersonation role (%s)", mailbox, fl.Code)
		case "ErrorAccessDenied", "ErrorItemNotFound", "ErrorFolderNotFound":
			return fmt.Errorf("no access to %s: give the account FullAccess, or use --impersonate with ApplicationImpersonation (%s)", mailbox, fl.Code)
		case "ErrorNonExistentMailbox":
			return fmt.Errorf("%s has no mailbox on this server (%s)", mailbox, fl.Code)
		}
		return err
	}
	var out []Check
	if mailbox != "" {
		_, err := s.t.call(ctx, s.impersonation(mailbox), getFolderRequest([]folderRef{s.distinguished(mailbox, "msgfolderroot")}))
		if err == nil {
			_, err = s.Folders(ctx, mailbox)
		}
		out = append(out, Check{What: "open the mailbox " + mailbox, Err: explain(err)})
	}
	if publicFolders {
		inner, err := s.t.call(ctx, "", findFolderRequest(folderRef{distinguished: "publicfoldersroot"}, 0))
		if err == nil {
			var msgs []findFolderMessage
			if msgs, err = messagesOf[findFolderMessage](inner); err == nil && len(msgs) == 1 {
				if f := messageFailure(msgs[0].responseMessage); f != nil {
					err = f
				}
			}
		}
		out = append(out, Check{What: "list the public folders", Err: explain(err)})
	}
	return out
}
