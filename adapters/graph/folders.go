package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// mailboxFolder is a folder as the mailbox API (v1.0
// /admin/exchange/mailboxes/{id}/folders) reports it.
type mailboxFolder struct {
	ID             string          `json:"id"`
	DisplayName    string          `json:"displayName"`
	ParentFolderID string          `json:"parentFolderId"`
	Type           string          `json:"type"`
	WellKnownName  string          `json:"wellKnownName"`
	Removed        json.RawMessage `json:"@removed"`
}

// folderDeltaPageSize is the folders asked per page of a hierarchy delta.
const folderDeltaPageSize = 250

// FolderChanges reads a mailbox's folder hierarchy through the mailbox
// API's folder delta: in full when prev has no token (or the server no
// longer knows it), else the changes since prev. One request when nothing
// changed: the deltaLink carries the mailbox id, so no settings/exchange
// either. Without MailboxFolder.Read.All it says
// pipeline.ErrFolderTrackingUnavailable once and for the rest of the run,
// and discovery walks the per-kind folder lists.
func (s *Source) FolderChanges(ctx context.Context, mailbox string, prev domain.FolderTree) (domain.FolderChanges, error) {
	_, archive := domain.ArchiveOwner(mailbox)
	if s.folderAPIDenied.Load() {
		if archive {
			return domain.FolderChanges{}, errArchiveNeedsFolderAPI
		}
		return domain.FolderChanges{}, fmt.Errorf("%w: MailboxFolder.Read.All is missing", pipeline.ErrFolderTrackingUnavailable)
	}
	s.learnKinds(mailbox, prev.Nodes)
	from := ""
	if prev.Token != "" && s.checkStoredLink(prev.Token) == nil {
		from = prev.Token
		s.learnExchangeID(mailbox, from)
	}
	ch, err := s.folderDelta(ctx, mailbox, from)
	if errors.Is(err, errNoArchive) {
		return domain.FolderChanges{Full: true}, nil // no archive: no folders
	}
	var fl *domain.Failure
	if from != "" && errors.As(err, &fl) && fl.Class == domain.ClassResync {
		from = "" // the server forgot the state: list the hierarchy again
		ch, err = s.folderDelta(ctx, mailbox, "")
	}
	if errors.As(err, &fl) && (fl.Code == "ErrorAccessDenied" || fl.Code == "Authorization_RequestDenied" || fl.Code == "HTTP403") {
		if !s.folderAPIDenied.Swap(true) {
			s.cfg.Log.Warn().Str("mailbox", mailbox).Msg("the mailbox API's folder delta is not permitted (MailboxFolder.Read.All missing): reading every folder list in full each run")
		}
		if archive {
			return domain.FolderChanges{}, errArchiveNeedsFolderAPI
		}
		return domain.FolderChanges{}, fmt.Errorf("%w: %v", pipeline.ErrFolderTrackingUnavailable, fl)
	}
	if err != nil {
		return domain.FolderChanges{}, err
	}
	if from == "" {
		ch.Full = true
	} else {
		ch.From = domain.TokenDigest(from)
	}
	s.learnKinds(mailbox, ch.Changed)
	return ch, nil
}

// errArchiveNeedsFolderAPI: an archive has no per-kind folder routes to
// fall back on.
var errArchiveNeedsFolderAPI = &domain.Failure{Class: domain.ClassFatal, Code: "ErrorAccessDenied",
	Message: "archive mailboxes are read through the mailbox API only: the app needs MailboxFolder.Read.All and MailboxItem.Export.All"}

// folderDelta runs one round of the hierarchy delta from link (the first
// request of a full round when link is "").
func (s *Source) folderDelta(ctx context.Context, mailbox, link string) (domain.FolderChanges, error) {
	var ch domain.FolderChanges
	if link == "" {
		var err error
		if link, err = s.mailboxRoute(ctx, mailbox, "folders", "delta"); err != nil {
			return ch, err
		}
	}
	h := http.Header{"Prefer": {"odata.maxpagesize=" + strconv.Itoa(folderDeltaPageSize)}}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			return ch, &domain.Failure{Class: domain.ClassFatal, Code: "EndlessPaging", Message: "the server kept returning nextLinks"}
		}
		var page collection[mailboxFolder]
		if err := s.getJSON(ctx, link, h, &page); err != nil {
			return ch, err
		}
		for _, f := range page.Value {
			if f.ID == "" {
				return ch, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a folder delta entry has no id"}
			}
			if len(f.Removed) > 0 && string(f.Removed) != "null" {
				ch.Removed = append(ch.Removed, f.ID)
				continue
			}
			ch.Changed = append(ch.Changed, domain.FolderNode{ID: f.ID, Parent: f.ParentFolderID, Name: f.DisplayName,
				Kind: domain.KindOfFolderClass(f.Type), WellKnown: f.WellKnownName})
		}
		switch {
		case page.NextLink != "":
			if _, err := CheckLink(s.c.base, page.NextLink); err != nil {
				return ch, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: "nextLink refused: " + err.Error()}
			}
			link = page.NextLink
		case page.DeltaLink != "":
			if _, err := CheckLink(s.c.base, page.DeltaLink); err != nil {
				return ch, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: "deltaLink refused: " + err.Error()}
			}
			ch.Token = page.DeltaLink
			return ch, nil
		default:
			return ch, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a folder delta page has neither @odata.nextLink nor @odata.deltaLink"}
		}
	}
}

// learnKinds remembers the kinds of a mailbox's folders, which List and
// Fetch route by.
func (s *Source) learnKinds(mailbox string, nodes []domain.FolderNode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range nodes {
		if n.Kind != "" {
			s.kinds[mailbox+"\x00"+n.ID] = n.Kind
		}
	}
}

// learnExchangeID takes the mailbox id exportItems addresses from a stored
// hierarchy deltaLink (.../admin/exchange/mailboxes/{id}/folders/delta),
// so that a run which finds changes does not ask settings/exchange again.
func (s *Source) learnExchangeID(mailbox, link string) {
	u, err := url.Parse(link)
	if err != nil {
		return
	}
	seg := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	for i := 0; i+4 < len(seg); i++ {
		if seg[i] == "admin" && seg[i+1] == "exchange" && seg[i+2] == "mailboxes" && seg[i+4] == "folders" {
			id, err := url.PathUnescape(seg[i+3])
			if err != nil || id == "" {
				return
			}
			s.mu.Lock()
			if _, ok := s.exchange[mailbox]; !ok {
				s.exchange[mailbox] = id
			}
			s.mu.Unlock()
			return
		}
	}
}
