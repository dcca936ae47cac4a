// Package graphsim is a Microsoft Graph simulator for Exchange Online: it
// serves a simtenant model over HTTPS with Graph's URLs, JSON shapes, status
// codes, headers and error bodies, an Entra-like token endpoint, and the
// throttling Exchange Online applies (concurrency and requests per window per
// app and mailbox, each $batch sub-request counted). It enforces its limits
// itself, can inject faults, and changes mailboxes while they are listed, so
// that a client is tested against the server it will meet, not a friendly
// one.
package graphsim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// Folder kinds as Graph groups them.
const (
	kindMail     = simtenant.KindMail
	kindCalendar = simtenant.KindCalendar
	kindContacts = simtenant.KindContacts
)

// Id prefixes: Graph's default REST ids and ImmutableId ids differ, and a
// client asking for immutable ids must get the other form.
const (
	restPrefix      = "AAMkAI"
	immutablePrefix = "AAkALg"
)

type mailbox struct {
	addr, id, exchangeID, name string
	inFlight                   int
	window                     *domain.SlidingWindow
	root                       *folder // msgfolderroot
	folders                    []*folder
	byID                       map[string]*folder
	items                      map[string]itemLoc // id without prefix -> place
	stats                      MailboxStats
	admitted                   []time.Time // budget units admitted, for utilisation
}

type itemLoc struct {
	f   *folder
	pos int
}

type folder struct {
	m           *mailbox
	spec        *simtenant.Folder // nil for implicit parents
	id, name    string
	path, kind  string
	parent      *folder
	children    []*folder
	wellKnown   string
	items       []item // position-1
	changesDone bool
	winStart    time.Time
	delivered   int
}

type item struct {
	version int
	deleted bool
	seq     uint64 // server change sequence of the last change
	content []byte // set for items created through the API
}

// wellKnownNames maps display names to Graph's well-known folder names.
var wellKnownNames = map[string]string{
	"inbox": "inbox", "sent items": "sentitems", "deleted items": "deleteditems", "drafts": "drafts",
	"junk email": "junkemail", "outbox": "outbox", "archive": "archive", "conversation history": "conversationhistory",
	"sync issues": "syncissues", "clutter": "clutter", "scheduled": "scheduled", "search folders": "searchfolders",
	"conflicts": "conflicts", "local failures": "localfailures", "server failures": "serverfailures",
}

func guid(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newMailbox(t *simtenant.Tenant, m *simtenant.Mailbox) *mailbox {
	local := m.Address[:strings.IndexByte(m.Address, '@')]
	mb := &mailbox{addr: m.Address, id: guid("user", strings.ToLower(m.Address)), name: strings.ToUpper(local[:1]) + local[1:],
		byID: map[string]*folder{}, items: map[string]itemLoc{},
		window: domain.NewSlidingWindow(t.Limits.Requests, time.Duration(t.Limits.Window))}
	sum := sha256.Sum256([]byte("mbx\x00" + strings.ToLower(m.Address)))
	mb.exchangeID = fmt.Sprintf("MBX:%x@%x", sum[:4], sum[4:8])
	mb.root = &folder{m: mb, id: simtenant.FolderID(m.Address, "\x00root"), name: "Top of Information Store", kind: kindMail, wellKnown: "msgfolderroot"}
	mb.byID[mb.root.id] = mb.root
	for i := range m.Folders {
		spec := &m.Folders[i]
		f := mb.ensure(spec.Path, spec.Kind)
		f.spec = spec
		f.items = make([]item, spec.Items)
		for pos := 1; pos <= spec.Items; pos++ {
			mb.items[coreID(simtenant.ItemID(t.Seed, m.Address, spec.Path, pos))] = itemLoc{f, pos}
		}
	}
	return mb
}

// ensure returns the folder at path, creating implicit parents. Calendars are
// flat in Graph: a calendar's name is its whole path.
func (m *mailbox) ensure(path, kind string) *folder {
	for _, f := range m.folders {
		if f.path == path && f.kind == kind {
			return f
		}
	}
	var parent *folder
	name := path
	if kind != kindCalendar {
		if i := strings.LastIndexByte(path, '/'); i >= 0 {
			parent, name = m.ensure(path[:i], kind), path[i+1:]
		} else if kind == kindMail {
			parent = m.root
		}
	}
	f := &folder{m: m, id: simtenant.FolderID(m.addr, kind+"\x00"+path), name: name, path: path, kind: kind, parent: parent}
	if kind == kindMail && parent == m.root {
		f.wellKnown = wellKnownNames[strings.ToLower(name)]
	}
	if parent != nil {
		parent.children = append(parent.children, f)
	}
	m.folders = append(m.folders, f)
	m.byID[f.id] = f
	return f
}

func coreID(id string) string {
	if len(id) > len(restPrefix) {
		return id[len(restPrefix):]
	}
	return id
}

// itemID is the id of the item at pos in the form the client asked for.
func (s *Server) itemID(f *folder, pos int, immutable bool) string {
	id := simtenant.ItemID(s.t.Seed, f.m.addr, f.path, pos)
	if immutable {
		return immutablePrefix + coreID(id)
	}
	return id
}

// lookup finds an item by either id form; deleted items are not found.
func (m *mailbox) lookup(id string) (*folder, int, bool) {
	if !strings.HasPrefix(id, restPrefix) && !strings.HasPrefix(id, immutablePrefix) {
		return nil, 0, false
	}
	loc, ok := m.items[coreID(id)]
	if !ok || loc.f.items[loc.pos-1].deleted {
		return nil, 0, false
	}
	return loc.f, loc.pos, true
}

func (s *Server) changeKey(f *folder, pos int) string {
	it := f.items[pos-1]
	return simtenant.ChangeKey(s.t.Seed, f.m.addr, f.versionSpec(it.version).Path, pos)
}

func (f *folder) versionSpec(v int) *simtenant.Folder {
	spec := f.spec
	if spec == nil {
		spec = &simtenant.Folder{Path: f.path, Kind: f.kind}
	}
	return spec.Version(v)
}

// content is the item's MIME (mail) or iCalendar/vCard text.
func (s *Server) content(f *folder, pos int) []byte {
	it := f.items[pos-1]
	if it.content != nil {
		return it.content
	}
	return simtenant.Content(s.t.Seed, f.m.addr, f.versionSpec(it.version), pos)
}

func (f *folder) dirty(pos int) bool {
	if f.spec == nil || f.items[pos-1].version > 0 {
		return false
	}
	for _, p := range f.spec.Dirty {
		if p == pos {
			return true
		}
	}
	return false
}

// mutate changes a folder: the first modify live items get a new version,
// the next del live items are deleted, add new items are appended. Callers
// hold s.mu.
func (s *Server) mutate(f *folder, add, modify, del int) {
	for i := range f.items {
		if modify == 0 && del == 0 {
			break
		}
		it := &f.items[i]
		if it.deleted {
			continue
		}
		s.seq++
		it.seq = s.seq
		if modify > 0 {
			it.version++
			modify--
		} else {
			it.deleted = true
			del--
		}
	}
	for range add {
		s.seq++
		f.items = append(f.items, item{seq: s.seq})
		pos := len(f.items)
		f.m.items[coreID(simtenant.ItemID(s.t.Seed, f.m.addr, f.path, pos))] = itemLoc{f, pos}
	}
}

// create appends an item with the given content (restore) and returns its
// position. Callers hold s.mu.
func (s *Server) create(f *folder, content []byte) int {
	s.seq++
	f.items = append(f.items, item{seq: s.seq, content: content})
	pos := len(f.items)
	f.m.items[coreID(simtenant.ItemID(s.t.Seed, f.m.addr, f.path, pos))] = itemLoc{f, pos}
	return pos
}
