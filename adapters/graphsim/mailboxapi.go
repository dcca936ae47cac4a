package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// folderClass is a folder's class as the mailbox API's type property
// names it.
func folderClass(kind string) string {
	switch kind {
	case kindCalendar:
		return "IPF.Appointment"
	case kindContacts:
		return "IPF.Contact"
	}
	return "IPF.Note"
}

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
		"parentFolderId": parent, "childFolderCount": len(f.Children), "totalItemCount": f.Live(), "type": folderClass(f.Kind),
		"wellKnownName": wellKnown, "parentMailboxUrl": s.baseURL(c) + "/" + c.version + "/admin/exchange/mailboxes/" + m.exchangeID}
}

// folderDelta serves GET admin/exchange/mailboxes/{id}/folders/delta: the
// whole hierarchy below the root on a first round, the folders created
// since on a round started from a deltaLink. Pages follow odata.maxpagesize
// (10 by default) with $skiptoken nextLinks; the last page has the
// deltaLink.
func (s *Server) folderDelta(c *call, mailboxID string) *reply {
	m := s.mailboxByKey(mailboxID)
	if m == nil {
		return errorReply(http.StatusNotFound, "ErrorMailboxNotFound", "The mailbox '"+mailboxID+"' was not found.")
	}
	if !s.mailboxFolders {
		return errorReply(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again. The app needs MailboxFolder.Read.All.")
	}
	release, rep := s.admit(m)
	if rep != nil {
		return rep
	}
	defer release()
	s.delay(c)
	collection := "folders:" + m.exchangeID
	var st deltaState
	tok := c.query.Get("$skiptoken")
	if tok == "" {
		tok = c.query.Get("$deltatoken")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || json.Unmarshal(b, &st) != nil || st.Folder != collection {
			return errorReply(http.StatusBadRequest, "SyncStateInvalid", "The sync state is invalid or was created for another folder collection.")
		}
		if st.Epoch != s.epoch {
			return errorReply(http.StatusGone, s.resync, "The sync state generation was not found. Start a new synchronization.")
		}
		if st.Final {
			st = deltaState{Folder: collection, Since: st.Snap, Round: true, Snap: s.store.Seq, Epoch: s.epoch, Select: st.Select}
		}
	} else {
		st = deltaState{Folder: collection, Snap: s.store.Seq, Epoch: s.epoch, Select: c.query.Get("$select")}
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
	next := st
	next.Off = off
	out := map[string]any{"@odata.context": s.baseURL(c) + "/" + c.version + "/$metadata#Collection(mailboxFolder)", "value": value}
	link := s.baseURL(c) + "/" + c.version + "/" + strings.TrimPrefix(c.path, "/") + "?"
	if off < len(m.Folders) {
		out["@odata.nextLink"] = link + "$skiptoken=" + encodeState(next)
	} else {
		next.Final = true
		out["@odata.deltaLink"] = link + "$deltatoken=" + encodeState(next)
	}
	rep = jsonReply(http.StatusOK, out)
	if applied {
		rep.header.Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	return rep
}
