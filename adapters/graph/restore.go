package graph

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// MaxInlineAttachment is the largest attachment sent inside the create
// request; bigger ones go through an upload session, as Graph requires for
// attachments over 3 MB.
const MaxInlineAttachment = 3 << 20

// uploadChunk is a multiple of 320 KiB, as upload sessions require.
const uploadChunk = 12 * 320 << 10

var _ pipeline.RestoreTarget = (*Source)(nil)

func collectionOf(kind string) (folders, items string) {
	switch kind {
	case domain.KindCalendar:
		return "calendars", "events"
	case domain.KindContacts:
		return "contactFolders", "contacts"
	}
	return "mailFolders", "messages"
}

// immutableIDs asks for the ids the import session and the item routes
// answer with, so that what Lookup finds is what Create made.
var immutableIDs = http.Header{"Prefer": {preferImmutable}}

func odataString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// EnsureFolder implements pipeline.RestoreTarget. Calendars are flat in
// Graph: a nested calendar path becomes one calendar named "A - B".
func (s *Source) EnsureFolder(ctx context.Context, mailbox, path, kind string) (string, bool, error) {
	if exportOnly(mailbox, kind) {
		// Graph's per-kind routes make mail, calendar and contact folders
		// of a primary mailbox only: a task or note folder made as a mail
		// folder would not be one in Outlook, and an archive has no
		// per-kind routes at all.
		return s.ensureMailboxFolder(ctx, mailbox, path, kind)
	}
	coll, _ := collectionOf(kind)
	levels := strings.Split(strings.Trim(path, "/"), "/")
	if kind == domain.KindCalendar {
		levels = []string{strings.Join(levels, " - ")}
	}
	nameField := "displayName"
	if kind == domain.KindCalendar {
		nameField = "name"
	}
	parent, created := "", false
	if kind == domain.KindMail {
		parent = "msgfolderroot"
	}
	for _, level := range levels {
		list := s.c.url(false, "users", mailbox, coll)
		create := list
		if parent != "" {
			list = s.c.url(false, "users", mailbox, coll, parent, "childFolders")
			create = list
		}
		q := url.Values{"$filter": {nameField + " eq " + odataString(level)}, "$select": {"id"}}
		var found collection[struct {
			ID string `json:"id"`
		}]
		if err := s.getJSON(ctx, list+"?"+q.Encode(), nil, &found); err != nil {
			return "", false, err
		}
		if len(found.Value) > 0 {
			parent = found.Value[0].ID
			continue
		}
		body, _ := json.Marshal(map[string]string{nameField: level})
		resp, err := s.c.do(ctx, http.MethodPost, create, nil, body)
		if err != nil {
			return "", false, err
		}
		var made struct {
			ID string `json:"id"`
		}
		if fl := DecodeJSON(resp.header, resp.body, &made); fl != nil {
			return "", false, fl
		}
		parent, created = made.ID, true
	}
	return parent, created, nil
}

// Lookup implements pipeline.RestoreTarget: by the restore mark, then by
// the item's Message-ID (mail) or iCalendar UID (events).
func (s *Source) Lookup(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (string, bool, error) {
	if exportOnly(mailbox, it.Kind) {
		return s.lookupMailboxItem(ctx, mailbox, folderID, it)
	}
	filters := []string{extendedPropertyFilter(MarkerProperty, it.VersionID)}
	if id := messageID(it); id != "" {
		filters = append(filters, "internetMessageId eq "+odataString(id))
	}
	switch {
	case it.Kind == domain.KindCalendar && it.Format == domain.FormatGraphJSON:
		var r itemformat.Resource
		if json.Unmarshal(it.Content, &r) == nil && r.ICalUID != "" {
			filters = append(filters, "iCalUId eq "+odataString(r.ICalUID))
		}
	case it.Kind == domain.KindCalendar:
		// An imported event keeps its UID.
		if comps, err := itemformat.CalendarComponents(it.Format, it.Content); err == nil {
			if uid := comps[0].Props.Get("UID"); uid != nil && uid.Value != "" {
				filters = append(filters, "iCalUId eq "+odataString(uid.Value))
			}
		}
	}
	coll, items := collectionOf(it.Kind)
	for _, f := range filters {
		q := url.Values{"$filter": {f}, "$select": {"id"}, "$top": {"1"}}
		var found collection[struct {
			ID string `json:"id"`
		}]
		if err := s.getJSON(ctx, s.c.url(false, "users", mailbox, coll, folderID, items)+"?"+q.Encode(), immutableIDs, &found); err != nil {
			return "", false, err
		}
		if len(found.Value) > 0 {
			return found.Value[0].ID, true, nil
		}
	}
	return "", false, nil
}

// Delete implements pipeline.RestoreTarget.
func (s *Source) Delete(ctx context.Context, mailbox, _, itemID, kind string) error {
	if exportOnly(mailbox, kind) {
		return &domain.Failure{Class: domain.ClassFatal, Code: "ReplaceNotPossible", Message: fmt.Sprintf(
			"the mailbox API, the only route to %s, cannot delete items: restore with --collisions copy or skip", exportOnlyWhat(mailbox, kind))}
	}
	_, items := collectionOf(kind)
	_, err := s.c.do(ctx, http.MethodDelete, s.c.url(false, "users", mailbox, items, itemID), nil, nil)
	return err
}

// Create implements pipeline.RestoreTarget. Export streams go back through
// an import session (full fidelity); MIME messages become normal received
// messages (not drafts) through the extended properties of the message
// flags and the submit and delivery times; events and contacts are created
// from their JSON. Nothing is sent: no invitations, no mail.
func (s *Source) Create(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	if it.Format == domain.FormatGraphExport {
		return s.importItem(ctx, mailbox, folderID, it)
	}
	if exportOnly(mailbox, it.Kind) {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassFatal, Code: "UnsupportedFormat", Message: fmt.Sprintf(
			"%s take export streams only (an import session), and this item is stored as %s: restore it over EWS, or into the mailbox itself", exportOnlyWhat(mailbox, it.Kind), it.Format)}
	}
	switch it.Kind {
	case domain.KindMail:
		return s.createMessage(ctx, mailbox, folderID, it)
	case domain.KindCalendar, domain.KindContacts:
		if it.Format != domain.FormatGraphJSON {
			return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassFatal, Code: "UnsupportedFormat",
				Message: fmt.Sprintf("a %s item stored as %s cannot be created through Graph (restore it over EWS, or back up with --graph-content export)", it.Kind, it.Format)}
		}
		return s.createFromJSON(ctx, mailbox, folderID, it)
	}
	return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassFatal, Code: "UnsupportedKind", Message: "unknown item kind " + it.Kind}
}

type recipient struct {
	EmailAddress struct {
		Name    string `json:"name,omitempty"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

func recipients(h mail.Header, key string) []recipient {
	list, _ := h.AddressList(key)
	out := []recipient{}
	for _, a := range list {
		var r recipient
		r.EmailAddress.Name, r.EmailAddress.Address = a.Name, a.Address
		out = append(out, r)
	}
	return out
}

type attachment struct {
	name, contentType string
	data              []byte
	inline            bool
	contentID         string
}

func (s *Source) createMessage(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	raw, err := itemformat.MIME(it.Format, it.Content)
	if err != nil {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassFatal, Code: "UnsupportedFormat", Message: err.Error()}
	}
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassDirty, Code: "BadMIME", Message: "the stored message is not readable MIME: " + err.Error()}
	}
	h := mr.Header
	subject, _ := h.Subject()
	date, err := h.Date()
	if err != nil || date.IsZero() {
		date = time.Now()
	}
	var text, html string
	var atts []attachment
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassDirty, Code: "BadMIME", Message: "a part of the stored message is unreadable: " + err.Error()}
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassDirty, Code: "BadMIME", Message: err.Error()}
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			switch {
			case ct == "text/html" && html == "":
				html = string(b)
			case ct == "text/plain" && text == "":
				text = string(b)
			default:
				atts = append(atts, attachment{name: "inline", contentType: ct, data: b, inline: true, contentID: strings.Trim(ph.Get("Content-Id"), "<>")})
			}
		case *mail.AttachmentHeader:
			name, _ := ph.Filename()
			ct, _, _ := ph.ContentType()
			atts = append(atts, attachment{name: name, contentType: ct, data: b})
		}
	}
	body := map[string]string{"contentType": "text", "content": text}
	if html != "" {
		body = map[string]string{"contentType": "html", "content": html}
	}
	ts := date.UTC().Format(time.RFC3339)
	msg := map[string]any{
		"subject": subject, "body": body,
		"toRecipients": recipients(h, "To"), "ccRecipients": recipients(h, "Cc"), "bccRecipients": recipients(h, "Bcc"),
		"singleValueExtendedProperties": []map[string]string{
			{"id": "Integer 0x0E07", "value": "1"},   // PR_MESSAGE_FLAGS: read, not unsent: a received message, not a draft
			{"id": "SystemTime 0x0039", "value": ts}, // PR_CLIENT_SUBMIT_TIME
			{"id": "SystemTime 0x0E06", "value": ts}, // PR_MESSAGE_DELIVERY_TIME
			{"id": MarkerProperty, "value": it.VersionID},
		},
	}
	if from := recipients(h, "From"); len(from) > 0 {
		msg["from"], msg["sender"] = from[0], from[0]
	}
	if id := h.Get("Message-Id"); id != "" {
		msg["internetMessageId"] = id
	}
	var small []map[string]any
	var large []attachment
	for _, a := range atts {
		if len(a.data) > MaxInlineAttachment {
			large = append(large, a)
			continue
		}
		att := map[string]any{"@odata.type": "#microsoft.graph.fileAttachment", "name": a.name, "contentType": a.contentType,
			"contentBytes": base64.StdEncoding.EncodeToString(a.data), "isInline": a.inline}
		if a.contentID != "" {
			att["contentId"] = a.contentID
		}
		small = append(small, att)
	}
	if len(small) > 0 {
		msg["attachments"] = small
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return pipeline.CreateResult{}, err
	}
	resp, err := s.c.do(ctx, http.MethodPost, s.c.url(false, "users", mailbox, "mailFolders", folderID, "messages"), nil, b)
	if err != nil {
		return pipeline.CreateResult{}, err
	}
	var made struct {
		ID string `json:"id"`
	}
	if fl := DecodeJSON(resp.header, resp.body, &made); fl != nil {
		return pipeline.CreateResult{}, fl
	}
	for _, a := range large {
		if err := s.uploadAttachment(ctx, mailbox, made.ID, a); err != nil {
			// Leave no half message behind: the retry creates it whole.
			_ = s.Delete(ctx, mailbox, folderID, made.ID, domain.KindMail)
			return pipeline.CreateResult{}, err
		}
	}
	return pipeline.CreateResult{ID: made.ID, NotPreserved: []string{"MIME headers other than addresses, subject, date and Message-ID (Graph rebuilds a message from its fields: back up with --graph-content export for full fidelity)"}}, nil
}

// uploadAttachment sends a large attachment through an upload session in
// chunks; the upload URL is pre-authenticated, so no token goes with it.
func (s *Source) uploadAttachment(ctx context.Context, mailbox, messageID string, a attachment) error {
	body, _ := json.Marshal(map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": a.name, "size": len(a.data), "contentType": a.contentType}})
	resp, err := s.c.do(ctx, http.MethodPost, s.c.url(false, "users", mailbox, "messages", messageID, "attachments", "createUploadSession"), nil, body)
	if err != nil {
		return err
	}
	var sess struct {
		UploadURL string `json:"uploadUrl"`
	}
	if fl := DecodeJSON(resp.header, resp.body, &sess); fl != nil {
		return fl
	}
	u, err := s.preauthenticated(sess.UploadURL)
	if err != nil {
		return err
	}
	for off := 0; off < len(a.data); off += uploadChunk {
		end := min(off+uploadChunk, len(a.data))
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), bytes.NewReader(a.data[off:end]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(a.data)))
		req.Header.Set("Content-Type", "application/octet-stream")
		if err := s.sendPlain(req); err != nil {
			return err
		}
	}
	return nil
}

// preauthenticated checks a URL Graph handed out for uploads or imports:
// https (or the Graph host's own scheme), on the Graph host or Outlook's.
func (s *Source) preauthenticated(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: "the server gave an unusable upload URL"}
	}
	host := strings.ToLower(u.Hostname())
	ok := u.Host == s.c.base.Host || u.Host == s.c.beta.Host ||
		u.Scheme == "https" && (host == "outlook.office365.com" || host == "outlook.office.com" || strings.HasSuffix(host, ".outlook.office365.com") || strings.HasSuffix(host, ".outlook.office.com"))
	if !ok {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: "the server pointed an upload at " + u.Host + ", which is neither Graph nor Outlook: refused"}
	}
	return u, nil
}

// sendPlain sends a request to a pre-authenticated URL, through a client
// without the token transport: the bearer never goes with it.
func (s *Source) sendPlain(req *http.Request) error {
	req.Header.Set("User-Agent", "mailvault/1 (ISV|mailvault|mailvault/1)")
	resp, err := s.c.plain.Do(req)
	if err != nil {
		return transportFailure(req.Context(), err)
	}
	defer resp.Body.Close()
	b, err := ReadCapped(resp.Body, 1<<20)
	if err != nil {
		return &domain.Failure{Class: domain.ClassTransient, Code: "TruncatedReply", Message: err.Error()}
	}
	if fl := Classify(resp.StatusCode, resp.Header, b, time.Now()); fl != nil {
		return fl
	}
	return nil
}

// readOnly are fields Graph computes or that would make it send something
// (attendees: invitations).
var readOnly = map[string]bool{"id": true, "changeKey": true, "createdDateTime": true, "lastModifiedDateTime": true, "iCalUId": true,
	"uid": true, "type": true, "seriesMasterId": true, "originalStart": true, "originalStartTimeZone": true, "originalEndTimeZone": true,
	"webLink": true, "onlineMeetingUrl": true, "onlineMeeting": true, "isOrganizer": true, "organizer": true, "attendees": true,
	"responseStatus": true, "exceptionOccurrences": true, "cancelledOccurrences": true, "instances": true, "attachments": true,
	"calendar": true, "hasAttachments": true, "transactionId": true, "occurrenceId": true, "parentFolderId": true, "photo": true,
	"extensions": true, "multiValueExtendedProperties": true, "singleValueExtendedProperties": true, "responseRequested": true}

func (s *Source) createFromJSON(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	var obj map[string]any
	if err := json.Unmarshal(it.Content, &obj); err != nil {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassDirty, Code: "BadJSON", Message: "the stored item is not valid JSON: " + err.Error()}
	}
	var r itemformat.Resource
	_ = json.Unmarshal(it.Content, &r)
	var lost []string
	if it.Kind == domain.KindCalendar {
		if r.ICalUID != "" {
			lost = append(lost, "iCalUId (Graph gives a created event a new one)")
		}
		if len(r.Attendees) > 0 {
			lost = append(lost, "attendees (not re-added: Graph would send them invitations)")
		}
		if len(r.Exceptions) > 0 {
			lost = append(lost, "changed occurrences of a series")
		}
		if len(r.CancelledOccurrences) > 0 {
			lost = append(lost, "cancelled occurrences of a series")
		}
		if r.Organizer != nil && !strings.EqualFold(r.Organizer.EmailAddress.Address, mailbox) {
			lost = append(lost, "organizer (the mailbox owner becomes the organizer)")
		}
	}
	for k := range obj {
		if readOnly[k] || strings.HasPrefix(k, "@") || strings.Contains(k, "@odata") {
			delete(obj, k)
		}
	}
	obj["singleValueExtendedProperties"] = []map[string]string{{"id": MarkerProperty, "value": it.VersionID}}
	b, err := json.Marshal(obj)
	if err != nil {
		return pipeline.CreateResult{}, err
	}
	coll, items := collectionOf(it.Kind)
	resp, err := s.c.do(ctx, http.MethodPost, s.c.url(false, "users", mailbox, coll, folderID, items), nil, b)
	if err != nil {
		return pipeline.CreateResult{}, err
	}
	var made struct {
		ID string `json:"id"`
	}
	if fl := DecodeJSON(resp.header, resp.body, &made); fl != nil {
		return pipeline.CreateResult{}, fl
	}
	return pipeline.CreateResult{ID: made.ID, NotPreserved: lost}, nil
}

// importItem uploads an exportItems stream through a mailbox import
// session: the item comes back as it was, with its properties.
func (s *Source) importItem(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	s.mu.Lock()
	sess, ok := s.imports[mailbox]
	s.mu.Unlock()
	if !ok || time.Until(sess.expires) < time.Minute {
		route, err := s.mailboxRoute(ctx, mailbox, "createImportSession")
		if err != nil {
			return pipeline.CreateResult{}, err
		}
		resp, err := s.c.do(ctx, http.MethodPost, route, nil, []byte("{}"))
		if err != nil {
			return pipeline.CreateResult{}, err
		}
		var made struct {
			ImportURL  string    `json:"importUrl"`
			Expiration time.Time `json:"expirationDateTime"`
		}
		if fl := DecodeJSON(resp.header, resp.body, &made); fl != nil {
			return pipeline.CreateResult{}, fl
		}
		u, err := s.preauthenticated(made.ImportURL)
		if err != nil {
			return pipeline.CreateResult{}, err
		}
		sess = importSession{url: u, expires: made.Expiration}
		s.mu.Lock()
		s.imports[mailbox] = sess
		s.mu.Unlock()
	}
	// The stream carries the restore mark, so that a later restore finds
	// the item: the mailbox API cannot set a property on an item after it
	// is made, and this costs no request. A stream mailvault cannot
	// decode (a layout it does not know) is imported as it is, and marked
	// afterwards where a per-kind route can.
	data, markErr := itemformat.MarkStream(it.Content, it.VersionID)
	if markErr != nil {
		data = it.Content
	}
	body, _ := json.Marshal(map[string]string{"FolderId": folderID, "Mode": "create", "Data": base64.StdEncoding.EncodeToString(data)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sess.url.String(), bytes.NewReader(body))
	if err != nil {
		return pipeline.CreateResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.c.plain.Do(req)
	if err != nil {
		return pipeline.CreateResult{}, transportFailure(ctx, err)
	}
	defer resp.Body.Close()
	b, err := ReadCapped(resp.Body, 1<<20)
	if err != nil {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassTransient, Code: "TruncatedReply", Message: err.Error()}
	}
	if fl := Classify(resp.StatusCode, resp.Header, b, time.Now()); fl != nil {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			s.mu.Lock()
			delete(s.imports, mailbox) // expired: the retry opens a new session
			s.mu.Unlock()
			fl.Class = domain.ClassTransient
		}
		return pipeline.CreateResult{}, fl
	}
	var made struct {
		ItemID string `json:"itemId"`
	}
	if fl := DecodeJSON(resp.Header, b, &made); fl != nil {
		return pipeline.CreateResult{}, fl
	}
	if markErr != nil {
		if exportOnly(mailbox, it.Kind) {
			s.cfg.Log.Warn().Str("mailbox", mailbox).Str("item", it.ItemID).Err(markErr).
				Msg("the stream could not carry the restore mark: a repeated restore will not find this item")
			return pipeline.CreateResult{ID: made.ItemID}, nil
		}
		_, items := collectionOf(it.Kind)
		mark, _ := json.Marshal(map[string]any{"singleValueExtendedProperties": []map[string]string{{"id": MarkerProperty, "value": it.VersionID}}})
		if _, err := s.c.do(ctx, http.MethodPatch, s.c.url(false, "users", mailbox, items, made.ItemID), nil, mark); err != nil {
			return pipeline.CreateResult{}, fmt.Errorf("mark the imported item: %w", err)
		}
	}
	return pipeline.CreateResult{ID: made.ItemID}, nil
}

type importSession struct {
	url     *url.URL
	expires time.Time
}
