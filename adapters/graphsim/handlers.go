package graphsim

import (
	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
)

// call is one request, top level or a $batch sub-request.
type call struct {
	method  string
	version string
	path    string // after the version, escaped
	query   url.Values
	header  http.Header
	body    []byte
	ctx     context.Context
	base    string // scheme://host of the server, for links
}

const maxBody = 64 << 20

func readBody(r *http.Request) ([]byte, error) {
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		// Microsoft's SDKs compress request bodies; Graph accepts that.
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("the gzip request body is unreadable: %w", err)
		}
		defer zr.Close()
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, errors.New("the request body is larger than 64 MB")
	}
	return b, nil
}

func segments(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		// OData key and function syntax: mailFolders('id'), delta().
		if j := strings.IndexByte(s, '('); j > 0 && strings.HasSuffix(s, ")") {
			key := strings.Trim(s[j+1:len(s)-1], "'")
			out = append(out, s[:j])
			if key != "" {
				out = append(out, key)
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

func (s *Server) baseURL(c *call) string {
	if c.base != "" {
		return c.base
	}
	return "https://graph.microsoft.com"
}

func immutable(c *call) bool {
	for _, p := range c.header.Values("Prefer") {
		if strings.Contains(strings.ReplaceAll(p, " ", ""), `IdType="ImmutableId"`) {
			return true
		}
	}
	return false
}

func maxPageSize(c *call, def, limit int) (int, bool) {
	for _, p := range c.header.Values("Prefer") {
		for _, part := range strings.Split(p, ",") {
			part = strings.TrimSpace(part)
			if v, ok := strings.CutPrefix(part, "odata.maxpagesize="); ok {
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					return min(n, limit), true
				}
			}
		}
	}
	return def, false
}

// dispatch routes a non-batch request.
func (s *Server) dispatch(c *call) *reply {
	seg := segments(c.path)
	if len(seg) >= 2 && seg[0] == "admin" && seg[1] == "exchange" {
		if len(seg) == 5 && seg[2] == "mailboxes" && seg[4] == "exportItems" && c.method == http.MethodPost {
			return s.exportItems(c, seg[3])
		}
		if len(seg) == 5 && seg[2] == "mailboxes" && seg[4] == "createImportSession" && c.method == http.MethodPost {
			return s.createImportSession(c, seg[3])
		}
		if len(seg) == 6 && seg[2] == "mailboxes" && seg[4] == "folders" && seg[5] == "delta" {
			if c.method != http.MethodGet {
				return methodNotAllowed()
			}
			return s.folderDelta(c, seg[3])
		}
		if len(seg) == 8 && seg[2] == "mailboxes" && seg[4] == "folders" && seg[6] == "items" && seg[7] == "delta" {
			if c.method != http.MethodGet {
				return methodNotAllowed()
			}
			return s.itemDelta(c, seg[3], seg[5])
		}
		if len(seg) >= 5 && seg[2] == "mailboxes" && seg[4] == "folders" {
			return s.mailboxFolderRoutes(c, seg[3], seg[5:])
		}
		return notFound(c)
	}
	if len(seg) == 0 || seg[0] != "users" {
		return notFound(c)
	}
	if len(seg) == 1 {
		if c.method != http.MethodGet {
			return methodNotAllowed()
		}
		return s.users(c)
	}
	m := s.mailboxByKey(seg[1])
	if m == nil {
		return errorReply(http.StatusNotFound, "ErrorInvalidUser", fmt.Sprintf("The requested user '%s' is invalid.", seg[1]))
	}
	release, rep := s.admit(m)
	if rep != nil {
		return rep
	}
	defer release()
	s.delay(c)
	rest := seg[2:]
	if len(rest) == 0 {
		return jsonReply(http.StatusOK, s.userJSON(m, c))
	}
	switch rest[0] {
	case "mailboxSettings":
		if len(rest) == 1 && c.method == http.MethodGet {
			return jsonReply(http.StatusOK, s.mailboxSettings(c, m))
		}
	case "settings":
		if len(rest) == 2 && rest[1] == "exchange" {
			return jsonReply(http.StatusOK, map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#users('" + m.ID + "')/settings/exchange/$entity",
				"id": m.ID, "primaryMailboxId": m.exchangeID, "archiveMailboxId": archiveID(m)})
		}
	case "mailFolders":
		return s.folders(c, m, kindMail, rest[1:])
	case "calendars":
		return s.folders(c, m, kindCalendar, rest[1:])
	case "contactFolders":
		return s.folders(c, m, kindContacts, rest[1:])
	case "calendar":
		// The default calendar: /calendar, /calendar/events...
		if f := s.folderOf(m, kindCalendar, "calendar"); f != nil {
			return s.folders(c, m, kindCalendar, append([]string{f.ID}, rest[1:]...))
		}
	case "messages", "events", "contacts":
		kind := map[string]string{"messages": kindMail, "events": kindCalendar, "contacts": kindContacts}[rest[0]]
		if len(rest) == 1 && c.method == http.MethodPost {
			return s.createItem(c, m, nil, kind)
		}
		if len(rest) == 1 && c.method == http.MethodGet && kind != kindMail {
			// The default calendar's events, the default contacts
			// folder's contacts.
			if f := s.folderOf(m, kind, map[string]string{kindCalendar: "calendar", kindContacts: "contacts"}[kind]); f != nil {
				return s.folders(c, m, kind, []string{f.ID, rest[0]})
			}
		}
		if len(rest) == 4 && kind == kindMail && rest[2] == "attachments" && rest[3] == "createUploadSession" && c.method == http.MethodPost {
			return s.createUploadSession(c, m, rest[1])
		}
		if len(rest) >= 2 {
			return s.item(c, m, nil, kind, rest[1], rest[2:])
		}
	}
	return notFound(c)
}

// delay answers after the tenant's latency, as a remote server would.
func (s *Server) delay(c *call) {
	if d := time.Duration(s.t.Latency); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
}

func notFound(c *call) *reply {
	return errorReply(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", lastSegment(c.path)))
}

func lastSegment(p string) string {
	p = strings.Trim(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func methodNotAllowed() *reply {
	return errorReply(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
}

func (s *Server) mailboxByKey(k string) *mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[strings.ToLower(k)]
}

func (s *Server) userJSON(m *mailbox, c *call) map[string]any {
	u := map[string]any{"id": m.ID, "displayName": m.Name, "mail": m.Address, "userPrincipalName": m.Address,
		"givenName": m.Name, "surname": nil, "jobTitle": nil, "businessPhones": []string{}, "mobilePhone": nil,
		"officeLocation": nil, "preferredLanguage": "en-US"}
	return selectFields(u, c.query.Get("$select"))
}

func selectFields(obj map[string]any, sel string) map[string]any {
	if sel == "" {
		return obj
	}
	out := map[string]any{}
	for k, v := range obj {
		if strings.HasPrefix(k, "@") || k == "id" {
			out[k] = v
		}
	}
	for _, f := range strings.Split(sel, ",") {
		f = strings.TrimSpace(f)
		if v, ok := obj[f]; ok {
			out[f] = v
		}
	}
	return out
}

// users lists the tenant's users, $top at most 999, paged by $skiptoken.
func (s *Server) users(c *call) *reply {
	if _, rep := s.admitApp(); rep != nil {
		return rep
	}
	top := 100
	if v := c.query.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			return errorReply(http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive.")
		}
		top = n
	}
	off, err := decodeOffset(c.query.Get("$skiptoken"))
	if err != nil {
		return errorReply(http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
	}
	end := min(off+top, len(s.mailboxes))
	value := make([]map[string]any, 0, end-off)
	for _, m := range s.mailboxes[min(off, end):end] {
		value = append(value, s.userJSON(m, c))
	}
	out := map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#users", "value": value}
	if end < len(s.mailboxes) {
		q := url.Values{}
		for k, v := range c.query {
			q[k] = v
		}
		q.Set("$skiptoken", encodeOffset(end))
		out["@odata.nextLink"] = s.baseURL(c) + "/" + c.version + "/users?" + q.Encode()
	}
	return jsonReply(http.StatusOK, out)
}

func (s *Server) admitApp() (func(), *reply) { return s.admit(nil) }

func encodeOffset(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(n)))
}

func decodeOffset(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "o:") {
		return 0, errors.New("bad token")
	}
	n, err := strconv.Atoi(string(b[2:]))
	if err != nil || n < 0 {
		return 0, errors.New("bad token")
	}
	return n, nil
}

func (s *Server) folderOf(m *mailbox, kind, key string) *folder {
	// Well-known names: mail's (inbox, sentitems...), and the default
	// calendar's and contacts folder's (calendar, contacts).
	for _, f := range append([]*folder{m.Root}, m.Folders...) {
		if f.Kind == kind && strings.EqualFold(f.WellKnown, key) && f.WellKnown != "" {
			return f
		}
	}
	f := m.ByID[key]
	if f == nil || f.Kind != kind {
		return nil
	}
	return f
}

func (s *Server) folderJSON(c *call, f *folder) map[string]any {
	live := f.Live()
	switch f.Kind {
	case kindCalendar:
		return map[string]any{"id": f.ID, "name": f.Name, "color": "auto", "hexColor": "", "isDefaultCalendar": f.Path == "Calendar",
			"changeKey": "DwAAABYAAAA" + f.ID[6:14], "canShare": true, "canViewPrivateItems": true, "canEdit": true,
			"allowedOnlineMeetingProviders": []string{"teamsForBusiness"}, "defaultOnlineMeetingProvider": "teamsForBusiness",
			"isTallyingResponses": true, "isRemovable": f.Path != "Calendar", "owner": map[string]any{"name": f.Box.Name, "address": f.Box.Address}}
	case kindContacts:
		parent := ""
		if f.Parent != nil {
			parent = f.Parent.ID
		}
		return map[string]any{"id": f.ID, "displayName": f.Name, "parentFolderId": parent}
	}
	parent := ""
	if f.Parent != nil {
		parent = f.Parent.ID
	}
	return map[string]any{"id": f.ID, "displayName": f.Name, "parentFolderId": parent, "childFolderCount": len(f.Children),
		"unreadItemCount": 0, "totalItemCount": live, "sizeInBytes": live * 30000, "isHidden": false}
}

// folders serves the folder endpoints of one kind: collection, one folder,
// childFolders, and the item routes under a folder.
func (s *Server) folders(c *call, m *mailbox, kind string, rest []string) *reply {
	collection := map[string]string{kindMail: "mailFolders", kindCalendar: "calendars", kindContacts: "contactFolders"}[kind]
	if len(rest) == 0 {
		if c.method == http.MethodPost {
			if kind == kindMail {
				return s.createFolder(c, m, kind, m.Root)
			}
			return s.createFolder(c, m, kind, nil)
		}
		var list []*folder
		for _, f := range m.Folders {
			if f.Kind != kind {
				continue
			}
			if kind == kindMail && f.Parent == m.Root || kind == kindContacts && f.Parent == nil || kind == kindCalendar {
				list = append(list, f)
			}
		}
		list, rep := filterFolders(c, list)
		if rep != nil {
			return rep
		}
		return s.folderPage(c, m, collection, list)
	}
	f := s.folderOf(m, kind, rest[0])
	if f == nil {
		return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	}
	if len(rest) == 1 {
		return jsonReply(http.StatusOK, withContext(s.folderJSON(c, f), s.baseURL(c)+"/"+c.version+"/$metadata#users('"+m.ID+"')/"+collection+"/$entity"))
	}
	switch rest[1] {
	case "childFolders":
		if kind == kindCalendar {
			break
		}
		if c.method == http.MethodPost {
			return s.createFolder(c, m, kind, f)
		}
		list, rep := filterFolders(c, f.Children)
		if rep != nil {
			return rep
		}
		return s.folderPage(c, m, collection+"('"+f.ID+"')/childFolders", list)
	case "messages", "events", "contacts":
		if len(rest) == 3 && rest[2] == "delta" {
			if kind == kindCalendar && c.version != "beta" {
				return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "Delta of calendar events needs calendarView with startDateTime and endDateTime in v1.0.")
			}
			return s.delta(c, f)
		}
		if len(rest) == 2 && c.method == http.MethodPost {
			return s.createItem(c, m, f, kind)
		}
		if len(rest) == 2 && c.method == http.MethodGet {
			return s.listItems(c, f)
		}
		if len(rest) >= 3 {
			return s.item(c, m, f, kind, rest[2], rest[3:])
		}
	}
	return notFound(c)
}

// mailboxSettings are a mailbox's settings as Graph returns them: time
// zone, language, working hours, automatic replies (off).
func (s *Server) mailboxSettings(c *call, m *mailbox) map[string]any {
	day := map[string]string{"dateTime": "2026-12-01T00:00:00.0000000", "timeZone": "UTC"}
	var archive any
	if f := s.folderOf(m, kindMail, "archive"); f != nil {
		archive = f.ID
	}
	return map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#users('" + m.ID + "')/mailboxSettings",
		"archiveFolder": archive, "timeZone": "UTC",
		"automaticRepliesSetting": map[string]any{"status": "disabled", "externalAudience": "all", "internalReplyMessage": "", "externalReplyMessage": "",
			"scheduledStartDateTime": day, "scheduledEndDateTime": day},
		"language":   map[string]string{"locale": "en-US", "displayName": "English (United States)"},
		"dateFormat": "M/d/yyyy", "timeFormat": "h:mm tt", "userPurpose": "user", "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
		"workingHours": map[string]any{"daysOfWeek": []string{"monday", "tuesday", "wednesday", "thursday", "friday"},
			"startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000", "timeZone": map[string]string{"name": "UTC"}}}
}

func withContext(obj map[string]any, ctx string) map[string]any {
	obj["@odata.context"] = ctx
	return obj
}

// skipLink is the nextLink of a page that ends at end: the request again,
// its other query options kept, with $skip moved on.
func (s *Server) skipLink(c *call, end int) string {
	q := url.Values{}
	for k, v := range c.query {
		q[k] = v
	}
	q.Set("$skip", strconv.Itoa(end))
	return s.baseURL(c) + "/" + c.version + "/" + strings.TrimPrefix(c.path, "/") + "?" + q.Encode()
}

func (s *Server) folderPage(c *call, m *mailbox, collection string, list []*folder) *reply {
	top := 10
	if v := c.query.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errorReply(http.StatusBadRequest, "ErrorInvalidUrlQuery", "The value of $top is not valid.")
		}
		top = min(n, 1000)
	}
	off, err := strconv.Atoi(c.query.Get("$skip"))
	if err != nil {
		off = 0
	}
	end := min(off+top, len(list))
	value := []map[string]any{}
	for _, f := range list[min(off, end):end] {
		value = append(value, s.folderJSON(c, f))
	}
	out := map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#users('" + m.ID + "')/" + collection, "value": value}
	if end < len(list) {
		out["@odata.nextLink"] = s.skipLink(c, end)
	}
	return jsonReply(http.StatusOK, out)
}

// deltaState is what a skip or delta token carries. Real tokens are opaque
// too; these are base64 JSON so that they survive in a URL.
type deltaState struct {
	Folder string `json:"f"`
	Since  uint64 `json:"since"`       // changes after this sequence, in a change round
	Round  bool   `json:"r,omitempty"` // a change round, not the initial sync
	Snap   uint64 `json:"snap"`        // the round's snapshot: next round starts here
	Off    int    `json:"off"`         // next position index to examine
	Epoch  int    `json:"e"`
	Page   int    `json:"p"`
	Select string `json:"sel,omitempty"`
	Final  bool   `json:"d,omitempty"` // a deltaLink, not a nextLink
}

func encodeState(st deltaState) string {
	b, _ := json.Marshal(st)
	return base64.RawURLEncoding.EncodeToString(b)
}

// deltaRound reads the state a delta request carries for a collection (a
// folder's id, or a mailbox's folder hierarchy): the page a nextLink
// continues, the round of changes since its snapshot a deltaLink starts,
// or a first round. s.mu must be held.
func (s *Server) deltaRound(c *call, collection, what string) (deltaState, *reply) {
	tok := c.query.Get("$skiptoken")
	if tok == "" {
		tok = c.query.Get("$deltatoken")
	}
	if tok == "" {
		return deltaState{Folder: collection, Snap: s.store.Seq, Epoch: s.epoch, Select: c.query.Get("$select")}, nil
	}
	var st deltaState
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &st) != nil || st.Folder != collection {
		return st, errorReply(http.StatusBadRequest, "SyncStateInvalid", "The sync state is invalid or was created for another "+what+".")
	}
	if st.Epoch != s.epoch {
		return st, errorReply(http.StatusGone, s.resync, "The sync state generation was not found. Start a new synchronization.")
	}
	if st.Final {
		st = deltaState{Folder: collection, Since: st.Snap, Round: true, Snap: s.store.Seq, Epoch: s.epoch, Select: st.Select}
	}
	return st, nil
}

// deltaPage is a page of a delta round (st, its page counted) of
// entities: value, and the nextLink to the page from off when more remain,
// else the deltaLink that starts the next round.
func (s *Server) deltaPage(c *call, st deltaState, off int, more bool, entity string, value []map[string]any) map[string]any {
	out := map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#Collection(" + entity + ")", "value": value}
	link := s.baseURL(c) + "/" + c.version + "/" + strings.TrimPrefix(c.path, "/") + "?"
	next := st
	next.Off = off
	if more {
		out["@odata.nextLink"] = link + "$skiptoken=" + encodeState(next)
	} else {
		next.Final = true
		out["@odata.deltaLink"] = link + "$deltatoken=" + encodeState(next)
	}
	return out
}

// delta serves a message, event or contact delta round for one folder.
func (s *Server) delta(c *call, f *folder) *reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, rep := s.deltaRound(c, f.ID, "folder")
	if rep != nil {
		return rep
	}
	size, applied := maxPageSize(c, 10, 1000)
	imm := immutable(c)
	value, off := s.deltaItems(f, st, size, imm, odataType(f.Kind), func(pos int, _ string) map[string]any {
		return s.itemJSON(c, f, pos, imm, false)
	})
	st.Page++
	out := s.deltaPage(c, st, off, off < len(f.Items), odataType(f.Kind), value)
	if ch := f.Spec; ch != nil && ch.Changes != nil && !f.ChangesDone && st.Page == ch.Changes.AfterPage {
		f.ChangesDone = true
		s.store.Mutate(f, ch.Changes.Add, ch.Changes.Modify, ch.Changes.Delete)
	}
	rep = jsonReply(http.StatusOK, out)
	var prefs []string
	if applied {
		prefs = append(prefs, "odata.maxpagesize="+strconv.Itoa(size))
	}
	if imm {
		prefs = append(prefs, `IdType="ImmutableId"`)
	}
	if len(prefs) > 0 {
		rep.header.Set("Preference-Applied", strings.Join(prefs, ", "))
	}
	return rep
}

// deltaItems is a delta page's items of folder f from st's offset: at
// most size, those a first round shows (live ones) or a change round does
// (changed since it started, deleted ones as @removed entries of entity),
// each rendered by render(position, id); and the offset to go on from.
func (s *Server) deltaItems(f *folder, st deltaState, size int, imm bool, entity string, render func(pos int, id string) map[string]any) ([]map[string]any, int) {
	value := make([]map[string]any, 0, size)
	off := st.Off
	for off < len(f.Items) && len(value) < size {
		it := f.Items[off]
		off++
		if !st.Round && it.Deleted || st.Round && it.Seq <= st.Since {
			continue
		}
		id := s.itemID(f, off, imm)
		if it.Deleted {
			value = append(value, map[string]any{"@odata.type": "#microsoft.graph." + entity, "id": id, "@removed": map[string]string{"reason": "deleted"}})
			continue
		}
		value = append(value, selectFields(render(off, id), st.Select))
	}
	return value, off
}

func odataType(kind string) string {
	switch kind {
	case kindCalendar:
		return "event"
	case kindContacts:
		return "contact"
	}
	return "message"
}

// itemJSON is the JSON resource of an item; full adds the body (and for
// events the expansions asked for).
func (s *Server) itemJSON(c *call, f *folder, pos int, imm, full bool) map[string]any {
	ck := s.store.ChangeKey(f, pos)
	// What the item's MIME says, so that the JSON and MIME renderings of
	// one item agree: sender, recipients, subject, dates, text. Its date
	// is the item's time (Store.Time), drawn once here.
	facts := s.store.Facts(f, pos)
	when := facts.Date
	modified := when
	if f.Kind == kindCalendar {
		modified = when.Add(-30 * 24 * time.Hour) // invited a month ahead
	}
	if it := f.Items[pos-1]; it.JSON {
		var stored map[string]any
		json.Unmarshal(it.Content, &stored)
		stored["@odata.type"], stored["@odata.etag"] = "#microsoft.graph."+odataType(f.Kind), `W/"`+ck+`"`
		stored["id"], stored["changeKey"], stored["createdDateTime"] = s.itemID(f, pos, imm), ck, "2026-12-01T00:00:00Z"
		stored["lastModifiedDateTime"] = "2026-12-01T00:00:00Z"
		if f.Kind == kindContacts {
			stored["parentFolderId"] = f.ID
		}
		if full && f.Kind == kindCalendar {
			if strings.Contains(c.query.Get("$expand"), "exceptionOccurrences") {
				stored["exceptionOccurrences"] = []any{}
			}
		}
		return stored
	}
	created := modified
	if f.Kind == kindCalendar {
		created = modified.Add(-time.Hour) // created, then the invitation accepted
	}
	obj := map[string]any{"@odata.type": "#microsoft.graph." + odataType(f.Kind), "@odata.etag": `W/"` + ck + `"`,
		"id": s.itemID(f, pos, imm), "changeKey": ck, "createdDateTime": created.Format(time.RFC3339),
		"lastModifiedDateTime": modified.Format(time.RFC3339), "categories": []string{}}
	from := map[string]any{"emailAddress": map[string]string{"name": facts.FromName, "address": facts.FromAddress}}
	owner := map[string]any{"emailAddress": map[string]string{"name": facts.To, "address": facts.To}}
	switch f.Kind {
	case kindMail:
		obj["parentFolderId"] = f.ID
		obj["subject"] = facts.Subject
		obj["receivedDateTime"] = when.Format(time.RFC3339)
		obj["sentDateTime"] = when.Format(time.RFC3339)
		obj["isRead"] = pos%3 != 0
		obj["from"], obj["sender"] = from, from
		obj["toRecipients"] = []any{owner}
		obj["ccRecipients"], obj["bccRecipients"], obj["replyTo"] = []any{}, []any{}, []any{}
		obj["internetMessageId"] = facts.MessageID
		obj["conversationId"] = "AAQkA" + strings.TrimSuffix(strings.TrimPrefix(facts.MessageID, "<"), "@sim.contoso.test>")
		obj["bodyPreview"] = strings.Join(strings.Fields(facts.Text), " ")
		obj["importance"], obj["inferenceClassification"] = "normal", "focused"
		obj["isDraft"], obj["isReadReceiptRequested"], obj["isDeliveryReceiptRequested"] = false, false, false
		obj["flag"] = map[string]string{"flagStatus": "notFlagged"}
	case kindCalendar:
		obj["subject"] = facts.Subject
		obj["organizer"] = from
		obj["attendees"] = []any{map[string]any{"type": "required", "status": map[string]string{"response": "accepted", "time": modified.Format(time.RFC3339)},
			"emailAddress": owner["emailAddress"]}}
		obj["isAllDay"], obj["isCancelled"], obj["isOrganizer"] = false, false, false
		obj["showAs"], obj["importance"], obj["sensitivity"] = "busy", "normal", "normal"
		obj["originalStartTimeZone"], obj["originalEndTimeZone"] = "UTC", "UTC"
		obj["location"] = map[string]any{"displayName": ""}
		obj["iCalUId"] = fmt.Sprintf("040000008200E00074C5B7101A82E008%024x", pos)
		obj["type"] = "singleInstance"
		start := when
		obj["start"] = map[string]string{"dateTime": start.Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
		obj["end"] = map[string]string{"dateTime": start.Add(time.Hour).Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
		if pos%10 == 3 {
			// A weekly series of 8, as in the item's iCalendar form.
			obj["type"] = "seriesMaster"
			obj["recurrence"] = map[string]any{
				"pattern": map[string]any{"type": "weekly", "interval": 1, "daysOfWeek": []string{strings.ToLower(start.Weekday().String())}, "firstDayOfWeek": "monday"},
				"range":   map[string]any{"type": "numbered", "startDate": start.Format("2006-01-02"), "numberOfOccurrences": 8, "recurrenceTimeZone": "UTC"}}
		}
	case kindContacts:
		obj["displayName"] = facts.FromName
		obj["givenName"] = facts.FromName
		obj["surname"] = ""
		obj["emailAddresses"] = []any{map[string]string{"name": facts.FromName, "address": facts.FromAddress}}
		obj["businessPhones"] = []string{facts.Phone}
		obj["homePhones"] = []string{}
		obj["parentFolderId"] = f.ID
	}
	if it := f.Items[pos-1]; it.Content != nil {
		// Created from MIME (an import): the resource shows what the MIME
		// says, as Exchange would.
		switch f.Kind {
		case kindCalendar:
			if comps, err := itemformat.CalendarComponents(domain.FormatMIME, it.Content); err == nil {
				if uid := comps[0].Props.Get(ical.PropUID); uid != nil {
					obj["iCalUId"] = uid.Value
				}
				if sum := comps[0].Props.Get(ical.PropSummary); sum != nil {
					obj["subject"] = sum.Value
				}
			}
		case kindContacts:
			if card, err := itemformat.Card(domain.FormatMIME, it.Content); err == nil {
				obj["displayName"] = card.PreferredValue(vcard.FieldFormattedName)
			}
		}
	}
	if full {
		switch {
		case f.Kind == kindContacts:
			obj["personalNotes"] = ""
		case f.Items[pos-1].Content != nil:
			// Restored from MIME: the body as given.
			obj["body"] = map[string]string{"contentType": "text", "content": string(f.Items[pos-1].Content)}
		case f.Kind == kindCalendar:
			obj["body"] = map[string]string{"contentType": "text", "content": "Notes for " + facts.Subject + "."}
		default:
			obj["body"] = map[string]string{"contentType": "text", "content": facts.Text}
		}
		expand := c.query.Get("$expand")
		if strings.Contains(expand, "exceptionOccurrences") {
			obj["exceptionOccurrences"] = []any{}
			if f.Kind == kindCalendar && pos%10 == 3 {
				second := when.AddDate(0, 0, 7)
				obj["exceptionOccurrences"] = []any{map[string]any{"type": "exception", "subject": fmt.Sprintf("Meeting #%d (moved)", pos),
					"originalStart": second.Format(time.RFC3339),
					"start":         map[string]string{"dateTime": second.Add(time.Hour).Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"},
					"end":           map[string]string{"dateTime": second.Add(2 * time.Hour).Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}}}
			}
		}
		if strings.Contains(expand, "attachments") {
			obj["attachments"] = []any{}
		}
	}
	return obj
}

// serveItem reports whether the item may be served now: a throttled folder
// answers 429 until its window ends; a dirty item fails with 500.
func (s *Server) serveItem(f *folder, pos int) *reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byBox[f.Box]
	if wait := f.Deliver(s.now()); wait > 0 {
		m.stats.Throttled++
		return throttled("ApplicationThrottled", "Application is over its MailboxConcurrency limit.", wait)
	}
	if f.Dirty(pos) {
		return errorReply(http.StatusInternalServerError, "ErrorCorruptData", "Data is corrupt., Invalid global object ID")
	}
	m.stats.Items++
	return nil
}

// item serves GET of one item, its $value, or (for restore) nothing else.
func (s *Server) item(c *call, m *mailbox, in *folder, kind, id string, rest []string) *reply {
	if c.method == http.MethodDelete && len(rest) == 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		f, pos, ok := lookup(m, id)
		if !ok || f.Kind != kind || f.Items[pos-1].Deleted {
			return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		}
		s.store.Delete(f, pos)
		return newReply(http.StatusNoContent)
	}
	if c.method == http.MethodPatch && len(rest) == 0 {
		// Only extended properties are kept: the restore mark.
		var body struct {
			Props []extProp `json:"singleValueExtendedProperties"`
		}
		if err := json.Unmarshal(c.body, &body); err != nil {
			return errorReply(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		f, pos, ok := lookup(m, id)
		if !ok || f.Kind != kind || f.Items[pos-1].Deleted {
			return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		}
		if mk := markerOf(body.Props); mk != "" {
			f.Items[pos-1].Marker = mk
		}
		return jsonReply(http.StatusOK, s.itemJSON(c, f, pos, immutable(c), false))
	}
	if c.method != http.MethodGet {
		return methodNotAllowed()
	}
	s.mu.Lock()
	f, pos, ok := lookup(m, id)
	s.mu.Unlock()
	if !ok || f.Kind != kind || in != nil && f != in {
		return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	}
	if rep := s.serveItem(f, pos); rep != nil {
		return rep
	}
	if len(rest) == 1 && rest[0] == "$value" {
		if kind != kindMail {
			return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "$value is only available for messages.")
		}
		rep := newReply(http.StatusOK)
		rep.header.Set("Content-Type", "text/plain")
		s.mu.Lock()
		rep.body = s.store.Content(f, pos)
		s.mu.Unlock()
		return rep
	}
	if len(rest) > 0 {
		return notFound(c)
	}
	s.mu.Lock()
	obj := s.itemJSON(c, f, pos, immutable(c), true)
	s.mu.Unlock()
	obj["@odata.context"] = s.baseURL(c) + "/" + c.version + "/$metadata#users('" + m.ID + "')/" + map[string]string{kindMail: "messages", kindCalendar: "events", kindContacts: "contacts"}[kind] + "/$entity"
	return jsonReply(http.StatusOK, obj)
}

// createItem stores a posted item (restore): MIME as base64 text/plain for
// messages, JSON otherwise. A message created from MIME is a draft, as in
// Graph; it goes to Drafts unless posted to a folder.
func (s *Server) createItem(c *call, m *mailbox, f *folder, kind string) *reply {
	var content []byte
	ct := strings.ToLower(c.header.Get("Content-Type"))
	switch {
	case kind == kindMail && strings.HasPrefix(ct, "text/plain"):
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(c.body)))
		if err != nil {
			return errorReply(http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		}
		content = b
	case strings.HasPrefix(ct, "application/json"):
		if !json.Valid(c.body) {
			return errorReply(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
		}
		if kind == kindMail {
			return s.createJSONMessage(c, m, f)
		}
		return s.createJSONItem(c, m, f, kind)
	default:
		return errorReply(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be application/json (or text/plain for MIME).")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		switch kind {
		case kindMail:
			f = m.Ensure("Drafts", kindMail)
		case kindCalendar:
			f = m.Ensure("Calendar", kindCalendar)
		default:
			f = m.Ensure("Contacts", kindContacts)
		}
	}
	pos := s.store.Create(f, content)
	obj := s.itemJSON(c, f, pos, immutable(c), false)
	if kind == kindMail {
		obj["isDraft"] = strings.HasPrefix(ct, "text/plain")
	}
	return jsonReply(http.StatusCreated, obj)
}

// exportItems is the full-fidelity export: up to 20 items of one mailbox,
// one exportItemResponse each with an opaque base64 stream.
func (s *Server) exportItems(c *call, mailboxID string) *reply {
	m, rep := s.apiMailbox(c, mailboxID)
	if rep != nil {
		return rep
	}
	if !s.export {
		return errorReply(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again. The app needs MailboxItem.Export.All.")
	}
	var req struct {
		ItemIDs []string `json:"itemIds"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		return errorReply(http.StatusBadRequest, "BadRequest", "The request body is not valid JSON: "+err.Error())
	}
	if len(req.ItemIDs) == 0 || len(req.ItemIDs) > 20 {
		return errorReply(http.StatusBadRequest, "ErrorInvalidArgument", "itemIds must hold between 1 and 20 ids.")
	}
	release, rep := s.admit(m)
	if rep != nil {
		return rep
	}
	defer release()
	type itemErr struct {
		Type    string `json:"@odata.type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	type exported struct {
		Type      string   `json:"@odata.type"`
		ItemID    string   `json:"itemId"`
		ChangeKey *string  `json:"changeKey"`
		Data      *string  `json:"data"`
		Error     *itemErr `json:"error"`
	}
	out := make([]exported, 0, len(req.ItemIDs))
	for _, id := range req.ItemIDs {
		e := exported{Type: "#microsoft.graph.exportItemResponse", ItemID: id}
		s.mu.Lock()
		f, pos, ok := lookup(m, id)
		s.mu.Unlock()
		if !ok {
			e.Error = &itemErr{Type: "#microsoft.graph.mailTipsError", Code: "ErrorItemNotFound", Message: "The specified object was not found in the store."}
			out = append(out, e)
			continue
		}
		if r := s.serveItem(f, pos); r != nil {
			if r.status == http.StatusTooManyRequests || f.Spec != nil && f.Spec.DirtyMode != "item" {
				return r // throttled, or a dirty item failing the whole request
			}
			e.Error = &itemErr{Type: "#microsoft.graph.mailTipsError", Code: "ErrorCorruptData", Message: "Data is corrupt., Invalid global object ID"}
			out = append(out, e)
			continue
		}
		s.mu.Lock()
		ck := s.store.ChangeKey(f, pos)
		makeStream := s.exportStream(f, pos)
		s.mu.Unlock()
		stream, err := makeStream()
		if err != nil {
			e.Error = &itemErr{Type: "#microsoft.graph.mailTipsError", Code: "ErrorCorruptData", Message: "Data is corrupt."}
			out = append(out, e)
			continue
		}
		data := base64.StdEncoding.EncodeToString(stream)
		e.ChangeKey, e.Data = &ck, &data
		out = append(out, e)
	}
	return jsonReply(http.StatusOK, map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#Collection(microsoft.graph.exportItemResponse)", "value": out})
}

// batchRequest is one entry of a $batch body.
type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// batch runs up to 20 sub-requests, at most 4 at once (as Graph does against
// Exchange Online), each admitted and counted on its own.
func (s *Server) batch(c *call) *reply {
	if c.method != http.MethodPost {
		return methodNotAllowed()
	}
	var req struct {
		Requests []batchRequest `json:"requests"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		return errorReply(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: "+err.Error())
	}
	if len(req.Requests) == 0 {
		return errorReply(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: no requests.")
	}
	if len(req.Requests) > 20 {
		return errorReply(http.StatusBadRequest, "BadRequest", "Number of batch requests exceeds the limit of 20.")
	}
	ids := map[string]bool{}
	for _, r := range req.Requests {
		if r.ID == "" || ids[r.ID] {
			return errorReply(http.StatusBadRequest, "BadRequest", "Batch request ids must be present and unique; '"+r.ID+"' is not.")
		}
		ids[r.ID] = true
	}
	s.count(func() { s.stats.Subrequests += len(req.Requests) })
	results := make([]batchResponse, len(req.Requests))
	run := func(i int) {
		r := req.Requests[i]
		results[i] = s.subrequest(c, r)
	}
	ordered := false
	for _, r := range req.Requests {
		ordered = ordered || len(r.DependsOn) > 0
	}
	if ordered {
		status := map[string]int{}
		for i, r := range req.Requests {
			failed := false
			for _, d := range r.DependsOn {
				failed = failed || status[d] >= 400 || status[d] == 0
			}
			if failed {
				results[i] = batchResponse{ID: r.ID, Status: http.StatusFailedDependency,
					Body: graphError{Error: graphErrorBody{Code: "BadRequest", Message: "Failed dependency."}}}
			} else {
				run(i)
			}
			status[r.ID] = results[i].Status
		}
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i := range req.Requests {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				run(i)
			}()
		}
		wg.Wait()
	}
	// Graph returns the responses in any order; reverse pairs so that clients
	// relying on request order are caught by the tests.
	for i := 0; i+1 < len(results); i += 2 {
		results[i], results[i+1] = results[i+1], results[i]
	}
	return jsonReply(http.StatusOK, map[string]any{"responses": results})
}

func (s *Server) subrequest(parent *call, r batchRequest) batchResponse {
	u, err := url.Parse(r.URL)
	if err != nil || u.IsAbs() {
		return batchResponse{ID: r.ID, Status: http.StatusBadRequest, Body: graphError{Error: graphErrorBody{Code: "BadRequest", Message: "Invalid request URL in batch: " + r.URL}}}
	}
	h := http.Header{}
	for k, v := range r.Headers {
		h.Set(k, v)
	}
	for _, p := range parent.header.Values("Prefer") {
		h.Add("Prefer", p)
	}
	sub := &call{method: strings.ToUpper(r.Method), version: parent.version, path: strings.TrimPrefix(u.EscapedPath(), "/"),
		query: u.Query(), header: h, ctx: parent.ctx, base: parent.base}
	if len(r.Body) > 0 && string(r.Body) != "null" {
		var str string
		if json.Unmarshal(r.Body, &str) == nil {
			sub.body = []byte(str)
		} else {
			sub.body = r.Body
		}
	}
	rep := s.dispatch(sub)
	s.answered(rep.status)
	out := batchResponse{ID: r.ID, Status: rep.status, Headers: map[string]string{}}
	for k := range rep.header {
		out.Headers[k] = rep.header.Get(k)
	}
	if len(rep.body) > 0 {
		if strings.HasPrefix(rep.header.Get("Content-Type"), "application/json") {
			out.Body = json.RawMessage(rep.body)
		} else {
			// Graph base64-encodes bodies that are not JSON.
			out.Body = base64.StdEncoding.EncodeToString(rep.body)
		}
	}
	return out
}
