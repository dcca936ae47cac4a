package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"golang.org/x/sync/singleflight"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// Content modes: how items are fetched.
const (
	// ModeAuto: exportItems where the app may use it, otherwise ModeBatch.
	ModeAuto = "auto"
	// ModeExport: full-fidelity exportItems, 20 items per request, one unit
	// of the request budget per call.
	ModeExport = "export"
	// ModeBatch: MIME ($value) for mail, JSON for events and contacts,
	// through $batch: 20 sub-requests per call, each counted.
	ModeBatch = "batch"
	// ModeGet: one GET per item as JSON, the strategy of Corso; kept for
	// comparison.
	ModeGet = "get"
)

// Config is a Graph source.
type Config struct {
	GraphURL string // v1.0 base
	BetaURL  string // derived from GraphURL when empty
	HTTP     *http.Client
	Tokens   *Tokens
	// Mailboxes limits the backup to these addresses; empty means every
	// user with a mailbox.
	Mailboxes []string
	// Archives adds each mailbox's archive (In-Place Archive), backed up
	// as a mailbox of its own named "ADDRESS (archive)", through the
	// mailbox API on beta, where Graph serves archives.
	Archives bool
	// Content maps a kind (mail, calendar, contacts) to a mode; missing
	// kinds use ModeAuto.
	Content  map[string]string
	PageSize int // delta page size (Prefer: odata.maxpagesize), at most 500
	MaxReply int64
	Log      zerolog.Logger
}

// Source backs up Exchange Online through Microsoft Graph. It implements the
// pipeline's Source, CostModel and BatchLimit.
type Source struct {
	cfg Config
	c   *client

	mu        sync.Mutex
	kinds     map[string]string // mailbox\x00folder id -> kind
	exchange  map[string]string // mailbox -> exchange mailbox id
	noArchive map[string]bool   // users settings/exchange gave no archive
	imports   map[string]importSession
	// exchangeCalls makes the export requests of one mailbox that start
	// together ask settings/exchange once between them.
	exchangeCalls singleflight.Group

	exportDenied atomic.Bool
	// folderAPIDenied: the mailbox API's folder routes answered 403.
	folderAPIDenied atomic.Bool
}

// MaxItemsPerRequest is Graph's limit for $batch and exportItems.
const MaxItemsPerRequest = 20

// Close closes the source's idle connections: a daemon opens a source
// per job cycle, and kept-alive connections (each with its goroutines) must
// not outlive it.
func (s *Source) Close() {
	s.c.http.CloseIdleConnections()
	s.c.plain.CloseIdleConnections()
}

// NewSource checks the configuration and builds the source.
func NewSource(cfg Config) (*Source, error) {
	if cfg.GraphURL == "" {
		cfg.GraphURL = DefaultGraphURL
	}
	if cfg.BetaURL == "" {
		cfg.BetaURL = BetaURL(cfg.GraphURL)
	}
	base, err := url.Parse(strings.TrimRight(cfg.GraphURL, "/"))
	if err != nil || base.Host == "" || base.Scheme != "https" && base.Scheme != "http" {
		return nil, fmt.Errorf("graph URL %q is not an http(s) URL", cfg.GraphURL)
	}
	beta, err := url.Parse(strings.TrimRight(cfg.BetaURL, "/"))
	if err != nil || beta.Host == "" {
		return nil, fmt.Errorf("beta URL %q is not an http(s) URL", cfg.BetaURL)
	}
	if cfg.PageSize <= 0 || cfg.PageSize > 500 {
		cfg.PageSize = 500
	}
	if cfg.MaxReply <= 0 {
		cfg.MaxReply = DefaultMaxReply
	}
	for k, m := range cfg.Content {
		switch k {
		case domain.KindMail, domain.KindCalendar, domain.KindContacts:
		default:
			return nil, fmt.Errorf("content setting for %q: kinds are mail, calendar and contacts", k)
		}
		switch m {
		case ModeAuto, ModeExport, ModeBatch, ModeGet:
		default:
			return nil, fmt.Errorf("content mode %q for %s: use auto, export, batch or get", m, k)
		}
	}
	if cfg.HTTP == nil {
		if cfg.HTTP, err = HTTPClient("", DefaultTimeout); err != nil {
			return nil, err
		}
	}
	hc := *cfg.HTTP
	hc.CheckRedirect = sameHostRedirects // whatever client was given
	plain := hc
	if cfg.Tokens != nil {
		hc.Transport = &Transport{Base: cfg.HTTP.Transport, Tokens: cfg.Tokens, Host: base.Host}
	}
	return &Source{cfg: cfg, c: &client{http: &hc, plain: &plain, base: base, beta: beta, maxReply: cfg.MaxReply, now: time.Now},
		kinds: map[string]string{}, exchange: map[string]string{}, noArchive: map[string]bool{}, imports: map[string]importSession{}}, nil
}

// exportOnly tells whether exportItems is the only route to a folder's
// content: tasks and notes have no per-kind route, and an archive has no
// route but the mailbox API at all (so nothing to fall back to either).
func exportOnly(mailbox, kind string) bool {
	_, archive := domain.ArchiveOwner(mailbox)
	return archive || kind != domain.KindMail && kind != domain.KindCalendar && kind != domain.KindContacts
}

// mode is the effective content mode of a kind.
func (s *Source) mode(kind string) string {
	m := s.cfg.Content[kind]
	if m == "" {
		m = ModeAuto
	}
	if m == ModeAuto {
		if s.exportDenied.Load() {
			return ModeBatch
		}
		return ModeExport
	}
	return m
}

// MaxBatch implements pipeline.BatchLimit.
func (s *Source) MaxBatch() int {
	for _, k := range []string{domain.KindMail, domain.KindCalendar, domain.KindContacts} {
		if s.cfg.Content[k] != ModeGet {
			return MaxItemsPerRequest
		}
	}
	return 1
}

// FolderParallelism implements pipeline.Pipelining: one folder may have as
// many requests out as a mailbox allows concurrent requests.
func (s *Source) FolderParallelism() int { return 4 }

// RequestCost implements pipeline.CostModel: an exportItems call is one
// request; a $batch counts each sub-request against the window and runs
// up to four of them at once.
func (s *Source) RequestCost(request, kind string, items int) domain.RequestCost {
	if request != domain.RequestFetch {
		return domain.UnitCost
	}
	mode := s.mode(kind)
	if exportOnly("", kind) {
		// (An archive's items are exported too, whatever their kind; the
		// price of its mail in another mode is then an overestimate,
		// which costs pace only: the cost model is told no mailbox.)
		mode = ModeExport
	}
	switch mode {
	case ModeExport:
		return domain.UnitCost
	case ModeGet:
		return domain.RequestCost{Budget: max(items, 1), Concurrency: 1}
	default:
		return domain.RequestCost{Budget: max(items, 1), Concurrency: min(max(items, 1), 4)}
	}
}

var preferImmutable = `IdType="ImmutableId"`

func (s *Source) getJSON(ctx context.Context, rawURL string, header http.Header, v any) error {
	resp, err := s.c.do(ctx, http.MethodGet, rawURL, header, nil)
	if err != nil {
		return err
	}
	if fl := DecodeJSON(resp.header, resp.body, v); fl != nil {
		return fl
	}
	return nil
}

type collection[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

// all follows nextLinks of a collection.
func all[T any](ctx context.Context, s *Source, first string) ([]T, error) {
	var out []T
	link := first
	for pages := 0; link != ""; pages++ {
		if pages > 10000 {
			return nil, &domain.Failure{Class: domain.ClassFatal, Code: "EndlessPaging", Message: "the server kept returning nextLinks"}
		}
		var page collection[T]
		if err := s.getJSON(ctx, link, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
		link = page.NextLink
	}
	return out, nil
}

// Mailboxes lists the configured mailboxes, or every user with a mailbox;
// with Archives each is followed by its archive (a mailbox without one has
// no folders).
func (s *Source) Mailboxes(ctx context.Context) ([]string, error) {
	list, err := s.primaryMailboxes(ctx)
	if err != nil || !s.cfg.Archives {
		return list, err
	}
	return domain.WithArchives(list), nil
}

func (s *Source) primaryMailboxes(ctx context.Context) ([]string, error) {
	if len(s.cfg.Mailboxes) > 0 {
		return s.cfg.Mailboxes, nil
	}
	type user struct {
		ID   string `json:"id"`
		Mail string `json:"mail"`
		UPN  string `json:"userPrincipalName"`
	}
	users, err := all[user](ctx, s, s.c.url(false, "users")+"?$top=999&$select=id,mail,userPrincipalName")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range users {
		if u.Mail != "" { // users without a mail address have no mailbox
			out = append(out, u.Mail)
		}
	}
	return out, nil
}

// maxFolderDepth is Exchange Online's limit on folder nesting.
const maxFolderDepth = 300

type graphFolder struct {
	ID               string `json:"id"`
	DisplayName      string `json:"displayName"`
	Name             string `json:"name"` // calendars
	ChildFolderCount int    `json:"childFolderCount"`
}

// Folders lists the mail folder tree (hidden folders included), the
// calendars and the contact folders of a mailbox, parents first.
func (s *Source) Folders(ctx context.Context, mailbox string) ([]domain.Folder, error) {
	var out []domain.Folder
	var walk func(kind, collection, link, parent string, depth int) error
	walk = func(kind, collection, link, parent string, depth int) error {
		if depth > maxFolderDepth {
			// A server that keeps announcing child folders would otherwise
			// be walked for ever.
			return &domain.Failure{Class: domain.ClassFatal, Code: "FolderTreeTooDeep",
				Message: fmt.Sprintf("the %s tree is deeper than %d levels under %q", collection, maxFolderDepth, parent)}
		}
		list, err := all[graphFolder](ctx, s, link)
		if err != nil {
			return err
		}
		for _, f := range list {
			name := f.DisplayName
			if name == "" {
				name = f.Name
			}
			path := name
			if parent != "" {
				path = parent + "/" + name
			}
			out = append(out, domain.Folder{ID: f.ID, Path: path, Kind: kind})
			s.mu.Lock()
			s.kinds[mailbox+"\x00"+f.ID] = kind
			s.mu.Unlock()
			if f.ChildFolderCount > 0 || kind == domain.KindContacts {
				child := s.c.url(false, "users", mailbox, collection, f.ID, "childFolders") + "?$top=250"
				if kind == domain.KindMail {
					child += "&includeHiddenFolders=true"
				}
				if err := walk(kind, collection, child, path, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(domain.KindMail, "mailFolders", s.c.url(false, "users", mailbox, "mailFolders")+"?includeHiddenFolders=true&$top=250", "", 0); err != nil {
		return nil, err
	}
	if err := walk(domain.KindCalendar, "calendars", s.c.url(false, "users", mailbox, "calendars")+"?$top=250", "", 0); err != nil {
		return nil, err
	}
	if err := walk(domain.KindContacts, "contactFolders", s.c.url(false, "users", mailbox, "contactFolders")+"?$top=250", "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

// wellKnownNames are resolved in one $batch so that folder filters can name
// folders the same way in every language. The $batch costs a budget unit
// per name, so Folders does not ask: discovery asks WellKnown when a job's
// folder filter needs the names.
var wellKnownNames = []string{"inbox", "sentitems", "deleteditems", "drafts", "junkemail", "outbox", "archive",
	"conversationhistory", "syncissues", "clutter", "scheduled", "searchfolders", "conflicts", "localfailures",
	"serverfailures", "recoverableitemsdeletions"}

// WellKnown maps the mailbox's well-known folders' ids to their names. An
// archive's are not reachable by name: the folder delta gives them.
func (s *Source) WellKnown(ctx context.Context, mailbox string) (map[string]string, error) {
	if _, archive := domain.ArchiveOwner(mailbox); archive {
		return map[string]string{}, nil
	}
	reqs := make([]batchRequest, len(wellKnownNames))
	for i, n := range wellKnownNames {
		reqs[i] = batchRequest{ID: strconv.Itoa(i), Method: http.MethodGet, URL: "/users/" + url.PathEscape(mailbox) + "/mailFolders/" + n + "?$select=id"}
	}
	res, err := s.batch(ctx, reqs)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, n := range wellKnownNames {
		r := res[strconv.Itoa(i)]
		var f struct {
			ID string `json:"id"`
		}
		if r.Status == http.StatusOK && json.Unmarshal(r.Body, &f) == nil && f.ID != "" {
			out[f.ID] = n
		}
	}
	return out, nil
}

func (s *Source) kind(mailbox, folderID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.kinds[mailbox+"\x00"+folderID]
	if !ok {
		return "", &domain.Failure{Class: domain.ClassFatal, Code: "UnknownFolder", Message: "folder " + folderID + " was not discovered in this run"}
	}
	return k, nil
}

// Page tokens carry the listing position of their first item before the
// Graph link: "<position>|<nextLink or deltaLink>".
func pageToken(pos int, link string) string { return strconv.Itoa(pos) + "|" + link }

func parsePageToken(tok string) (int, string, error) {
	p, link, ok := strings.Cut(tok, "|")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || n < 1 {
		return 0, "", &domain.Failure{Class: domain.ClassResync, Code: "BadPageToken", Message: "the stored page token is unreadable; listing again"}
	}
	return n, link, nil
}

type deltaEntry struct {
	ID           string          `json:"id"`
	ChangeKey    string          `json:"changeKey"`
	LastModified string          `json:"lastModifiedDateTime"`
	Start        *graphDateTime  `json:"start"`
	Removed      json.RawMessage `json:"@removed"`
}

// graphDateTime is Graph's dateTimeTimeZone.
type graphDateTime struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

// itemTime is what a time filter ages an entry by: an event's start (asked
// for in UTC), anything else's last modification; zero when unreadable.
func (e deltaEntry) itemTime() time.Time {
	if e.Start != nil && e.Start.DateTime != "" {
		loc := time.UTC
		if z, err := time.LoadLocation(e.Start.TimeZone); err == nil && e.Start.TimeZone != "" {
			loc = z
		}
		if t, err := time.ParseInLocation("2006-01-02T15:04:05.9999999", e.Start.DateTime, loc); err == nil {
			return t
		}
	}
	t, _ := time.Parse(time.RFC3339Nano, e.LastModified)
	return t
}

// checkStoredLink tells a stored delta or next link for another host than
// the connection's (the Graph URL changed: a national cloud, a proxy, the
// simulator on a new port) from a hostile one: it was checked when it
// arrived, so it is stale, not dangerous. The folder's listing starts
// again from the beginning, and the report says why; the token never goes
// to that host.
func (s *Source) checkStoredLink(link string) error {
	u, err := CheckLink(s.c.base, link)
	if errors.Is(err, ErrForeignHost) {
		u, err = CheckLink(s.c.beta, link)
	}
	if errors.Is(err, ErrForeignHost) {
		host := "another host"
		if p, perr := url.Parse(link); perr == nil && p.Host != "" {
			host = p.Host
		}
		return &domain.Failure{Class: domain.ClassResync, Code: "StaleDeltaLink", Message: fmt.Sprintf(
			"the stored delta link is for %s, not for %s, which this connection uses now: the folder is listed again from the start", host, s.c.base.Host)}
	}
	if err != nil || u == nil {
		return &domain.Failure{Class: domain.ClassResync, Code: "StaleDeltaLink", Message: "the stored delta link is unreadable: the folder is listed again from the start"}
	}
	return nil
}

// List returns one page of a folder's delta: the first page of a full sync
// for an empty token, a change round for a stored deltaLink.
func (s *Source) List(ctx context.Context, mailbox, folderID, token string) (domain.Page, error) {
	kind, err := s.kind(mailbox, folderID)
	if err != nil {
		return domain.Page{}, err
	}
	pos, link := 1, ""
	if token != "" {
		if pos, link, err = parsePageToken(token); err != nil {
			return domain.Page{}, err
		}
		if err := s.checkStoredLink(link); err != nil {
			return domain.Page{}, err
		}
	} else {
		_, archive := domain.ArchiveOwner(mailbox)
		if archive {
			kind = "" // an archive is listed through the mailbox API only
		}
		switch kind {
		case domain.KindMail:
			link = s.c.url(false, "users", mailbox, "mailFolders", folderID, "messages", "delta") + "?$select=id,changeKey,lastModifiedDateTime"
		case domain.KindCalendar:
			// v1.0 has only calendarView/delta, bounded by a time window;
			// the beta events delta covers the whole calendar.
			link = s.c.url(true, "users", mailbox, "calendars", folderID, "events", "delta") + "?$select=id,changeKey,lastModifiedDateTime,start"
		case domain.KindContacts:
			link = s.c.url(false, "users", mailbox, "contactFolders", folderID, "contacts", "delta") + "?$select=id,changeKey,lastModifiedDateTime"
		default:
			route, err := s.mailboxRoute(ctx, mailbox, "folders", folderID, "items", "delta")
			if err != nil {
				return domain.Page{}, err
			}
			link = route + "?$select=id,changeKey,lastModifiedDateTime"
		}
	}
	h := http.Header{"Prefer": {"odata.maxpagesize=" + strconv.Itoa(s.cfg.PageSize), preferImmutable, `outlook.timezone="UTC"`}}
	var page collection[deltaEntry]
	if err := s.getJSON(ctx, link, h, &page); err != nil {
		return domain.Page{}, err
	}
	out := domain.Page{Tracked: true}
	for _, e := range page.Value {
		if e.ID == "" {
			return domain.Page{}, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a delta entry has no id"}
		}
		if len(e.Removed) > 0 && string(e.Removed) != "null" {
			out.Removed = append(out.Removed, e.ID)
			continue
		}
		out.Items = append(out.Items, domain.ItemRef{Position: pos, ID: e.ID, ChangeKey: e.ChangeKey, Time: e.itemTime()})
		pos++
	}
	switch {
	case page.NextLink != "":
		if _, err := CheckLink(s.c.base, page.NextLink); err != nil {
			return domain.Page{}, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: "nextLink refused: " + err.Error()}
		}
		out.Next = pageToken(pos, page.NextLink)
	case page.DeltaLink != "":
		if _, err := CheckLink(s.c.base, page.DeltaLink); err != nil {
			return domain.Page{}, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: "deltaLink refused: " + err.Error()}
		}
		out.SyncToken = pageToken(1, page.DeltaLink)
	default:
		return domain.Page{}, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a delta page has neither @odata.nextLink nor @odata.deltaLink"}
	}
	return out, nil
}

// Fetch downloads items in the kind's content mode.
func (s *Source) Fetch(ctx context.Context, mailbox, folderID string, items []domain.ItemRef, deliver func(domain.Item) error) error {
	kind, err := s.kind(mailbox, folderID)
	if err != nil {
		return err
	}
	if len(items) > MaxItemsPerRequest {
		return &domain.Failure{Class: domain.ClassFatal, Code: "BatchTooLarge", Message: fmt.Sprintf("%d items in one request; Graph takes %d", len(items), MaxItemsPerRequest)}
	}
	mode := s.mode(kind)
	if exportOnly(mailbox, kind) {
		mode = ModeExport
	}
	switch mode {
	case ModeExport:
		err := s.export(ctx, mailbox, items, deliver)
		if fl, ok := err.(*domain.Failure); ok && fl.Code == "ErrorAccessDenied" && s.cfg.Content[kind] != ModeExport && !exportOnly(mailbox, kind) {
			// No MailboxItem.Export.All: fall back to MIME for the rest
			// of the run, and say so once.
			if !s.exportDenied.Swap(true) {
				s.cfg.Log.Warn().Str("mailbox", mailbox).Msg("exportItems is not permitted (MailboxItem.Export.All missing): falling back to MIME/JSON through $batch")
			}
			return s.batchFetch(ctx, mailbox, kind, items, deliver)
		}
		return err
	case ModeGet:
		for _, it := range items {
			resp, err := s.c.do(ctx, http.MethodGet, s.itemURL(false, mailbox, kind, it.ID, true), http.Header{"Prefer": {preferImmutable}}, nil)
			if err != nil {
				return err
			}
			if err := deliver(domain.Item{Ref: it, Content: resp.body, Format: contentFormat(kind)}); err != nil {
				return err
			}
		}
		return nil
	default:
		return s.batchFetch(ctx, mailbox, kind, items, deliver)
	}
}

// itemURL is an item's content URL: absolute, or relative for a $batch.
func (s *Source) itemURL(relative bool, mailbox, kind, id string, asJSON bool) string {
	var segs []string
	var query string
	switch kind {
	case domain.KindMail:
		segs = []string{"users", mailbox, "messages", id}
		if !asJSON {
			segs = append(segs, "$value")
		}
	case domain.KindCalendar:
		segs, query = []string{"users", mailbox, "events", id}, "?$expand=exceptionOccurrences,attachments"
	default:
		segs = []string{"users", mailbox, "contacts", id}
	}
	if !relative {
		return s.c.url(false, segs...) + query
	}
	var b strings.Builder
	for _, seg := range segs {
		b.WriteByte('/')
		if seg == "$value" {
			b.WriteString(seg)
		} else {
			b.WriteString(url.PathEscape(seg))
		}
	}
	return b.String() + query
}

type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// batch posts one $batch and returns the responses by id.
func (s *Source) batch(ctx context.Context, reqs []batchRequest) (map[string]batchResponse, error) {
	body, err := json.Marshal(map[string]any{"requests": reqs})
	if err != nil {
		return nil, err
	}
	resp, err := s.c.do(ctx, http.MethodPost, s.c.url(false, "$batch"), nil, body)
	if err != nil {
		return nil, err
	}
	pipeline.SpendBudget(ctx, len(reqs)-1) // each sub-request is counted; do counted one
	var out struct {
		Responses []batchResponse `json:"responses"`
	}
	if fl := DecodeJSON(resp.header, resp.body, &out); fl != nil {
		return nil, fl
	}
	byID := make(map[string]batchResponse, len(out.Responses))
	for _, r := range out.Responses {
		byID[r.ID] = r
	}
	return byID, nil
}

// batchFetch gets up to 20 items through $batch. Each sub-request has its
// own status: a failed one fails that item only.
func (s *Source) batchFetch(ctx context.Context, mailbox, kind string, items []domain.ItemRef, deliver func(domain.Item) error) error {
	reqs := make([]batchRequest, len(items))
	for i, it := range items {
		reqs[i] = batchRequest{ID: strconv.Itoa(i + 1), Method: http.MethodGet, URL: s.itemURL(true, mailbox, kind, it.ID, false),
			Headers: map[string]string{"Prefer": preferImmutable}}
	}
	res, err := s.batch(ctx, reqs)
	if err != nil {
		return err
	}
	now := time.Now()
	for i, it := range items {
		r, ok := res[strconv.Itoa(i+1)]
		item := domain.Item{Ref: it, Format: contentFormat(kind)}
		switch {
		case !ok:
			item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "MissingResponse", Message: "the $batch reply has no response for this item"}
		case r.Status >= 200 && r.Status < 300:
			content, fl := subBody(r)
			item.Content, item.Failure = content, fl
		default:
			h := http.Header{}
			for k, v := range r.Headers {
				h.Set(k, v)
			}
			if h.Get("Content-Type") == "" {
				h.Set("Content-Type", "application/json")
			}
			item.Failure = Classify(r.Status, h, r.Body, now)
		}
		if err := deliver(item); err != nil {
			return err
		}
	}
	return nil
}

// contentFormat is how $batch and GET deliver an item of kind: messages as
// MIME ($value), events and contacts as their JSON resource.
func contentFormat(kind string) string {
	if kind == domain.KindMail {
		return domain.FormatMIME
	}
	return domain.FormatGraphJSON
}

// subBody decodes a sub-response body: JSON stays JSON, anything else comes
// base64-encoded as a JSON string.
func subBody(r batchResponse) ([]byte, *domain.Failure) {
	ct := ""
	for k, v := range r.Headers {
		if strings.EqualFold(k, "Content-Type") {
			ct = strings.ToLower(v)
		}
	}
	if strings.HasPrefix(ct, "application/json") {
		if !json.Valid(r.Body) {
			return nil, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a $batch response body is not valid JSON"}
		}
		return r.Body, nil
	}
	var enc string
	if err := json.Unmarshal(r.Body, &enc); err != nil {
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a non-JSON $batch body is not a base64 string"}
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "a $batch body is not valid base64: " + err.Error()}
	}
	return b, nil
}

// exchangeID is the mailbox id exportItems addresses (settings/exchange),
// asked once per mailbox per run.
func (s *Source) exchangeID(ctx context.Context, mailbox string) (string, error) {
	s.mu.Lock()
	id, ok := s.exchange[mailbox]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	// One settings/exchange per user gives both ids: its mailbox's and
	// its archive's.
	user, archive := domain.ArchiveOwner(mailbox)
	_, err, _ := s.exchangeCalls.Do(user, func() (any, error) {
		var st struct {
			PrimaryMailboxID string `json:"primaryMailboxId"`
			ArchiveMailboxID string `json:"archiveMailboxId"`
		}
		if err := s.getJSON(ctx, s.c.url(true, "users", user, "settings", "exchange"), nil, &st); err != nil {
			return nil, err
		}
		if st.PrimaryMailboxID == "" {
			return nil, &domain.Failure{Class: domain.ClassFatal, Code: "NoMailboxID", Message: "settings/exchange has no primaryMailboxId"}
		}
		s.mu.Lock()
		s.exchange[user] = st.PrimaryMailboxID
		if st.ArchiveMailboxID != "" {
			s.exchange[user+domain.ArchiveSuffix] = st.ArchiveMailboxID
		} else {
			s.noArchive[user] = true
		}
		s.mu.Unlock()
		return nil, nil
	})
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.exchange[mailbox]; ok {
		return id, nil
	}
	if archive && s.noArchive[user] {
		return "", errNoArchive
	}
	return "", &domain.Failure{Class: domain.ClassFatal, Code: "NoMailboxID", Message: "settings/exchange has no id for " + mailbox}
}

// mailboxRoute is a route of the mailbox API for mailbox (its Exchange id
// resolved once): on beta for an archive, as v1.0 serves primary and
// shared mailboxes only.
func (s *Source) mailboxRoute(ctx context.Context, mailbox string, segments ...string) (string, error) {
	xid, err := s.exchangeID(ctx, mailbox)
	if err != nil {
		return "", err
	}
	_, archive := domain.ArchiveOwner(mailbox)
	return s.c.url(archive, append([]string{"admin", "exchange", "mailboxes", xid}, segments...)...), nil
}

// errNoArchive: the mailbox has no archive; its archive has no folders.
var errNoArchive = &domain.Failure{Class: domain.ClassFatal, Code: "NoArchive", Message: "the mailbox has no archive"}

type exportResponse struct {
	ItemID    string `json:"itemId"`
	ChangeKey string `json:"changeKey"`
	Data      string `json:"data"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// export gets up to 20 items as full-fidelity opaque streams. A per-item
// error fails that item; a failed request goes to isolation.
func (s *Source) export(ctx context.Context, mailbox string, items []domain.ItemRef, deliver func(domain.Item) error) error {
	route, err := s.mailboxRoute(ctx, mailbox, "exportItems")
	if err != nil {
		return err
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	body, _ := json.Marshal(map[string]any{"itemIds": ids})
	resp, err := s.c.do(ctx, http.MethodPost, route, nil, body)
	if err != nil {
		return err
	}
	var out collection[exportResponse]
	if fl := DecodeJSON(resp.header, resp.body, &out); fl != nil {
		return fl
	}
	byID := make(map[string]exportResponse, len(out.Value))
	for _, e := range out.Value {
		byID[e.ItemID] = e
	}
	for _, it := range items {
		e, ok := byID[it.ID]
		item := domain.Item{Ref: it}
		switch {
		case !ok:
			item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "MissingResponse", Message: "the exportItems reply has no entry for this item"}
		case e.Error != nil:
			class := domain.ClassFatal
			switch {
			case e.Error.Code == "ErrorItemNotFound":
				class = domain.ClassGone
			case dirtyCodes[e.Error.Code]:
				class = domain.ClassDirty
			case e.Error.Code == "ErrorServerBusy" || e.Error.Code == "ErrorTimeoutExpired":
				class = domain.ClassTransient
			}
			item.Failure = &domain.Failure{Class: class, Code: e.Error.Code, Message: domain.ShortMessage(e.Error.Message)}
		default:
			b, err := base64.StdEncoding.DecodeString(e.Data)
			if err != nil {
				item.Failure = &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: "exported data is not valid base64"}
			} else {
				item.Content, item.Format = b, domain.FormatGraphExport
				if e.ChangeKey != "" {
					item.Ref.ChangeKey = e.ChangeKey
				}
			}
		}
		if err := deliver(item); err != nil {
			return err
		}
	}
	return nil
}
