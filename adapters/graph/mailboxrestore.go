package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/emersion/go-message/mail"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// The restore mark: a named string property. Graph names it by its set
// and name in extended-property ids; an export stream carries it as a
// named property of the same set and name.
const (
	markerSetText = "6f3e4c1a-9d1b-4b8e-9a61-4d1b8a6c2f10"
	markerName    = "MailvaultRestoreId"
	// MarkerProperty is the mark's id as Graph's extended properties name
	// it; its value is the storage's version id, so that a resumed or
	// repeated restore finds what an earlier one already made.
	MarkerProperty = "String {" + markerSetText + "} Name " + markerName
)

var markerSet = ft.MustGUID(markerSetText)

// internetMessageIDProperty is PidTagInternetMessageId as an extended
// property id, which the mailbox API can filter items by.
const internetMessageIDProperty = "String 0x1035"

// markStream returns the export stream with the restore mark set to
// version (an earlier mark, from a restore this item was backed up after,
// replaced), framed as exports frame it.
func markStream(stream []byte, version string) ([]byte, error) {
	m, err := ft.Decode(stream)
	if err != nil {
		return nil, err
	}
	props := make(ft.Props, 0, len(m.Props)+1)
	for _, p := range m.Props {
		if p.Named != nil && p.Named.ByName && p.Named.Set == markerSet && p.Named.Name == markerName {
			continue
		}
		props = append(props, p)
	}
	m.Props = append(props, ft.WithStringName(ft.String16(0, version), markerSet, markerName))
	return ft.Encode(m)
}

// exportOnlyWhat names, for a message, what only the mailbox API reaches.
func exportOnlyWhat(mailbox, kind string) string {
	if _, archive := domain.ArchiveOwner(mailbox); archive {
		return "archive mailboxes"
	}
	return kind + " folders"
}

// mailboxRoute is a route of the mailbox API for mailbox: on beta for an
// archive (v1.0 serves primary and shared mailboxes only).
func (s *Source) mailboxRoute(ctx context.Context, mailbox string, segments ...string) (string, error) {
	xid, err := s.exchangeID(ctx, mailbox)
	if err != nil {
		return "", err
	}
	_, archive := domain.ArchiveOwner(mailbox)
	return s.c.url(archive, append([]string{"admin", "exchange", "mailboxes", xid}, segments...)...), nil
}

// ensureMailboxFolder is EnsureFolder through the mailbox API, for what
// only it reaches (tasks, notes, archives): each level is looked for among
// its parent's children by name (Exchange compares folder names without
// case) and made with the kind's folder class when missing.
func (s *Source) ensureMailboxFolder(ctx context.Context, mailbox, path, kind string) (string, error) {
	parent := ""
	for _, level := range strings.Split(strings.Trim(path, "/"), "/") {
		segs := []string{"folders"}
		if parent != "" {
			segs = append(segs, parent, "childFolders")
		}
		route, err := s.mailboxRoute(ctx, mailbox, segs...)
		if err != nil {
			return "", err
		}
		children, err := all[mailboxFolder](ctx, s, route+"?$top=250&$select=id,displayName")
		if err != nil {
			return "", err
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
				return "", err
			}
			var made mailboxFolder
			if fl := DecodeJSON(resp.header, resp.body, &made); fl != nil {
				return "", fl
			}
			if made.ID == "" {
				return "", &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "the created folder has no id"}
			}
			found = made.ID
		}
		parent = found
	}
	return parent, nil
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
	raw, err := itemformat.MIME(it.Format, it.Content)
	if err != nil {
		return ""
	}
	h, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return h.Header.Get("Message-Id")
}
