package ewssim

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// folderRefXML is a DistinguishedFolderId or a FolderId.
type folderRefXML struct {
	XMLName xml.Name
	ID      string `xml:"Id,attr"`
	Mailbox struct {
		Email string `xml:"EmailAddress"`
	} `xml:"Mailbox"`
}

type refList struct {
	List []folderRefXML `xml:",any"`
}

type itemRefXML struct {
	ID string `xml:"Id,attr"`
}

// resolve finds the folder a reference names.
func (c *opContext) resolve(r folderRefXML) *simtenant.StoredFolder {
	st := c.s.store
	if r.XMLName.Local == "DistinguishedFolderId" {
		if r.ID == "publicfoldersroot" {
			if st.Public == nil {
				return nil
			}
			return st.Public.Root
		}
		b := c.box(r.Mailbox.Email)
		if b == nil {
			return nil
		}
		if strings.EqualFold(r.ID, "archivemsgfolderroot") {
			if b.Archive == nil {
				return nil // no archive: ErrorFolderNotFound, as Exchange answers
			}
			return b.Archive.Root
		}
		if f := b.WellKnownFolder(r.ID); f != nil {
			return f
		}
		return c.s.storeFolder(b, "", strings.ToLower(r.ID))
	}
	for _, b := range st.Boxes() {
		if f := b.ByID[r.ID]; f != nil {
			return f
		}
		if f := c.s.storeFolder(b, r.ID, ""); f != nil {
			return f
		}
	}
	return nil
}

// box is the mailbox a request works on: named, impersonated, or the
// account's own.
func (c *opContext) box(named string) *simtenant.Box {
	switch {
	case named != "":
		return c.s.store.Box(named)
	case c.req.impersonate != "":
		return c.s.store.Box(c.req.impersonate)
	}
	return c.s.store.Box(c.s.username)
}

func (c *opContext) decode(v any) bool {
	if err := xml.Unmarshal(c.req.body, v); err != nil {
		c.fault = &faultReply{"ErrorSchemaValidation", "The request failed schema validation: " + err.Error()}
		return false
	}
	return true
}

func success(op, inner string) string {
	return `<m:` + op + `ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>` + inner + `</m:` + op + `ResponseMessage>`
}

func failure(op, code, text string) string {
	// The schema requires GetItem's response message to hold Items, empty
	// on an error, as Exchange sends it.
	tail := ""
	if op == "GetItem" {
		tail = `<m:Items/>`
	}
	return `<m:` + op + `ResponseMessage ResponseClass="Error"><m:MessageText>` + esc(text) + `</m:MessageText><m:ResponseCode>` + code +
		`</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>` + tail + `</m:` + op + `ResponseMessage>`
}

// folderClass is the element EWS shows a folder of kind as, and its class
// (notes and journal folders are plain Folders of their class).
func folderClass(kind string) (element, class string) {
	element = map[string]string{domain.KindCalendar: "CalendarFolder", domain.KindContacts: "ContactsFolder", domain.KindTasks: "TasksFolder"}[kind]
	if element == "" {
		element = "Folder"
	}
	if class = domain.FolderClass(kind); class == "" {
		class = domain.FolderClass(domain.KindMail)
	}
	return element, class
}

func idXML(el, id, ck string) string {
	if ck == "" {
		return `<t:` + el + ` Id="` + esc(id) + `"/>`
	}
	return `<t:` + el + ` Id="` + esc(id) + `" ChangeKey="` + esc(ck) + `"/>`
}

// folderShape is the properties a request asks for: its base shape's and
// the additional ones (field URIs without the "folder:" prefix).
type folderShape struct {
	Base       string `xml:"BaseShape"`
	Additional []struct {
		URI string `xml:"FieldURI,attr"`
	} `xml:"AdditionalProperties>FieldURI"`
}

// wants says whether the shape asks for a folder property.
func (sh folderShape) wants(prop string) bool {
	switch sh.Base {
	case "AllProperties":
		return true
	case "Default":
		switch prop {
		case "DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount":
			return true
		}
	}
	for _, a := range sh.Additional {
		if a.URI == "folder:"+prop {
			return true
		}
	}
	return false
}

// folderXML renders a folder with the properties the shape asks for, and
// only those, in the schema's order.
func folderXML(f *simtenant.StoredFolder, sh folderShape) string {
	el, class := folderClass(f.Kind)
	s := `<t:` + el + `>` + idXML("FolderId", f.ID, "AQAAABYAAA"+f.ID[6:12])
	if f.Parent != nil && sh.wants("ParentFolderId") {
		s += idXML("ParentFolderId", f.Parent.ID, "")
	}
	if sh.wants("FolderClass") && f.WellKnown != "root" {
		s += `<t:FolderClass>` + class + `</t:FolderClass>`
	}
	if sh.wants("DisplayName") {
		s += `<t:DisplayName>` + esc(f.Name) + `</t:DisplayName>`
	}
	if sh.wants("TotalCount") {
		s += `<t:TotalCount>` + strconv.Itoa(f.Live()) + `</t:TotalCount>`
	}
	if sh.wants("ChildFolderCount") {
		s += `<t:ChildFolderCount>` + strconv.Itoa(len(children(f))) + `</t:ChildFolderCount>`
	}
	if sh.wants("EffectiveRights") {
		s += `<t:EffectiveRights><t:CreateAssociated>true</t:CreateAssociated><t:CreateContents>true</t:CreateContents><t:CreateHierarchy>true</t:CreateHierarchy>` +
			`<t:Delete>true</t:Delete><t:Modify>true</t:Modify><t:Read>true</t:Read><t:ViewPrivateItems>true</t:ViewPrivateItems></t:EffectiveRights>`
	}
	if el == "Folder" && sh.wants("UnreadCount") {
		// As the Graph rendering: every third message is unread.
		s += `<t:UnreadCount>` + strconv.Itoa(f.Live()/3) + `</t:UnreadCount>`
	}
	return s + `</t:` + el + `>`
}

func (s *Server) getFolder(c *opContext) (string, *throttle) {
	var req struct {
		Shape folderShape `xml:"FolderShape"`
		IDs   refList     `xml:"FolderIds"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = len(req.IDs.List)
	if t := c.admit(c.box("")); t != nil {
		return "", t
	}
	var b strings.Builder
	for _, r := range req.IDs.List {
		f := c.resolve(r)
		if f == nil {
			b.WriteString(failure("GetFolder", "ErrorFolderNotFound", "The specified folder could not be found in the store."))
			continue
		}
		b.WriteString(success("GetFolder", `<m:Folders>`+folderXML(s.presented(f), req.Shape)+`</m:Folders>`))
	}
	return b.String(), nil
}

func (s *Server) syncFolderHierarchy(c *opContext) (string, *throttle) {
	var req struct {
		Shape     folderShape `xml:"FolderShape"`
		Root      refList     `xml:"SyncFolderId"`
		SyncState string      `xml:"SyncState"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = 1
	root := s.store.Mailboxes[0].Root
	if len(req.Root.List) > 0 {
		root = c.resolve(req.Root.List[0])
	} else if b := c.box(""); b != nil {
		root = b.Root
	}
	if root == nil {
		return failure("SyncFolderHierarchy", "ErrorFolderNotFound", "The specified folder could not be found in the store."), nil
	}
	if t := c.admit(root.Box); t != nil {
		return "", t
	}
	// The state is the store's change sequence when the last sync ended:
	// the first sync reports every folder, later ones the folders created
	// since (through the API, or the simulator's mutate control).
	var since uint64
	if req.SyncState != "" {
		b, err := base64.StdEncoding.DecodeString(req.SyncState)
		st := strings.TrimPrefix(string(b), "H4sI-hierarchy-"+root.ID+"-")
		n, perr := strconv.ParseUint(st, 10, 64)
		if err != nil || perr != nil || st == string(b) {
			return failure("SyncFolderHierarchy", "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."), nil
		}
		since = n
	}
	var changes strings.Builder
	var walk func(f *simtenant.StoredFolder)
	walk = func(f *simtenant.StoredFolder) {
		for _, ch := range children(f) {
			if req.SyncState == "" || ch.Seq > since {
				changes.WriteString(`<t:Create>` + folderXML(ch, req.Shape) + `</t:Create>`)
			}
			walk(ch)
		}
	}
	walk(root)
	state := base64.StdEncoding.EncodeToString([]byte("H4sI-hierarchy-" + root.ID + "-" + strconv.FormatUint(s.store.Seq, 10)))
	return success("SyncFolderHierarchy", `<m:SyncState>`+state+`</m:SyncState><m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange><m:Changes>`+changes.String()+`</m:Changes>`), nil
}

// withParent presents a folder kept beside the tree (a calendar) under the
// tree's root, as Exchange does.
func withParent(f, root *simtenant.StoredFolder) *simtenant.StoredFolder {
	g := *f
	g.Parent = root
	return &g
}

func (s *Server) findFolder(c *opContext) (string, *throttle) {
	var req struct {
		Traversal string      `xml:"Traversal,attr"`
		Shape     folderShape `xml:"FolderShape"`
		View      struct {
			Max    int `xml:"MaxEntriesReturned,attr"`
			Offset int `xml:"Offset,attr"`
		} `xml:"IndexedPageFolderView"`
		Parents refList `xml:"ParentFolderIds"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = len(req.Parents.List)
	var b strings.Builder
	for _, r := range req.Parents.List {
		f := c.resolve(r)
		if f == nil {
			b.WriteString(failure("FindFolder", "ErrorFolderNotFound", "The specified folder could not be found in the store."))
			continue
		}
		if t := c.admit(f.Box); t != nil {
			return "", t
		}
		if req.Traversal == "Deep" && f.Box == s.store.Public {
			b.WriteString(failure("FindFolder", "ErrorInvalidOperation", "Deep traversal queries are not allowed for public folders."))
			continue
		}
		var list []*simtenant.StoredFolder
		var walk func(f *simtenant.StoredFolder)
		walk = func(f *simtenant.StoredFolder) {
			for _, ch := range children(f) {
				list = append(list, ch)
				if req.Traversal == "Deep" {
					walk(ch)
				}
			}
		}
		walk(f)
		maxN := req.View.Max
		if maxN <= 0 || maxN > 1000 {
			maxN = 1000
		}
		off := min(max(req.View.Offset, 0), len(list))
		end := min(off+maxN, len(list))
		var fs strings.Builder
		for _, ch := range list[off:end] {
			fs.WriteString(folderXML(ch, req.Shape))
		}
		b.WriteString(success("FindFolder", `<m:RootFolder IndexedPagingOffset="`+strconv.Itoa(end)+`" TotalItemsInView="`+strconv.Itoa(len(list))+
			`" IncludesLastItemInRange="`+strconv.FormatBool(end == len(list))+`"><t:Folders>`+fs.String()+`</t:Folders></m:RootFolder>`))
	}
	return b.String(), nil
}

// syncState is what a SyncState carries (opaque to clients; base64 JSON).
type syncState struct {
	Folder string `json:"f"`
	Round  bool   `json:"r,omitempty"`     // a change round (after the first full sync)
	Fresh  bool   `json:"fresh,omitempty"` // a round not started yet: snap is taken on use
	Since  uint64 `json:"since"`
	Snap   uint64 `json:"snap"`
	Off    int    `json:"off"`
	Epoch  int    `json:"e"`
	Page   int    `json:"p"`
}

func encodeState(st syncState) string {
	b, _ := json.Marshal(st)
	return base64.StdEncoding.EncodeToString(b)
}

func itemElement(kind string) string {
	switch kind {
	case domain.KindCalendar:
		return "CalendarItem"
	case domain.KindContacts:
		return "Contact"
	case domain.KindTasks:
		return "Task"
	}
	return "Message" // notes too: EWS has no element of their own
}

func (s *Server) syncFolderItems(c *opContext) (string, *throttle) {
	var req struct {
		Shape struct {
			Fields []struct {
				URI string `xml:"FieldURI,attr"`
			} `xml:"AdditionalProperties>FieldURI"`
		} `xml:"ItemShape"`
		Folder    refList `xml:"SyncFolderId"`
		SyncState string  `xml:"SyncState"`
		Max       int     `xml:"MaxChangesReturned"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = 1
	const op = "SyncFolderItems"
	if len(req.Folder.List) == 0 {
		return failure(op, "ErrorFolderNotFound", "The specified folder could not be found in the store."), nil
	}
	f := c.resolve(req.Folder.List[0])
	if f == nil {
		return failure(op, "ErrorFolderNotFound", "The specified folder could not be found in the store."), nil
	}
	if t := c.admit(f.Box); t != nil {
		return "", t
	}
	if req.Max < 1 || req.Max > 512 {
		return failure(op, "ErrorInvalidArgument", "MaxChangesReturned must be between 1 and 512."), nil
	}
	fields := map[string]bool{}
	for _, fu := range req.Shape.Fields {
		fields[fu.URI] = true
	}
	st := syncState{Folder: f.ID, Snap: s.store.Seq, Epoch: s.epoch}
	if req.SyncState != "" {
		b, err := base64.StdEncoding.DecodeString(req.SyncState)
		if err != nil || json.Unmarshal(b, &st) != nil || st.Folder != f.ID || st.Epoch != s.epoch {
			return failure(op, "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."), nil
		}
		if st.Fresh {
			st.Fresh, st.Snap, st.Off, st.Page = false, s.store.Seq, 0, 0
		}
	}
	var changes strings.Builder
	n := 0
	off := st.Off
	for off < len(f.Items) && n < req.Max {
		it := f.Items[off]
		off++
		if !st.Round && it.Deleted || st.Round && it.Seq <= st.Since {
			continue
		}
		n++
		id := s.store.ItemID(f, off)
		if it.Deleted {
			changes.WriteString(`<t:Delete>` + idXML("ItemId", id, "") + `</t:Delete>`)
			continue
		}
		kind := "Create"
		if st.Round && it.Version > 0 {
			kind = "Update" // a new version of an item the client has seen
		}
		el := itemElement(f.Kind)
		body := idXML("ItemId", id, s.store.ChangeKey(f, off))
		// In the schema's order: ItemId, Size, LastModifiedTime, then the
		// calendar item's Start.
		if fields["item:Size"] {
			body += `<t:Size>` + strconv.FormatInt(s.store.Size(f, off), 10) + `</t:Size>`
		}
		when := s.store.Time(f, off).UTC()
		if fields["item:LastModifiedTime"] {
			modified := when
			if f.Kind == domain.KindCalendar {
				modified = when.Add(-30 * 24 * time.Hour) // invited a month ahead
			}
			body += `<t:LastModifiedTime>` + modified.Format(time.RFC3339) + `</t:LastModifiedTime>`
		}
		if fields["calendar:Start"] && f.Kind == domain.KindCalendar {
			body += `<t:Start>` + when.Format(time.RFC3339) + `</t:Start>`
		}
		changes.WriteString(`<t:` + kind + `><t:` + el + `>` + body + `</t:` + el + `></t:` + kind + `>`)
	}
	st.Page++
	s.store.ApplyChanges(f, st.Page)
	last := off >= len(f.Items)
	next := st
	next.Off = off
	if last {
		next = syncState{Folder: f.ID, Round: true, Fresh: true, Since: st.Snap, Epoch: s.epoch}
	}
	return success(op, `<m:SyncState>`+encodeState(next)+`</m:SyncState><m:IncludesLastItemInRange>`+strconv.FormatBool(last)+
		`</m:IncludesLastItemInRange><m:Changes>`+changes.String()+`</m:Changes>`), nil
}

type itemsRequest struct {
	IDs struct {
		List []itemRefXML `xml:"ItemId"`
	} `xml:"ItemIds"`
}

// serve looks items up and applies folder throttles and dirty items under
// the lock, then renders each item's answer without it; it returns the
// response messages, or a throttle or a fault for the whole request.
func (s *Server) serve(c *opContext, op string, ids []itemRefXML, render func(sn simtenant.Snapshot, kind, id string) (string, error)) (string, *throttle) {
	c.count = len(ids)
	if len(ids) == 0 {
		c.fault = &faultReply{"ErrorSchemaValidation", "The request failed schema validation: ItemIds is empty."}
		return "", nil
	}
	type found struct {
		ok    bool
		dirty bool
		kind  string
		snap  simtenant.Snapshot
	}
	items := make([]found, len(ids))
	if t := func() *throttle {
		s.mu.Lock()
		defer s.mu.Unlock()
		boxes := map[*simtenant.Box]bool{}
		type loc struct {
			f   *simtenant.StoredFolder
			pos int
		}
		locs := make([]loc, len(ids))
		for i, r := range ids {
			for _, b := range s.store.Boxes() {
				if f, pos, ok := b.Lookup(r.ID); ok {
					locs[i] = loc{f, pos}
					boxes[b] = true
					break
				}
			}
		}
		for b := range boxes {
			if t := c.admit(b); t != nil {
				return t
			}
		}
		now := s.now()
		for i, l := range locs {
			if l.f == nil {
				continue
			}
			if wait := l.f.Deliver(now); wait > 0 {
				s.stats.Throttled++
				if s.backoff > 0 {
					wait = s.backoff
				}
				return &throttle{wait: wait}
			}
			if l.f.Dirty(l.pos) && l.f.DirtyMode() == simtenant.DirtyRequest {
				c.fault = &faultReply{"ErrorCorruptData", "Data is corrupt., Invalid global object ID"}
				return nil
			}
			items[i] = found{ok: true, dirty: l.f.Dirty(l.pos), kind: l.f.Kind, snap: s.store.Snapshot(l.f, l.pos)}
		}
		return nil
	}(); t != nil || c.fault != nil {
		return "", t
	}
	var b strings.Builder
	for i, it := range items {
		switch {
		case !it.ok:
			b.WriteString(failure(op, "ErrorItemNotFound", "The specified object was not found in the store."))
		case it.dirty:
			b.WriteString(failure(op, "ErrorCorruptData", "Data is corrupt., Invalid global object ID"))
		default:
			out, err := render(it.snap, it.kind, ids[i].ID)
			if err != nil {
				b.WriteString(failure(op, "ErrorCorruptData", "Data is corrupt."))
				continue
			}
			b.WriteString(success(op, out))
		}
	}
	return b.String(), nil
}

func (s *Server) exportItems(c *opContext) (string, *throttle) {
	var req itemsRequest
	if !c.decode(&req) {
		return "", nil
	}
	return s.serve(c, "ExportItems", req.IDs.List, func(sn simtenant.Snapshot, _, id string) (string, error) {
		// An item's FastTransfer stream: the one it was imported as, or one
		// made from its MIME rendering.
		data := sn.Stream()
		if data == nil {
			var err error
			if data, err = itemformat.ExportStream(sn.Content(), !sn.Unread); err != nil {
				return "", err
			}
		}
		// ExportItems's ItemId is in the messages namespace, unlike elsewhere.
		return `<m:ItemId Id="` + esc(id) + `" ChangeKey="` + esc(sn.ChangeKey) + `"/><m:Data>` + base64.StdEncoding.EncodeToString(data) + `</m:Data>`, nil
	})
}

func (s *Server) getItem(c *opContext) (string, *throttle) {
	var req struct {
		itemsRequest
		Shape itemShape `xml:"ItemShape"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	return s.serve(c, "GetItem", req.IDs.List, func(sn simtenant.Snapshot, kind, id string) (string, error) {
		return `<m:Items>` + itemXML(sn, id, req.Shape) + `</m:Items>`, nil
	})
}

// uploadItems imports exported blobs (restore): CreateNew into a folder, or
// Update / UpdateOrCreate an item.
func (s *Server) uploadItems(c *opContext) (string, *throttle) {
	var req struct {
		Items []struct {
			Action string      `xml:"CreateAction,attr"`
			Parent itemRefXML  `xml:"ParentFolderId"`
			ItemID *itemRefXML `xml:"ItemId"`
			Data   string      `xml:"Data"`
		} `xml:"Items>Item"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = len(req.Items)
	const op = "UploadItems"
	var b strings.Builder
	for _, it := range req.Items {
		f := c.resolve(folderRefXML{XMLName: xml.Name{Local: "FolderId"}, ID: it.Parent.ID})
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(it.Data))
		var content []byte
		if err == nil {
			content, err = itemformat.MIME(domain.FormatEWSExport, data)
		}
		switch {
		case f == nil:
			b.WriteString(failure(op, "ErrorFolderNotFound", "The specified folder could not be found in the store."))
		case err != nil:
			b.WriteString(failure(op, "ErrorInvalidArgument", "The data is not an exported item."))
		default:
			if t := c.admit(f.Box); t != nil {
				return "", t
			}
			pos := s.store.CreateImported(f, content, data)
			f.Items[pos-1].Marker = itemformat.StreamMark(data) // its named properties stay on the item
			// As in ExportItems, this ItemId is in the messages namespace.
			b.WriteString(success(op, `<m:ItemId Id="`+esc(s.store.ItemID(f, pos))+`" ChangeKey="`+esc(s.store.ChangeKey(f, pos))+`"/>`))
		}
	}
	return b.String(), nil
}

// deleteItem serves DeleteItem (a restore replacing an item): each item by
// id, whatever the DeleteType (the simulator keeps no dumpster), answered
// ErrorItemNotFound when it is not there.
func (s *Server) deleteItem(c *opContext) (string, *throttle) {
	var req struct {
		DeleteType string `xml:"DeleteType,attr"`
		itemsRequest
	}
	if !c.decode(&req) {
		return "", nil
	}
	switch req.DeleteType {
	case "HardDelete", "SoftDelete", "MoveToDeletedItems":
	default:
		c.fault = &faultReply{"ErrorSchemaValidation", "The request failed schema validation: DeleteType " + req.DeleteType + " is not valid."}
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = len(req.IDs.List)
	const op = "DeleteItem"
	var b strings.Builder
	for _, r := range req.IDs.List {
		var folder *simtenant.StoredFolder
		var pos int
		for _, box := range s.store.Boxes() {
			if f, p, ok := box.Lookup(r.ID); ok {
				folder, pos = f, p
				break
			}
		}
		if folder == nil {
			b.WriteString(failure(op, "ErrorItemNotFound", "The specified object was not found in the store."))
			continue
		}
		if t := c.admit(folder.Box); t != nil {
			return "", t
		}
		s.store.Delete(folder, pos)
		b.WriteString(success(op, ""))
	}
	return b.String(), nil
}

// control is the test API: change a folder, expire sync states, stats.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	simtenant.Control{Secret: s.password, Stats: func() any { return s.Stats() },
		Mutate:     s.mutate,
		ExpirePath: "/_sim/expire-syncstates", Expire: s.ExpireSyncStates}.ServeHTTP(w, r)
}

// createFolder serves CreateFolder: one or more folders under a parent
// (mail, calendar, contacts or tasks folders, by element name; a Folder
// of class IPF.StickyNote holds notes).
func (s *Server) createFolder(c *opContext) (string, *throttle) {
	var req struct {
		Parent  refList `xml:"ParentFolderId"`
		Folders struct {
			List []struct {
				XMLName xml.Name
				Class   string `xml:"FolderClass"`
				Name    string `xml:"DisplayName"`
			} `xml:",any"`
		} `xml:"Folders"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.count = len(req.Folders.List)
	const op = "CreateFolder"
	var parent *simtenant.StoredFolder
	if len(req.Parent.List) == 1 {
		parent = c.resolve(req.Parent.List[0])
	}
	if parent == nil {
		return failure(op, "ErrorParentFolderNotFound", "The parent folder could not be found."), nil
	}
	if t := c.admit(parent.Box); t != nil {
		return "", t
	}
	var b strings.Builder
	for _, nf := range req.Folders.List {
		kind := map[string]string{"Folder": domain.KindMail, "CalendarFolder": domain.KindCalendar, "ContactsFolder": domain.KindContacts, "TasksFolder": domain.KindTasks}[nf.XMLName.Local]
		if kind == domain.KindMail {
			// A Folder is of its class's kind; a class mailvault's tenant
			// model has no kind for is refused below.
			kind = domain.KindOfFolderClass(nf.Class)
		}
		path := nf.Name
		if parent != parent.Box.Root {
			path = parent.Path + "/" + nf.Name
		}
		switch {
		case kind == "" || strings.TrimSpace(nf.Name) == "":
			b.WriteString(failure(op, "ErrorInvalidFolderTypeForOperation", "The folder type or name is not valid."))
		case parent.Box.Folder(path, "") != nil:
			b.WriteString(failure(op, "ErrorFolderExists", "A folder with the specified name already exists."))
		default:
			f := parent.Box.Ensure(path, kind)
			el, _ := folderClass(kind)
			b.WriteString(success(op, `<m:Folders><t:`+el+`>`+idXML("FolderId", f.ID, "AQAAABYAAA"+f.ID[6:12])+`</t:`+el+`></m:Folders>`))
		}
	}
	return b.String(), nil
}
