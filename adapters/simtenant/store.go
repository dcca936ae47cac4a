package simtenant

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// Store is the server side of a tenant for the wire simulators (Graph,
// EWS): mailboxes and public folders as folder trees whose items change
// (new versions, deletions, items created through the API), with one change
// sequence for incremental sync. It holds one small record per item, not
// the items: contents are generated from the model when asked for.
//
// A Store does no locking: each simulator serialises its access.
type Store struct {
	Tenant    *Tenant
	Seq       uint64 // bumped by every change
	Mailboxes []*Box
	// Public holds the public folders (nil when the tenant has none).
	Public *Box
	byKey  map[string]*Box
}

// Box is one mailbox, or the public folder tree.
type Box struct {
	Address string // empty for the public folders
	// Archive is the mailbox's archive; ArchiveOf the mailbox an archive
	// belongs to (its Address is that mailbox's).
	Archive, ArchiveOf *Box
	ID                 string // a GUID, as directory objects have
	Name               string
	Root               *StoredFolder // msgfolderroot, or publicfoldersroot
	Folders            []*StoredFolder
	ByID               map[string]*StoredFolder
	key                string
	index              map[string]itemLoc // item id without its 6-character prefix
}

type itemLoc struct {
	f   *StoredFolder
	pos int
}

// StoredFolder is a folder of a Box. Items are indexed by position - 1.
type StoredFolder struct {
	Box         *Box
	Spec        *Folder // nil for implicit parents
	ID, Name    string
	Path, Kind  string
	Parent      *StoredFolder
	Children    []*StoredFolder
	WellKnown   string
	Items       []StoredItem
	ChangesDone bool // the folder's Changes have happened
	// Seq is the change sequence of the folder's creation through the API
	// (0: in the tenant file): hierarchy deltas report folders after it.
	Seq       uint64
	winStart  time.Time
	delivered int
}

// StoredItem is the server's record of one item.
type StoredItem struct {
	Version int
	Deleted bool
	// Repaired: a dirty item a mailbox repair made readable, unchanged
	// (the same change key: change tracking does not list it again).
	Repaired bool
	Seq      uint64 // change sequence of the last change (0: original)
	Content  []byte // only for items created through the API
	// Marker is the value of the restore mark (an extended property) the
	// item was created with.
	Marker string
	// JSON marks Content as a Graph resource (an event or contact created
	// from JSON), not MIME.
	JSON bool
	// Stream is the export stream an imported item came as: exports return
	// it as it is (a server keeps an item's properties), while Content
	// holds its MIME rendering for everything else.
	Stream []byte
}

// WellKnownNames maps top-level display names to well-known folder names
// (Graph's, which EWS's distinguished folder ids share).
var WellKnownNames = map[string]string{
	"inbox": "inbox", "sent items": "sentitems", "deleted items": "deleteditems", "drafts": "drafts",
	"junk email": "junkemail", "outbox": "outbox", "archive": "archive", "conversation history": "conversationhistory",
	"sync issues": "syncissues", "clutter": "clutter", "scheduled": "scheduled", "search folders": "searchfolders",
	"conflicts": "conflicts", "local failures": "localfailures", "server failures": "serverfailures",
	"calendar": "calendar", "contacts": "contacts", "tasks": "tasks", "notes": "notes", "journal": "journal",
}

// GUID derives a stable GUID from parts.
func GUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// publicKey names the public folder tree where a mailbox address would be
// (no "@", so no mailbox can have it).
const publicKey = "publicfolders"

// NewStore builds the server state of t.
func NewStore(t *Tenant) *Store {
	s := &Store{Tenant: t, byKey: map[string]*Box{}}
	for i := range t.Mailboxes {
		m := &t.Mailboxes[i]
		local := m.Address[:strings.IndexByte(m.Address, '@')]
		b := s.newBox(m.Address, m.Address, strings.ToUpper(local[:1])+local[1:], "msgfolderroot", "Top of Information Store", m.Folders)
		if len(m.Archive) > 0 {
			b.Archive = s.newBox(m.Address, m.Address+archiveMark, "Online Archive - "+b.Name, "archivemsgfolderroot", "Top of Information Store", m.Archive)
			b.Archive.ArchiveOf = b
		}
		s.Mailboxes = append(s.Mailboxes, b)
		s.byKey[strings.ToLower(m.Address)] = b
		s.byKey[b.ID] = b
	}
	if len(t.PublicFolders) > 0 {
		s.Public = s.newBox("", publicKey, "Public Folders", "publicfoldersroot", "IPM_SUBTREE", t.PublicFolders)
	}
	return s
}

func (s *Store) newBox(address, key, name, rootWellKnown, rootName string, folders []Folder) *Box {
	b := &Box{Address: address, ID: GUID("user", strings.ToLower(key)), Name: name, key: key, ByID: map[string]*StoredFolder{}, index: map[string]itemLoc{}}
	b.Root = &StoredFolder{Box: b, ID: FolderID(key, "\x00root"), Name: rootName, Kind: domain.KindMail, WellKnown: rootWellKnown}
	b.ByID[b.Root.ID] = b.Root
	for i := range folders {
		spec := &folders[i]
		f := b.Ensure(spec.Path, spec.Kind)
		f.Spec = spec
		f.Items = make([]StoredItem, spec.Items)
		for pos := 1; pos <= spec.Items; pos++ {
			b.index[coreID(ItemID(s.Tenant.Seed, key, spec.Path, pos))] = itemLoc{f, pos}
		}
	}
	return b
}

// archiveMark ends an archive box's key: its items and folders get ids and
// content of their own, addressed to the mailbox (see owner).
const archiveMark = "\x00archive"

// owner is the address a box's key stands for.
func owner(key string) string {
	address, _, _ := strings.Cut(key, "\x00")
	return address
}

// Boxes lists every mailbox, each followed by its archive if it has one,
// then the public folders if the tenant has any.
func (s *Store) Boxes() []*Box {
	out := make([]*Box, 0, 2*len(s.Mailboxes)+1)
	for _, b := range s.Mailboxes {
		out = append(out, b)
		if b.Archive != nil {
			out = append(out, b.Archive)
		}
	}
	if s.Public != nil {
		out = append(out, s.Public)
	}
	return out
}

// Box finds a mailbox by address (any case) or id.
func (s *Store) Box(key string) *Box {
	if b := s.byKey[strings.ToLower(key)]; b != nil {
		return b
	}
	return s.byKey[key]
}

// Ensure returns the folder at path, creating implicit parents. Calendars
// are flat (Graph lists them without a tree): a calendar's name is its path.
func (b *Box) Ensure(path, kind string) *StoredFolder {
	for _, f := range b.Folders {
		if f.Path == path && f.Kind == kind {
			return f
		}
	}
	parent, name := b.Root, path
	if kind == domain.KindCalendar && b.Address != "" {
		parent = nil
	} else if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parent, name = b.Ensure(path[:i], kind), path[i+1:]
	} else if kind != domain.KindMail && b.Address != "" {
		parent = nil // top-level contact folders hang off the mailbox itself
	}
	return b.add(parent, name, path, kind)
}

// add makes a folder named name at path under parent (nil: hanging off the
// mailbox, as top-level calendars and contact folders do).
func (b *Box) add(parent *StoredFolder, name, path, kind string) *StoredFolder {
	f := &StoredFolder{Box: b, ID: FolderID(b.key, kind+"\x00"+path), Name: name, Path: path, Kind: kind, Parent: parent}
	if parent == b.Root && b.Address != "" {
		f.WellKnown = WellKnownNames[strings.ToLower(name)]
	}
	if kind == domain.KindCalendar && b.Address != "" && strings.EqualFold(path, "Calendar") {
		f.WellKnown = "calendar"
	}
	if kind == domain.KindContacts && b.Address != "" && strings.EqualFold(path, "Contacts") {
		f.WellKnown = "contacts"
	}
	if parent != nil {
		parent.Children = append(parent.Children, f)
	}
	b.Folders = append(b.Folders, f)
	b.ByID[f.ID] = f
	return f
}

// WellKnownFolder finds a folder by well-known name (msgfolderroot, inbox...).
func (b *Box) WellKnownFolder(name string) *StoredFolder {
	if strings.EqualFold(b.Root.WellKnown, name) {
		return b.Root
	}
	for _, f := range b.Folders {
		if f.WellKnown != "" && strings.EqualFold(f.WellKnown, name) {
			return f
		}
	}
	return nil
}

// Folder finds a folder by path and kind ("" matches any kind).
func (b *Box) Folder(path, kind string) *StoredFolder {
	for _, f := range b.Folders {
		if f.Path == path && (kind == "" || f.Kind == kind) {
			return f
		}
	}
	return nil
}

func coreID(id string) string {
	if len(id) > 6 {
		return id[6:]
	}
	return id
}

// ItemID is the id of the item at pos, with the generator's prefix.
func (s *Store) ItemID(f *StoredFolder, pos int) string {
	return ItemID(s.Tenant.Seed, f.Box.key, f.Path, pos)
}

// Lookup finds a live item by id, whatever its 6-character prefix (Graph's
// REST and immutable ids differ only there).
func (b *Box) Lookup(id string) (*StoredFolder, int, bool) {
	loc, ok := b.index[coreID(id)]
	if !ok || len(id) != len("AAMkAI")+24 || loc.f.Items[loc.pos-1].Deleted {
		return nil, 0, false
	}
	return loc.f, loc.pos, true
}

func (f *StoredFolder) versionSpec(v int) *Folder {
	spec := f.Spec
	if spec == nil {
		spec = &Folder{Path: f.Path, Kind: f.Kind}
	}
	return spec.Version(v)
}

// ChangeKey is the item's current change key.
func (s *Store) ChangeKey(f *StoredFolder, pos int) string {
	return ChangeKey(s.Tenant.Seed, f.Box.key, f.versionSpec(f.Items[pos-1].Version).Path, pos)
}

// Content is the item's current MIME (mail) or iCalendar/vCard text.
func (s *Store) Content(f *StoredFolder, pos int) []byte {
	it := f.Items[pos-1]
	if it.Content != nil {
		return it.Content
	}
	return Content(s.Tenant.Seed, f.Box.key, f.versionSpec(it.Version), pos)
}

// Facts are what the item's generated content says (see ItemFacts), in its
// current version.
func (s *Store) Facts(f *StoredFolder, pos int) Facts {
	return ItemFacts(s.Tenant.Seed, f.Box.key, f.versionSpec(f.Items[pos-1].Version), pos)
}

// Time is the item's date (see ItemTime) in its current version.
func (s *Store) Time(f *StoredFolder, pos int) time.Time {
	return ItemTime(s.Tenant.Seed, f.Box.key, f.versionSpec(f.Items[pos-1].Version), pos)
}

// Size is the item's size without generating it.
func (s *Store) Size(f *StoredFolder, pos int) int64 {
	it := f.Items[pos-1]
	if it.Content != nil {
		return int64(len(it.Content))
	}
	return ItemSize(s.Tenant.Seed, f.Box.key, f.versionSpec(it.Version), pos)
}

// Snapshot captures what an item is now (its change key, and how to
// produce its content), so that a simulator can render a large reply
// without holding its lock: generating megabytes of MIME takes a while.
type Snapshot struct {
	ChangeKey string
	FolderID  string
	Kind      string
	Unread    bool // as the Graph rendering: every third item
	content   []byte
	stream    []byte
	seed      int64
	key       string
	spec      *Folder
	pos       int
}

// Snapshot of the item at pos; the caller holds its lock for this call only.
func (s *Store) Snapshot(f *StoredFolder, pos int) Snapshot {
	it := f.Items[pos-1]
	return Snapshot{ChangeKey: s.ChangeKey(f, pos), FolderID: f.ID, Kind: f.Kind, Unread: pos%3 == 0, content: it.Content, stream: it.Stream, seed: s.Tenant.Seed, key: f.Box.key,
		spec: f.versionSpec(it.Version), pos: pos}
}

// Facts are what the snapshot's content says (see ItemFacts); no lock
// needed.
func (sn Snapshot) Facts() Facts { return ItemFacts(sn.seed, sn.key, sn.spec, sn.pos) }

// Size is the snapshot's size; no lock needed.
func (sn Snapshot) Size() int64 {
	if sn.content != nil {
		return int64(len(sn.content))
	}
	return ItemSize(sn.seed, sn.key, sn.spec, sn.pos)
}

// Stream is the export stream the item was imported as, or nil.
func (sn Snapshot) Stream() []byte { return sn.stream }

// Content generates the snapshot's content; no lock needed.
func (sn Snapshot) Content() []byte {
	if sn.content != nil {
		return sn.content
	}
	return Content(sn.seed, sn.key, sn.spec, sn.pos)
}

// Dirty reports whether the item at pos cannot be served. A changed item is
// a new version and readable.
func (f *StoredFolder) Dirty(pos int) bool {
	if f.Spec == nil || f.Items[pos-1].Version > 0 || f.Items[pos-1].Repaired {
		return false
	}
	for _, p := range f.Spec.Dirty {
		if p == pos {
			return true
		}
	}
	return false
}

// DirtyMode is how the folder's dirty items fail: DirtyRequest or DirtyItem.
func (f *StoredFolder) DirtyMode() string {
	if f.Spec == nil || f.Spec.DirtyMode == "" {
		return DirtyRequest
	}
	return f.Spec.DirtyMode
}

// Live counts the items not deleted.
func (f *StoredFolder) Live() int {
	n := 0
	for i := range f.Items {
		if !f.Items[i].Deleted {
			n++
		}
	}
	return n
}

// Deliver applies the folder's throttle to serving one more item at now:
// zero when it may be served, else how long until the throttle window ends.
func (f *StoredFolder) Deliver(now time.Time) time.Duration {
	if f.Spec == nil || f.Spec.Throttle == nil {
		return 0
	}
	win := time.Duration(f.Spec.Throttle.Window)
	if f.winStart.IsZero() || !now.Before(f.winStart.Add(win)) {
		f.winStart, f.delivered = now, 0
	}
	if f.delivered >= f.Spec.Throttle.Items {
		return f.winStart.Add(win).Sub(now)
	}
	f.delivered++
	return 0
}

// Mutate changes a folder as a user would: the first modify live items get
// a new version, the next del live items are deleted, add new items are
// appended.
func (s *Store) Mutate(f *StoredFolder, add, modify, del int) {
	for i := range f.Items {
		if modify == 0 && del == 0 {
			break
		}
		it := &f.Items[i]
		if it.Deleted {
			continue
		}
		s.Seq++
		it.Seq = s.Seq
		if modify > 0 {
			it.Version++
			modify--
		} else {
			it.Deleted = true
			del--
		}
	}
	for range add {
		s.Create(f, nil)
	}
}

// Create appends an item (content nil: generated) and returns its position.
func (s *Store) Create(f *StoredFolder, content []byte) int {
	s.Seq++
	f.Items = append(f.Items, StoredItem{Seq: s.Seq, Content: content})
	pos := len(f.Items)
	f.Box.index[coreID(s.ItemID(f, pos))] = itemLoc{f, pos}
	return pos
}

// CreateImported adds an item imported from an export stream: its MIME
// rendering and the stream itself.
func (s *Store) CreateImported(f *StoredFolder, content, stream []byte) int {
	pos := s.Create(f, content)
	f.Items[pos-1].Stream = stream
	return pos
}

// IsJSON reports whether the item at pos is kept as Graph JSON (an event
// or contact created through Graph's JSON routes), not MIME.
func (s *Store) IsJSON(f *StoredFolder, pos int) bool { return f.Items[pos-1].JSON }

// Generated tells whether the item at pos is the model's (neither created
// nor imported through an API): its content follows from the tenant file.
func (s *Store) Generated(f *StoredFolder, pos int) bool {
	it := f.Items[pos-1]
	return it.Content == nil && it.Stream == nil && !it.JSON
}

// Stream is the export stream the item at pos was imported from, or nil
// for an item the model generates (its stream is made from its MIME).
func (s *Store) Stream(f *StoredFolder, pos int) []byte { return f.Items[pos-1].Stream }

// ApplyChanges runs the folder's configured Changes once, after page
// number page of a listing was served; it reports whether they ran.
func (s *Store) ApplyChanges(f *StoredFolder, page int) bool {
	if f.Spec == nil || f.Spec.Changes == nil || f.ChangesDone || page != f.Spec.Changes.AfterPage {
		return false
	}
	f.ChangesDone = true
	c := f.Spec.Changes
	s.Mutate(f, c.Add, c.Modify, c.Delete)
	return true
}

// MutateByPath applies req to the folder at req.Folder of a mailbox (or of
// the public folders for ""), creating it first, with any missing parents,
// as a user would when req.Create asks and it does not exist.
func (s *Store) MutateByPath(req MutateRequest) error {
	b := s.Public
	if req.Mailbox != "" {
		b = s.Box(req.Mailbox)
	}
	if b == nil {
		return fmt.Errorf("no mailbox %q", req.Mailbox)
	}
	f := b.Folder(req.Folder, "")
	if f == nil && req.Create && req.Folder != "" {
		f = s.CreateFolder(b, req.Folder, domain.KindMail)
	}
	if f == nil {
		return fmt.Errorf("no folder %q in %s", req.Folder, req.Mailbox)
	}
	s.Mutate(f, req.Add, req.Modify, req.Delete)
	for _, pos := range req.Repair {
		if pos < 1 || pos > len(f.Items) {
			return fmt.Errorf("no item #%d in %s/%s", pos, req.Mailbox, req.Folder)
		}
		f.Items[pos-1].Repaired = true
	}
	return nil
}

// CreateFolder creates the folder at path, and any missing parents, each
// with a change sequence of its own, so that hierarchy deltas report them.
func (s *Store) CreateFolder(b *Box, path, kind string) *StoredFolder {
	before := len(b.Folders)
	f := b.Ensure(path, kind)
	for _, created := range b.Folders[before:] {
		s.Seq++
		created.Seq = s.Seq
	}
	return f
}

// CreateChild makes a folder named name of kind under parent (the root
// for nil), whatever the parent's kind: the mailbox API makes folders of
// any class anywhere, as Outlook does.
func (s *Store) CreateChild(b *Box, parent *StoredFolder, name, kind string) *StoredFolder {
	if parent == nil {
		parent = b.Root
	}
	path := name
	if parent != b.Root {
		path = parent.Path + "/" + name
	}
	f := b.add(parent, name, path, kind)
	s.Seq++
	f.Seq = s.Seq
	return f
}

// Delete removes the item at pos (a DELETE through the API).
func (s *Store) Delete(f *StoredFolder, pos int) {
	it := &f.Items[pos-1]
	if it.Deleted {
		return
	}
	s.Seq++
	it.Seq, it.Deleted = s.Seq, true
}

// Replace sets the content of the item at pos (an attachment added after
// creation): a new change, as Exchange makes it.
func (s *Store) Replace(f *StoredFolder, pos int, content []byte) {
	s.Seq++
	it := &f.Items[pos-1]
	it.Seq, it.Content = s.Seq, content
	it.Version++
}

// SortByKey orders list stably by a key computed once per element (a
// key from an item's facts replays the item's random stream, too costly
// to repeat for every comparison), descending if desc. Both simulators
// order listings with it ($orderby, SortOrder).
func SortByKey[T any](list []T, key func(T) string, desc bool) {
	keys := make([]string, len(list))
	idx := make([]int, len(list))
	for i, e := range list {
		keys[i], idx[i] = key(e), i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if desc {
			return keys[idx[a]] > keys[idx[b]]
		}
		return keys[idx[a]] < keys[idx[b]]
	})
	sorted := make([]T, len(list))
	for i, j := range idx {
		sorted[i] = list[j]
	}
	copy(list, sorted)
}
