package graphsim

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mailvault/mailvault/adapters/simtenant"
)

// folderClass is a folder's class as the mailbox API's type property
// names it.
func folderClass(kind string) string {
	switch kind {
	case kindCalendar:
		return "IPF.Appointment"
	case kindContacts:
		return "IPF.Contact"
	case simtenant.KindTasks:
		return "IPF.Task"
	case simtenant.KindNotes:
		return "IPF.StickyNote"
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
	m := s.mailboxByKey(mailboxID)
	if m == nil {
		return errorReply(http.StatusNotFound, "ErrorMailboxNotFound", "The mailbox '"+mailboxID+"' was not found.")
	}
	if !s.mailboxFolders {
		return errorReply(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again. The app needs MailboxItem.Read.All.")
	}
	release, rep := s.admit(m)
	if rep != nil {
		return rep
	}
	defer release()
	s.delay(c)
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
	value := make([]map[string]any, 0, size)
	off := st.Off
	for off < len(f.Items) && len(value) < size {
		it := f.Items[off]
		off++
		if !st.Round && it.Deleted || st.Round && it.Seq <= st.Since {
			continue
		}
		id := s.itemID(f, off, false)
		if it.Deleted {
			value = append(value, map[string]any{"@odata.type": "#microsoft.graph.mailboxItem", "id": id, "@removed": map[string]string{"reason": "deleted"}})
			continue
		}
		when := s.store.Time(f, off).UTC().Format(time.RFC3339)
		value = append(value, selectFields(map[string]any{"@odata.type": "#microsoft.graph.mailboxItem", "id": id, "type": itemClass(f.Kind),
			"size": s.store.Size(f, off), "createdDateTime": when, "lastModifiedDateTime": when, "changeKey": s.store.ChangeKey(f, off)}, st.Select))
	}
	st.Page++
	rep = jsonReply(http.StatusOK, s.deltaPage(c, st, off, off < len(f.Items), "mailboxItem", value))
	if applied {
		rep.header.Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	return rep
}

// itemClass is the message class of a folder's items.
func itemClass(kind string) string {
	switch kind {
	case kindCalendar:
		return "IPM.Appointment"
	case kindContacts:
		return "IPM.Contact"
	case simtenant.KindTasks:
		return "IPM.Task"
	case simtenant.KindNotes:
		return "IPM.StickyNote"
	}
	return "IPM.Note"
}
