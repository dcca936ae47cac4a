package graphsim

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// The restore side of the simulator: folders created, items looked up by
// $filter, messages created from JSON (and rendered to MIME, as Exchange
// renders a message it stores), large attachments through upload sessions,
// and export streams imported through import sessions.

type jsonAddress struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type jsonAttachment struct {
	Name         string `json:"name"`
	ContentType  string `json:"contentType"`
	ContentBytes string `json:"contentBytes"`
	IsInline     bool   `json:"isInline"`
	ContentID    string `json:"contentId"`
}

type extProp struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// jsonMessage is a message as POSTed.
type jsonMessage struct {
	Subject string `json:"subject"`
	Body    struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	From              *jsonAddress     `json:"from"`
	To                []jsonAddress    `json:"toRecipients"`
	Cc                []jsonAddress    `json:"ccRecipients"`
	Bcc               []jsonAddress    `json:"bccRecipients"`
	InternetMessageID string           `json:"internetMessageId"`
	Props             []extProp        `json:"singleValueExtendedProperties"`
	Attachments       []jsonAttachment `json:"attachments"`
}

func (m *jsonMessage) prop(id string) (string, bool) {
	for _, p := range m.Props {
		if strings.EqualFold(p.ID, id) {
			return p.Value, true
		}
	}
	return "", false
}

const markerSuffix = "Name MailvaultRestoreId"

func markerOf(props []extProp) string {
	for _, p := range props {
		if strings.HasSuffix(p.ID, markerSuffix) {
			return p.Value
		}
	}
	return ""
}

func addressList(list []jsonAddress) string {
	var out []string
	for _, a := range list {
		out = append(out, (&mail.Address{Name: a.EmailAddress.Name, Address: a.EmailAddress.Address}).String())
	}
	return strings.Join(out, ", ")
}

// render writes the message as MIME.
func (m *jsonMessage) render(when time.Time) ([]byte, error) {
	var h gomail.Header
	h.SetDate(when)
	h.SetSubject(m.Subject)
	if m.From != nil {
		h.Set("From", addressList([]jsonAddress{*m.From}))
	}
	if len(m.To) > 0 {
		h.Set("To", addressList(m.To))
	}
	if len(m.Cc) > 0 {
		h.Set("Cc", addressList(m.Cc))
	}
	if m.InternetMessageID != "" {
		h.Set("Message-Id", m.InternetMessageID)
	}
	var buf bytes.Buffer
	mw, err := gomail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	ct := "text/plain"
	if strings.EqualFold(m.Body.ContentType, "html") {
		ct = "text/html"
	}
	var ih gomail.InlineHeader
	ih.SetContentType(ct, map[string]string{"charset": "utf-8"})
	w, err := mw.CreateSingleInline(ih)
	if err != nil {
		return nil, err
	}
	io.WriteString(w, m.Body.Content)
	w.Close()
	for _, a := range m.Attachments {
		data, err := base64.StdEncoding.DecodeString(a.ContentBytes)
		if err != nil {
			return nil, fmt.Errorf("attachment %q: contentBytes is not base64", a.Name)
		}
		var ah gomail.AttachmentHeader
		ah.SetContentType(a.ContentType, nil)
		ah.SetFilename(a.Name)
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		aw.Write(data)
		aw.Close()
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// createJSONMessage stores a message POSTed as JSON. Without the message
// flags property, or with its unsent bit (8) set, it is a draft.
func (s *Server) createJSONMessage(c *call, m *mailbox, f *folder) *reply {
	var msg jsonMessage
	if err := json.Unmarshal(c.body, &msg); err != nil {
		return errorReply(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
	}
	draft := true
	if v, ok := msg.prop("Integer 0x0E07"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorReply(http.StatusBadRequest, "ErrorInvalidExtendedPropertyValue", "The extended property value is not valid for Integer 0x0E07.")
		}
		draft = n&8 != 0
	}
	when := s.now().UTC()
	if v, ok := msg.prop("SystemTime 0x0E06"); ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return errorReply(http.StatusBadRequest, "ErrorInvalidExtendedPropertyValue", "The extended property value is not valid for SystemTime 0x0E06.")
		}
		when = t
	}
	content, err := msg.render(when)
	if err != nil {
		return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		f = m.Ensure("Drafts", kindMail)
	}
	pos := s.store.Create(f, content)
	f.Items[pos-1].Marker = markerOf(msg.Props)
	id := s.itemID(f, pos, immutable(c))
	s.restored[id] = &restoredMessage{msg: msg, when: when, f: f, pos: pos}
	obj := s.itemJSON(c, f, pos, immutable(c), false)
	obj["isDraft"] = draft
	obj["subject"] = msg.Subject
	return jsonReply(http.StatusCreated, obj)
}

type restoredMessage struct {
	msg  jsonMessage
	when time.Time
	f    *folder
	pos  int
}

// createJSONItem stores an event or contact POSTed as JSON; Graph gives a
// new event a new iCalUId and keeps no extended property in the resource.
func (s *Server) createJSONItem(c *call, m *mailbox, f *folder, kind string) *reply {
	var obj map[string]any
	if err := json.Unmarshal(c.body, &obj); err != nil {
		return errorReply(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
	}
	var props struct {
		Props []extProp `json:"singleValueExtendedProperties"`
	}
	json.Unmarshal(c.body, &props)
	delete(obj, "singleValueExtendedProperties")
	if _, ok := obj["attendees"]; ok && kind == kindCalendar {
		s.count(func() { s.stats.Invitations++ }) // Graph would send them
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		if kind == kindCalendar {
			f = m.Ensure("Calendar", kindCalendar)
		} else {
			f = m.Ensure("Contacts", kindContacts)
		}
	}
	if kind == kindCalendar {
		obj["iCalUId"] = "040000008200E00074C5B7101A82E00800000000" + randomToken()[:16]
	}
	content, _ := json.Marshal(obj)
	pos := s.store.Create(f, content)
	f.Items[pos-1].Marker = markerOf(props.Props)
	f.Items[pos-1].JSON = true
	return jsonReply(http.StatusCreated, s.itemJSON(c, f, pos, immutable(c), false))
}

var (
	filterMarker = regexp.MustCompile(`ep/value eq '((?:[^']|'')*)'`)
	filterField  = regexp.MustCompile(`^(internetMessageId|iCalUId|displayName|name) eq '((?:[^']|'')*)'$`)
)

func unquote(s string) string { return strings.ReplaceAll(s, "''", "'") }

// itemFilter reads a list's $filter: the restore mark or the Message-ID
// (PidTagInternetMessageId, "String 0x1035") as extended properties, and
// with fields (the per-kind routes) internetMessageId, iCalUId or
// displayName.
func (s *Server) itemFilter(c *call, f *folder, fields bool) (func(pos int) bool, *reply) {
	filter := c.query.Get("$filter")
	byMessageID := func(want string) func(int) bool {
		return func(pos int) bool {
			return itemformat.MessageID(domain.FormatMIME, s.store.Content(f, pos)) == want
		}
	}
	switch {
	case filter == "":
		return func(int) bool { return true }, nil
	case strings.HasPrefix(filter, "singleValueExtendedProperties/Any("):
		mm := filterMarker.FindStringSubmatch(filter)
		if mm == nil {
			break
		}
		want := unquote(mm[1])
		switch {
		case strings.Contains(filter, markerSuffix+"'"):
			return func(pos int) bool { return f.Items[pos-1].Marker == want }, nil
		case strings.Contains(filter, "ep/id eq 'String 0x1035'"):
			return byMessageID(want), nil
		}
		return nil, errorReply(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The filter on extended properties is not supported here.")
	case fields:
		mm := filterField.FindStringSubmatch(filter)
		if mm == nil {
			break
		}
		want := unquote(mm[2])
		switch mm[1] {
		case "internetMessageId":
			return byMessageID(want), nil
		case "iCalUId", "displayName":
			field := mm[1]
			return func(pos int) bool { return s.itemJSON(c, f, pos, false, false)[field] == want }, nil
		}
		return nil, errorReply(http.StatusBadRequest, "ErrorInvalidProperty", "The property '"+mm[1]+"' does not exist on this type.")
	}
	return nil, errorReply(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
}

// listItems serves GET of a folder's items, optionally filtered by the
// restore mark, internetMessageId or iCalUId.
func (s *Server) listItems(c *call, f *folder) *reply {
	return s.itemList(c, f, true, func(pos int) map[string]any { return s.itemJSON(c, f, pos, immutable(c), false) })
}

// pageOf is the part of a list of n that $skip and $top (10 by default, at
// most 1000) ask for: list[from:to].
func pageOf(c *call, n int) (from, to int) {
	top := 10
	if v, err := strconv.Atoi(c.query.Get("$top")); err == nil && v > 0 {
		top = min(v, 1000)
	}
	skip, _ := strconv.Atoi(c.query.Get("$skip"))
	to = min(max(skip, 0)+top, n)
	return min(max(skip, 0), to), to
}

// itemList serves a folder's items as render shows them, filtered,
// ordered and paged by $skip.
func (s *Server) itemList(c *call, f *folder, fields bool, render func(pos int) map[string]any) *reply {
	match, rep := s.itemFilter(c, f, fields)
	if rep != nil {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []int
	for pos := 1; pos <= len(f.Items); pos++ {
		if !f.Items[pos-1].Deleted && match(pos) {
			all = append(all, pos)
		}
	}
	// $orderby on the dates and the subject, as clients list a folder
	// newest first; anything else keeps the store's order.
	if ob := strings.Fields(c.query.Get("$orderby")); len(ob) > 0 {
		desc := len(ob) > 1 && strings.EqualFold(ob[1], "desc")
		key := func(pos int) string {
			switch ob[0] {
			case "receivedDateTime", "sentDateTime", "createdDateTime", "lastModifiedDateTime", "start/dateTime":
				return s.store.Time(f, pos).UTC().Format(time.RFC3339)
			case "subject", "displayName":
				return s.store.Facts(f, pos).Subject
			}
			return ""
		}
		simtenant.SortByKey(all, key, desc)
	}
	value := []map[string]any{}
	skip, end := pageOf(c, len(all))
	for _, pos := range all[skip:end] {
		value = append(value, selectFields(render(pos), c.query.Get("$select")))
	}
	out := map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#Collection", "value": value}
	if strings.EqualFold(c.query.Get("$count"), "true") {
		out["@odata.count"] = len(all)
	}
	if end < len(all) {
		out["@odata.nextLink"] = s.skipLink(c, end)
	}
	return jsonReply(http.StatusOK, out)
}

// createFolder serves POST of a folder collection or childFolders.
func (s *Server) createFolder(c *call, m *mailbox, kind string, parent *folder) *reply {
	var body map[string]string
	if err := json.Unmarshal(c.body, &body); err != nil {
		return errorReply(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
	}
	name := body["displayName"]
	if kind == kindCalendar {
		name = body["name"]
	}
	if strings.TrimSpace(name) == "" || strings.ContainsRune(name, '/') && kind == kindCalendar {
		return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "The folder name is missing or invalid.")
	}
	path := name
	if parent != nil && parent != m.Root {
		path = parent.Path + "/" + name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Folder(path, kind) != nil {
		return errorReply(http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
	}
	f := s.store.CreateFolder(m.Box, path, kind)
	return jsonReply(http.StatusCreated, s.folderJSON(c, f))
}

// filterFolders applies "displayName eq 'x'" (or name, for calendars).
func filterFolders(c *call, list []*folder) ([]*folder, *reply) {
	filter := c.query.Get("$filter")
	if filter == "" {
		return list, nil
	}
	mm := filterField.FindStringSubmatch(filter)
	if mm == nil || mm[1] != "displayName" && mm[1] != "name" {
		return nil, errorReply(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
	}
	var out []*folder
	for _, f := range list {
		if strings.EqualFold(f.Name, unquote(mm[2])) {
			out = append(out, f)
		}
	}
	return out, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type uploadSession struct {
	m        *mailbox
	itemID   string
	name, ct string
	size     int
	data     []byte
}

// createUploadSession serves POST messages/{id}/attachments/createUploadSession.
func (s *Server) createUploadSession(c *call, m *mailbox, id string) *reply {
	var req struct {
		Item struct {
			Type        string `json:"attachmentType"`
			Name        string `json:"name"`
			Size        int    `json:"size"`
			ContentType string `json:"contentType"`
		} `json:"AttachmentItem"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil || req.Item.Size <= 0 || req.Item.Name == "" {
		return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "AttachmentItem needs a name and a size.")
	}
	if req.Item.Size > 150<<20 {
		return errorReply(http.StatusRequestEntityTooLarge, "ErrorAttachmentSizeLimitExceeded", "The attachment is larger than 150 MB.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restored[id] == nil {
		return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	}
	tok := randomToken()
	s.uploads[tok] = &uploadSession{m: m, itemID: id, name: req.Item.Name, ct: req.Item.ContentType, size: req.Item.Size}
	return jsonReply(http.StatusCreated, map[string]any{"@odata.context": s.baseURL(c) + "/v1.0/$metadata#microsoft.graph.uploadSession",
		"uploadUrl": s.baseURL(c) + "/uploadsession/" + tok, "expirationDateTime": s.now().Add(time.Hour).UTC().Format(time.RFC3339), "nextExpectedRanges": []string{"0-"}})
}

var contentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)

// upload serves PUT of a chunk to an upload session (pre-authenticated:
// no bearer token).
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		s.write(w, r, errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "Do not send an Authorization header to an upload URL."))
		return
	}
	tok := strings.TrimPrefix(r.URL.Path, "/uploadsession/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	s.write(w, r, s.uploadChunk(tok, r.Header.Get("Content-Range"), body))
}

func (s *Server) uploadChunk(tok, rangeHeader string, body []byte) *reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := s.uploads[tok]
	if up == nil {
		return errorReply(http.StatusNotFound, "ItemNotFound", "The upload session was not found.")
	}
	mm := contentRange.FindStringSubmatch(rangeHeader)
	start, _ := strconv.Atoi(valueOr(mm, 1))
	end, _ := strconv.Atoi(valueOr(mm, 2))
	total, _ := strconv.Atoi(valueOr(mm, 3))
	if mm == nil || start != len(up.data) || total != up.size || end-start+1 != len(body) {
		return errorReply(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The Content-Range does not continue the upload.")
	}
	up.data = append(up.data, body...)
	if len(up.data) < up.size {
		return jsonReply(http.StatusOK, map[string]any{"expirationDateTime": s.now().Add(time.Hour).UTC().Format(time.RFC3339), "nextExpectedRanges": []string{fmt.Sprintf("%d-", len(up.data))}})
	}
	delete(s.uploads, tok)
	rm := s.restored[up.itemID]
	rm.msg.Attachments = append(rm.msg.Attachments, jsonAttachment{Name: up.name, ContentType: up.ct, ContentBytes: base64.StdEncoding.EncodeToString(up.data)})
	content, err := rm.msg.render(rm.when)
	if err != nil {
		return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", err.Error())
	}
	s.store.Replace(rm.f, rm.pos, content)
	return newReply(http.StatusCreated)
}

func valueOr(m []string, i int) string {
	if m == nil {
		return ""
	}
	return m[i]
}

type importTarget struct{ m *mailbox }

// createImportSession serves POST admin/exchange/mailboxes/{id}/createImportSession.
func (s *Server) createImportSession(c *call, mailboxID string) *reply {
	m, rep := s.apiMailbox(c, mailboxID)
	if rep != nil {
		return rep
	}
	if !s.export {
		return errorReply(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. The app needs MailboxItem.ImportExport.All.")
	}
	tok := randomToken()
	s.mu.Lock()
	s.imports[tok] = importTarget{m: m}
	s.mu.Unlock()
	return jsonReply(http.StatusCreated, map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#microsoft.graph.mailboxItemImportSession",
		"importUrl": s.baseURL(c) + "/importsession/" + tok, "expirationDateTime": s.now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

// importItem serves POST of an exported stream to an import URL.
func (s *Server) importItem(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.URL.Path, "/importsession/")
	s.mu.Lock()
	target, ok := s.imports[tok]
	s.mu.Unlock()
	if !ok {
		s.write(w, r, errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "The import URL is not valid or has expired."))
		return
	}
	if r.Header.Get("Authorization") != "" {
		s.write(w, r, errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "The import URL is pre-authenticated: send no Authorization header."))
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	var req struct {
		FolderID string `json:"FolderId"`
		Mode     string `json:"Mode"`
		Data     string `json:"Data"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Mode != "create" {
		s.write(w, r, errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "The body needs FolderId, Mode \"create\" and Data."))
		return
	}
	data, err := base64.StdEncoding.DecodeString(req.Data)
	var content []byte
	if err == nil {
		content, err = itemformat.MIME(domain.FormatGraphExport, data)
	}
	if err != nil {
		s.write(w, r, errorReply(http.StatusBadRequest, "ErrorInvalidData", "Data is not an item exported with exportItems."))
		return
	}
	m := target.m
	release, rep := s.admit(m)
	if rep != nil {
		s.write(w, r, rep)
		return
	}
	defer release()
	s.mu.Lock()
	f := m.ByID[req.FolderID]
	if f == nil {
		s.mu.Unlock()
		s.write(w, r, errorReply(http.StatusNotFound, "ErrorFolderNotFound", "The folder was not found."))
		return
	}
	pos := s.store.CreateImported(f, content, data)
	f.Items[pos-1].Marker = itemformat.StreamMark(data) // Exchange keeps a stream's named properties on the item
	id, ck := s.itemID(f, pos, true), s.store.ChangeKey(f, pos)
	s.mu.Unlock()
	s.write(w, r, jsonReply(http.StatusOK, map[string]any{"itemId": id, "changeKey": ck}))
}
