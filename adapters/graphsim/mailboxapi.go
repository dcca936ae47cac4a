package graphsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// mailboxFolderJSON is a folder as the mailbox API (mailboxFolder) shows
// it. Folders that hang off the mailbox in the per-kind routes (calendars,
// top contact folders) are children of the root here, as they are in the
// store.
func (s *Server) mailboxFolderJSON(c *call, m *mailbox, f *folder) map[string]any {
	parent := m.Root.ID
	if f.Parent != nil {
		parent = f.Parent.ID
	}
	var wellKnown any
	if f.WellKnown != "" {
		wellKnown = f.WellKnown
	}
	return map[string]any{"@odata.type": "#microsoft.graph.mailboxFolder", "id": f.ID, "displayName": f.Name,
		"parentFolderId": parent, "childFolderCount": len(f.Children), "totalItemCount": f.Live(), "type": domain.FolderClass(f.Kind),
		"wellKnownName": wellKnown, "parentMailboxUrl": s.baseURL(c) + "/" + c.version + "/admin/exchange/mailboxes/" + m.exchangeID}
}

// apiMailbox finds the mailbox a mailbox API route names by its Exchange
// id. An archive mailbox is served on beta only, as Graph does: v1.0 covers
// primary and shared mailboxes.
func (s *Server) apiMailbox(c *call, mailboxID string) (*mailbox, *reply) {
	m := s.mailboxByKey(mailboxID)
	if m == nil {
		return nil, errorReply(http.StatusNotFound, "ErrorMailboxNotFound", "The mailbox '"+mailboxID+"' was not found.")
	}
	if m.ArchiveOf != nil && c.version != "beta" {
		return nil, errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "Archive mailboxes are available on the beta endpoint only.")
	}
	return m, nil
}

// archiveID is a mailbox's archiveMailboxId: its archive's id, or null.
func archiveID(m *mailbox) any {
	if m.archive == nil {
		return nil
	}
	return m.archive.exchangeID
}

// mailboxAPI opens a request of the mailbox API: the mailbox by its
// Exchange id, the permission the route needs (the simulator grants the
// mailbox API's permissions together), the mailbox's admission and the
// configured latency. release is for the caller to defer.
func (s *Server) mailboxAPI(c *call, mailboxID, permission string) (*mailbox, func(), *reply) {
	m, rep := s.apiMailbox(c, mailboxID)
	if rep != nil {
		return nil, nil, rep
	}
	if !s.mailboxFolders {
		return nil, nil, errorReply(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again. The app needs "+permission+".")
	}
	release, rep := s.admit(m)
	if rep != nil {
		return nil, nil, rep
	}
	s.delay(c)
	return m, release, nil
}

// folderDelta serves GET admin/exchange/mailboxes/{id}/folders/delta: the
// whole hierarchy below the root on a first round, the folders created
// since on a round started from a deltaLink. Pages follow odata.maxpagesize
// (10 by default) with $skiptoken nextLinks; the last page has the
// deltaLink.
func (s *Server) folderDelta(c *call, mailboxID string) *reply {
	m, release, rep := s.mailboxAPI(c, mailboxID, "MailboxFolder.Read.All")
	if rep != nil {
		return rep
	}
	defer release()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, rep := s.deltaRound(c, "folders:"+m.exchangeID, "folder collection")
	if rep != nil {
		return rep
	}
	size, applied := maxPageSize(c, 10, 1000)
	value := make([]map[string]any, 0, min(size, len(m.Folders)))
	off := st.Off
	for off < len(m.Folders) && len(value) < size {
		f := m.Folders[off]
		off++
		if st.Round && f.Seq <= st.Since {
			continue
		}
		obj := selectFields(s.mailboxFolderJSON(c, m, f), st.Select)
		obj["parentMailboxUrl"] = s.baseURL(c) + "/" + c.version + "/admin/exchange/mailboxes/" + m.exchangeID
		value = append(value, obj)
	}
	st.Page++
	rep = jsonReply(http.StatusOK, s.deltaPage(c, st, off, off < len(m.Folders), "mailboxFolder", value))
	if applied {
		rep.header.Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	return rep
}

// itemDelta serves GET admin/exchange/mailboxes/{id}/folders/{id}/items/delta:
// a folder's items as mailboxItem (id, type as the item's class, size,
// times, change key), whatever the folder's class, paged and tracked as
// the other delta routes; deleted items come as @removed.
func (s *Server) itemDelta(c *call, mailboxID, folderID string) *reply {
	m, release, rep := s.mailboxAPI(c, mailboxID, "MailboxItem.Read.All")
	if rep != nil {
		return rep
	}
	defer release()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := m.ByID[folderID]
	if f == nil {
		return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	}
	st, rep := s.deltaRound(c, "items:"+f.ID, "folder")
	if rep != nil {
		return rep
	}
	size, applied := maxPageSize(c, 10, 1000)
	value, off := s.deltaItems(f, st, size, false, "mailboxItem", func(pos int, id string) map[string]any { return s.mailboxItemJSON(f, pos, id) })
	st.Page++
	rep = jsonReply(http.StatusOK, s.deltaPage(c, st, off, off < len(f.Items), "mailboxItem", value))
	if applied {
		rep.header.Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	return rep
}

// mailboxFolderRoutes serves the mailbox API's folder routes below
// admin/exchange/mailboxes/{id}/folders: the top-level folders (GET, POST),
// one folder, its childFolders (GET, POST) and its items (GET, filtered by
// extended properties).
func (s *Server) mailboxFolderRoutes(c *call, mailboxID string, rest []string) *reply {
	permission := "MailboxFolder.Read.All"
	if c.method == http.MethodPost {
		permission = "MailboxFolder.ReadWrite.All"
	} else if len(rest) == 2 && rest[1] == "items" {
		permission = "MailboxItem.Read.All"
	}
	m, release, rep := s.mailboxAPI(c, mailboxID, permission)
	if rep != nil {
		return rep
	}
	defer release()
	var f *folder
	if len(rest) > 0 {
		s.mu.Lock()
		f = m.ByID[rest[0]]
		s.mu.Unlock()
		if f == nil {
			return errorReply(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		}
	}
	switch {
	case len(rest) == 0 || len(rest) == 2 && rest[1] == "childFolders":
		switch c.method {
		case http.MethodPost:
			return s.createMailboxFolder(c, m, f)
		case http.MethodGet:
			return s.childFolderPage(c, m, f)
		}
		return methodNotAllowed()
	case len(rest) == 1 && c.method == http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		return jsonReply(http.StatusOK, selectFields(s.mailboxFolderJSON(c, m, f), c.query.Get("$select")))
	case len(rest) == 2 && rest[1] == "items" && c.method == http.MethodGet:
		return s.itemList(c, f, false, func(pos int) map[string]any { return s.mailboxItemJSON(f, pos, s.itemID(f, pos, true)) })
	}
	return notFound(c)
}

// childOf tells whether f is a child of parent in the mailbox API's tree:
// for nil, of the root, where the folders the model keeps beside the tree
// (calendars, top contact folders) hang too.
func childOf(m *mailbox, f, parent *folder) bool {
	if parent == nil {
		return f.Parent == nil || f.Parent == m.Root
	}
	return f.Parent == parent
}

// childFolderPage lists the folders under parent (the root for nil) as
// mailboxFolder, paged by $skip.
func (s *Server) childFolderPage(c *call, m *mailbox, parent *folder) *reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []*folder
	for _, f := range m.Folders {
		if childOf(m, f, parent) {
			list = append(list, f)
		}
	}
	list, rep := filterFolders(c, list)
	if rep != nil {
		return rep
	}
	skip, end := pageOf(c, len(list))
	value := []map[string]any{}
	for _, f := range list[skip:end] {
		value = append(value, selectFields(s.mailboxFolderJSON(c, m, f), c.query.Get("$select")))
	}
	out := map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#Collection(microsoft.graph.mailboxFolder)", "value": value}
	if end < len(list) {
		out["@odata.nextLink"] = s.skipLink(c, end)
	}
	return jsonReply(http.StatusOK, out)
}

// createMailboxFolder serves POST of the mailbox API's folders or
// childFolders: displayName and type (the folder class, IPF.Note when
// absent); a name taken under the parent is a conflict, whatever its
// class, as in Exchange.
func (s *Server) createMailboxFolder(c *call, m *mailbox, parent *folder) *reply {
	var body struct {
		DisplayName string `json:"displayName"`
		Type        string `json:"type"`
	}
	if err := json.Unmarshal(c.body, &body); err != nil {
		return errorReply(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
	}
	if strings.TrimSpace(body.DisplayName) == "" || strings.ContainsAny(body.DisplayName, "/\\") {
		return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "The folder name is missing or invalid.")
	}
	kind := domain.KindOfFolderClass(body.Type)
	if kind == "" {
		return errorReply(http.StatusBadRequest, "ErrorInvalidRequest", "The simulator does not model folders of class '"+body.Type+"'.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range m.Folders {
		if childOf(m, f, parent) && strings.EqualFold(f.Name, body.DisplayName) {
			return errorReply(http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
		}
	}
	f := s.store.CreateChild(m.Box, parent, body.DisplayName, kind)
	return jsonReply(http.StatusCreated, s.mailboxFolderJSON(c, m, f))
}

// mailboxItemJSON is an item as the mailbox API (mailboxItem) shows it.
func (s *Server) mailboxItemJSON(f *folder, pos int, id string) map[string]any {
	when := s.store.Time(f, pos).UTC().Format(time.RFC3339)
	return map[string]any{"@odata.type": "#microsoft.graph.mailboxItem", "id": id, "type": domain.ItemClass(f.Kind),
		"size": s.store.Size(f, pos), "createdDateTime": when, "lastModifiedDateTime": when, "changeKey": s.store.ChangeKey(f, pos)}
}
