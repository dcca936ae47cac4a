package ews

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
)

// Content modes.
const (
	// ModeExport: ExportItems, the full-fidelity blob UploadItems restores.
	ModeExport = "export"
	// ModeMIME: GetItem with the MIME content.
	ModeMIME = "mime"
)

// PublicFolders is the name under which public folders are backed up, in
// place of a mailbox address (it has no "@", so no mailbox can clash).
const PublicFolders = "Public Folders"

// DefaultBatch is how many items one ExportItems or GetItem asks for.
const DefaultBatch = 100

// DefaultMaxConcurrency is Exchange's default EWSMaxConcurrency per account.
const DefaultMaxConcurrency = 27

// Config is an EWS source.
type Config struct {
	URL      string
	Auth     string // basic, ntlm, oauth
	Username string
	Secret   credential.Secret // password, or the OAuth access token
	// Impersonate sends ExchangeImpersonation for each mailbox, so one
	// service account with the ApplicationImpersonation role backs up many;
	// without it the account needs delegate access (FullAccess).
	Impersonate bool
	Mailboxes   []string
	// PublicFolders selects public folders by path; "PATH/**" takes the
	// folder with every subfolder, present and future.
	PublicFolders []string
	// Archives adds each mailbox's archive, backed up as a mailbox of its
	// own named "ADDRESS (archive)": the tree under the mailbox's
	// archivemsgfolderroot, through the same account.
	Archives  bool
	Content   string // export (default) or mime
	BatchSize int
	HTTP      *http.Client
	MaxReply  int64
	Log       zerolog.Logger
}

// Source backs up mailboxes and public folders over EWS. It implements the
// pipeline's Source, BatchLimit and Pipelining.
type Source struct {
	cfg Config
	t   *transport

	mu      sync.Mutex
	folders map[string]folderInfo // mailbox\x00folder id
}

type folderInfo struct {
	kind string
}

// Close closes the source's idle connections: a daemon opens a source
// per job cycle, and kept-alive connections (each with its goroutines) must
// not outlive it.
func (s *Source) Close() { s.t.http.CloseIdleConnections() }

// NewSource checks the configuration and builds the source.
func NewSource(cfg Config) (*Source, error) {
	if cfg.Content == "" {
		cfg.Content = ModeExport
	}
	if cfg.Content != ModeExport && cfg.Content != ModeMIME {
		return nil, fmt.Errorf("content mode %q: use export or mime", cfg.Content)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatch
	}
	if cfg.MaxReply <= 0 {
		cfg.MaxReply = DefaultMaxReply
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.HTTP.Transport == nil {
		c := *cfg.HTTP
		c.Transport = http.DefaultTransport
		cfg.HTTP = &c
	}
	for _, p := range cfg.PublicFolders {
		if strings.Trim(strings.TrimSuffix(p, "/**"), "/") == "" && p != "/**" {
			return nil, fmt.Errorf("public folder %q: give a path such as Projects or Projects/** (or /** for all)", p)
		}
	}
	t, err := newTransport(cfg.URL, cfg.HTTP, cfg.Auth, cfg.Username, cfg.Secret, cfg.MaxReply)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, t: t, folders: map[string]folderInfo{}}, nil
}

// MaxBatch implements pipeline.BatchLimit.
func (s *Source) MaxBatch() int { return s.cfg.BatchSize }

// FolderParallelism implements pipeline.Pipelining.
func (s *Source) FolderParallelism() int { return 4 }

// impersonation is the ExchangeImpersonation address for a mailbox.
func (s *Source) impersonation(mailbox string) string {
	if s.cfg.Impersonate && mailbox != PublicFolders {
		owner, _ := domain.ArchiveOwner(mailbox) // an archive is reached as its mailbox's user
		return owner
	}
	return ""
}

// distinguished addresses a well-known folder of a mailbox (of an
// archive's mailbox: EWS names an archive's folders by the mailbox).
func (s *Source) distinguished(mailbox, name string) folderRef {
	owner, _ := domain.ArchiveOwner(mailbox)
	r := folderRef{distinguished: name}
	if !s.cfg.Impersonate && mailbox != PublicFolders && !strings.EqualFold(owner, s.cfg.Username) {
		r.mailbox = owner // delegate access names the mailbox
	}
	return r
}

// treeRoot is the distinguished folder a mailbox's tree hangs from: the
// Top of Information Store, or of the archive.
func treeRoot(mailbox string) string {
	if _, archive := domain.ArchiveOwner(mailbox); archive {
		return "archivemsgfolderroot"
	}
	return "msgfolderroot"
}

// Mailboxes lists the configured mailboxes, then the public folders if any
// are selected; with neither, the account's own mailbox.
func (s *Source) Mailboxes(ctx context.Context) ([]string, error) {
	out := append([]string(nil), s.cfg.Mailboxes...)
	if len(s.cfg.PublicFolders) > 0 {
		out = append(out, PublicFolders)
	}
	if len(out) == 0 {
		if !strings.Contains(s.cfg.Username, "@") {
			return nil, &domain.Failure{Class: domain.ClassFatal, Code: "NoMailboxes", Message: "name the mailboxes to back up with --mailbox (EWS cannot list an organisation's mailboxes)"}
		}
		out = []string{s.cfg.Username}
	}
	if s.cfg.Archives {
		var boxes []string
		for _, m := range out {
			if m != PublicFolders {
				boxes = append(boxes, m)
			}
		}
		all := domain.WithArchives(boxes)
		if len(boxes) < len(out) {
			all = append(all, PublicFolders)
		}
		return all, nil
	}
	return out, nil
}

// kindOf is the kind a folder of class is backed up as; false for search
// folders and the classes mailvault does not back up.
func kindOf(class string) (string, bool) {
	k := domain.KindOfFolderClass(class)
	return k, k != ""
}

// wellKnown are the distinguished folders resolved to tag folders for the
// job filters.
var wellKnown = []string{"msgfolderroot", "inbox", "sentitems", "deleteditems", "drafts", "junkemail", "outbox",
	"syncissues", "conversationhistory", "archivemsgfolderroot", "calendar", "contacts"}

// Folders lists a mailbox's folder tree (SyncFolderHierarchy from the top of
// the information store) or the selected public folders.
func (s *Source) Folders(ctx context.Context, mailbox string) ([]domain.Folder, error) {
	if mailbox == PublicFolders {
		return s.publicFolders(ctx)
	}
	// An archive's folders have no well-known names of their own to ask
	// for beyond its root.
	names, root := wellKnown, treeRoot(mailbox)
	if root != "msgfolderroot" {
		names = []string{root}
	}
	refs := make([]folderRef, len(names))
	for i, n := range names {
		refs[i] = s.distinguished(mailbox, n)
	}
	inner, err := s.t.call(ctx, s.impersonation(mailbox), getFolderRequest(refs))
	if err != nil {
		return nil, err
	}
	msgs, err := messagesOf[getFolderMessage](inner)
	if err != nil {
		return nil, malformed("GetFolder", err)
	}
	byID := map[string]string{}
	rootID := ""
	for i, m := range msgs {
		if i >= len(names) || messageFailure(m.responseMessage) != nil || len(m.Folders.List) == 0 {
			continue // a server without an archive, say
		}
		byID[m.Folders.List[0].FolderID.ID] = names[i]
		if names[i] == root {
			rootID = m.Folders.List[0].FolderID.ID
		}
	}
	if rootID == "" {
		if len(msgs) > 0 {
			if f := messageFailure(msgs[0].responseMessage); f != nil {
				if root != "msgfolderroot" && f.Code == "ErrorFolderNotFound" {
					return nil, nil // the mailbox has no archive: nothing to back up
				}
				return nil, f
			}
		}
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "NoRootFolder", Message: "GetFolder did not return " + root}
	}
	type node struct {
		name, parent, class string
	}
	nodes := map[string]node{}
	var order []string
	state := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			return nil, &domain.Failure{Class: domain.ClassFatal, Code: "EndlessPaging", Message: "SyncFolderHierarchy never reached its last folder"}
		}
		inner, err := s.t.call(ctx, s.impersonation(mailbox), syncFolderHierarchyRequest(s.distinguished(mailbox, root), state))
		if err != nil {
			return nil, err
		}
		msgs, err := messagesOf[syncHierarchyMessage](inner)
		if err != nil || len(msgs) != 1 {
			return nil, malformed("SyncFolderHierarchy", err)
		}
		if f := messageFailure(msgs[0].responseMessage); f != nil {
			return nil, f
		}
		for _, c := range msgs[0].Changes.List {
			f := c.folder()
			if c.XMLName.Local == "Delete" || f == nil {
				continue
			}
			if _, seen := nodes[f.FolderID.ID]; !seen {
				order = append(order, f.FolderID.ID)
			}
			nodes[f.FolderID.ID] = node{name: f.DisplayName, parent: f.ParentFolderID.ID, class: f.FolderClass}
		}
		state = msgs[0].SyncState
		if msgs[0].Last {
			break
		}
	}
	var path func(id string, depth int) (string, bool)
	path = func(id string, depth int) (string, bool) {
		n, ok := nodes[id]
		if !ok || depth > 64 {
			return "", false
		}
		if n.parent == rootID {
			return n.name, true
		}
		p, ok := path(n.parent, depth+1)
		return p + "/" + n.name, ok
	}
	var out []domain.Folder
	for _, id := range order {
		kind, ok := kindOf(nodes[id].class)
		p, inTree := path(id, 0)
		if !ok || !inTree {
			continue
		}
		out = append(out, domain.Folder{ID: id, Path: p, Kind: kind, WellKnown: byID[id]})
		s.remember(mailbox, id, kind)
	}
	return out, nil
}

func (s *Source) remember(mailbox, id, kind string) {
	s.mu.Lock()
	s.folders[mailbox+"\x00"+id] = folderInfo{kind: kind}
	s.mu.Unlock()
}

// folder returns the folder element of a hierarchy change.
func (c changeXML) folder() *folderXML {
	var f folderXML
	if c.rawFolder == nil {
		return nil
	}
	f = *c.rawFolder
	return &f
}

// selected says whether the public folder at path is selected, and whether
// its subfolders may hold selected folders.
func (s *Source) selected(path string) (take, descend bool) {
	for _, sel := range s.cfg.PublicFolders {
		deep := strings.HasSuffix(sel, "/**")
		base := strings.Trim(strings.TrimSuffix(sel, "/**"), "/")
		switch {
		case deep && (base == "" || path == base || strings.HasPrefix(path, base+"/")):
			take, descend = true, true
		case path == base:
			take = true
		case strings.HasPrefix(base, path+"/"):
			descend = true
		}
	}
	return take, descend
}

// publicFolders walks the public folder tree Shallow, level by level (Deep
// traversal is not supported there), into the selected paths only; a "/**"
// selection takes subfolders created after the job was defined, because the
// walk happens every run.
func (s *Source) publicFolders(ctx context.Context) ([]domain.Folder, error) {
	var out []domain.Folder
	var walk func(parent folderRef, prefix string, depth int) error
	walk = func(parent folderRef, prefix string, depth int) error {
		if depth > 32 {
			return nil
		}
		for offset := 0; ; {
			inner, err := s.t.call(ctx, "", findFolderRequest(parent, offset))
			if err != nil {
				return err
			}
			msgs, err := messagesOf[findFolderMessage](inner)
			if err != nil || len(msgs) != 1 {
				return malformed("FindFolder", err)
			}
			if f := messageFailure(msgs[0].responseMessage); f != nil {
				return f
			}
			for _, f := range msgs[0].Root.Folders.List {
				p := f.DisplayName
				if prefix != "" {
					p = prefix + "/" + f.DisplayName
				}
				take, descend := s.selected(p)
				if kind, ok := kindOf(f.FolderClass); ok && take {
					out = append(out, domain.Folder{ID: f.FolderID.ID, Path: p, Kind: kind})
					s.remember(PublicFolders, f.FolderID.ID, kind)
				}
				if descend && f.ChildFolderCount > 0 {
					if err := walk(folderRef{id: f.FolderID.ID}, p, depth+1); err != nil {
						return err
					}
				}
			}
			offset += len(msgs[0].Root.Folders.List)
			if msgs[0].Root.Last || len(msgs[0].Root.Folders.List) == 0 {
				return nil
			}
		}
	}
	if err := walk(folderRef{distinguished: "publicfoldersroot"}, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

func malformed(op string, err error) *domain.Failure {
	msg := op + " reply has an unexpected shape"
	if err != nil {
		msg += ": " + err.Error()
	}
	return &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: domain.ShortMessage(msg)}
}

func (s *Source) kind(mailbox, folderID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.folders[mailbox+"\x00"+folderID]
	if !ok {
		return "", &domain.Failure{Class: domain.ClassFatal, Code: "UnknownFolder", Message: "folder " + folderID + " was not discovered in this run"}
	}
	return f.kind, nil
}

// Page tokens carry the listing position of the page's first item before
// the SyncState: "<position>|<SyncState>".
func pageToken(pos int, state string) string { return strconv.Itoa(pos) + "|" + state }

func parsePageToken(tok string) (int, string, error) {
	p, state, ok := strings.Cut(tok, "|")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || n < 1 {
		return 0, "", &domain.Failure{Class: domain.ClassResync, Code: "BadPageToken", Message: "the stored sync state is unreadable; listing again"}
	}
	return n, state, nil
}

// List returns up to 512 changes of a folder since the token's SyncState
// (all items on the first pass).
func (s *Source) List(ctx context.Context, mailbox, folderID, token string) (domain.Page, error) {
	kind, err := s.kind(mailbox, folderID)
	if err != nil {
		return domain.Page{}, err
	}
	pos, state := 1, ""
	if token != "" {
		if pos, state, err = parsePageToken(token); err != nil {
			return domain.Page{}, err
		}
	}
	inner, err := s.t.call(ctx, s.impersonation(mailbox), syncFolderItemsRequest(folderID, state, kind == domain.KindCalendar))
	if err != nil {
		return domain.Page{}, err
	}
	msgs, err := messagesOf[syncItemsMessage](inner)
	if err != nil || len(msgs) != 1 {
		return domain.Page{}, malformed("SyncFolderItems", err)
	}
	m := msgs[0]
	if f := messageFailure(m.responseMessage); f != nil {
		return domain.Page{}, f
	}
	if m.SyncState == "" {
		return domain.Page{}, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "SyncFolderItems reply without a SyncState"}
	}
	page := domain.Page{Tracked: true}
	for _, c := range m.Changes.List {
		switch c.XMLName.Local {
		case "Create", "Update":
			if c.rawItem == nil || c.rawItem.ItemID.ID == "" {
				return domain.Page{}, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a change without an ItemId"}
			}
			page.Items = append(page.Items, domain.ItemRef{Position: pos, ID: c.rawItem.ItemID.ID, ChangeKey: c.rawItem.ItemID.ChangeKey,
				Size: c.rawItem.Size, Time: c.rawItem.time()})
			pos++
		case "Delete":
			page.Removed = append(page.Removed, c.ItemID.ID)
		}
	}
	if m.Last {
		page.SyncToken = pageToken(1, m.SyncState)
	} else {
		page.Next = pageToken(pos, m.SyncState)
	}
	return page, nil
}

// Fetch exports (or gets the MIME of) up to BatchSize items in one request.
// One response message per item: an item failing alone fails only itself; a
// SOAP fault fails the request and goes to the engine's isolation.
func (s *Source) Fetch(ctx context.Context, mailbox, folderID string, items []domain.ItemRef, deliver func(domain.Item) error) error {
	if _, err := s.kind(mailbox, folderID); err != nil {
		return err
	}
	body := exportItemsRequest(items)
	if s.cfg.Content == ModeMIME {
		body = getItemMIMERequest(items)
	}
	inner, err := s.t.call(ctx, s.impersonation(mailbox), body)
	if err != nil {
		return err
	}
	type result struct {
		msg  responseMessage
		data string
	}
	var results []result
	if s.cfg.Content == ModeMIME {
		msgs, err := messagesOf[getItemMessage](inner)
		if err != nil {
			return malformed("GetItem", err)
		}
		for _, m := range msgs {
			r := result{msg: m.responseMessage}
			if len(m.Items.List) > 0 {
				r.data = m.Items.List[0].MimeContent
			}
			results = append(results, r)
		}
	} else {
		msgs, err := messagesOf[exportMessage](inner)
		if err != nil {
			return malformed("ExportItems", err)
		}
		for _, m := range msgs {
			results = append(results, result{msg: m.responseMessage, data: m.Data})
		}
	}
	// A busy server answers every message with the same back-off: the
	// request as a whole was throttled.
	for _, r := range results {
		if f := messageFailure(r.msg); f != nil && f.Class == domain.ClassThrottled {
			return f
		}
	}
	for i, it := range items {
		item := domain.Item{Ref: it}
		switch {
		case i >= len(results):
			item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "MissingResponse", Message: "the reply has no response message for this item"}
		case messageFailure(results[i].msg) != nil:
			item.Failure = messageFailure(results[i].msg)
		default:
			data := strings.TrimSpace(results[i].data)
			if strings.HasSuffix(data, truncatedMarker) {
				item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "TruncatedData", Message: "the server cut the item's data short (=== Truncated Data ===)"}
				break
			}
			b, err := base64.StdEncoding.DecodeString(data)
			if err != nil || len(b) == 0 {
				item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "the item's data is not base64"}
				break
			}
			if decoded := string(b); strings.HasSuffix(strings.TrimSpace(decoded), truncatedMarker) {
				item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "TruncatedData", Message: "the server cut the item's data short (=== Truncated Data ===)"}
				break
			}
			item.Content, item.Format = b, domain.FormatEWSExport
			if s.cfg.Content == ModeMIME {
				item.Format = domain.FormatMIME
			}
		}
		if err := deliver(item); err != nil {
			return err
		}
	}
	return nil
}
