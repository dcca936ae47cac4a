package graph

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// MarkerProperty is the restore mark's id as Graph's extended properties
// name it (itemformat.MarkStream has the mark).
const MarkerProperty = "String {" + itemformat.RestoreMarkSet + "} Name " + itemformat.RestoreMarkName

// internetMessageIDProperty is PidTagInternetMessageId as an extended
// property id, which the mailbox API can filter items by.
const internetMessageIDProperty = "String 0x1035"

// exportOnlyWhat names, for a message, what only the mailbox API reaches.
func exportOnlyWhat(mailbox, kind string) string {
	if _, archive := domain.ArchiveOwner(mailbox); archive {
		return "archive mailboxes"
	}
	return kind + " folders"
}

// ensureMailboxFolder is EnsureFolder through the mailbox API, for what
// only it reaches (tasks, notes, archives): each level is looked for among
// its parent's children by name (Exchange compares folder names without
// case) and made with the kind's folder class when missing.
func (s *Source) ensureMailboxFolder(ctx context.Context, mailbox, path, kind string) (string, bool, error) {
	parent, created := "", false
	for _, level := range strings.Split(strings.Trim(path, "/"), "/") {
		segs := []string{"folders"}
		if parent != "" {
			segs = append(segs, parent, "childFolders")
		}
		route, err := s.mailboxRoute(ctx, mailbox, segs...)
		if err != nil {
			return "", false, err
		}
		children, err := all[mailboxFolder](ctx, s, route+"?$top=250&$select=id,displayName")
		if err != nil {
			return "", false, err
		}
		found := ""
		for _, f := range children {
			if strings.EqualFold(f.DisplayName, level) {
				found = f.ID
				break
			}
		}
		if found == "" {
			body, _ := json.Marshal(map[string]string{"displayName": level, "type": domain.FolderClass(kind)})
			resp, err := s.c.do(ctx, http.MethodPost, route, nil, body)
			if err != nil {
				return "", false, err
			}
			var made mailboxFolder
			if fl := DecodeJSON(resp.header, resp.body, &made); fl != nil {
				return "", false, fl
			}
			if made.ID == "" {
				return "", false, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "the created folder has no id"}
			}
			found, created = made.ID, true
		}
		parent = found
	}
	return parent, created, nil
}

// lookupMailboxItem is Lookup through the mailbox API: by the restore
// mark, then (messages) by the Message-ID, both as extended properties.
func (s *Source) lookupMailboxItem(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (string, bool, error) {
	route, err := s.mailboxRoute(ctx, mailbox, "folders", folderID, "items")
	if err != nil {
		return "", false, err
	}
	filters := []string{extendedPropertyFilter(MarkerProperty, it.VersionID)}
	if id := messageID(it); id != "" {
		filters = append(filters, extendedPropertyFilter(internetMessageIDProperty, id))
	}
	for _, f := range filters {
		q := url.Values{"$filter": {f}, "$select": {"id"}, "$top": {"1"}}
		var found collection[struct {
			ID string `json:"id"`
		}]
		if err := s.getJSON(ctx, route+"?"+q.Encode(), nil, &found); err != nil {
			return "", false, err
		}
		if len(found.Value) > 0 {
			return found.Value[0].ID, true, nil
		}
	}
	return "", false, nil
}

func extendedPropertyFilter(id, value string) string {
	return "singleValueExtendedProperties/Any(ep: ep/id eq " + odataString(id) + " and ep/value eq " + odataString(value) + ")"
}

// messageID is a restored message's Message-ID, "" for other kinds or
// when it has none.
func messageID(it pipeline.RestoreItem) string {
	if it.Kind != domain.KindMail {
		return ""
	}
	return itemformat.MessageID(it.Format, it.Content)
}
