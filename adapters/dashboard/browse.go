package dashboard

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Browser is what the console reads of the storages: the same queries
// ls, find and export run.
type Browser interface {
	// Storages names the storages there are to browse.
	Storages(ctx context.Context) ([]string, error)
	// Groups counts a storage's items per mailbox, or per folder of
	// q.Mailbox when it is set.
	Groups(ctx context.Context, storage string, q Query) ([]Group, error)
	// Find calls fn for the newest version of each item q chooses, in the
	// storage's order, until fn returns false.
	Find(ctx context.Context, storage string, q Query, fn func(ItemRow) bool) error
	// Item opens one stored version for reading.
	Item(ctx context.Context, storage, id string) (ItemPage, error)
	// Download is one stored version as a standard file (EML, ICS, VCF).
	Download(ctx context.Context, storage, id string) (name, contentType string, content []byte, err error)
}

// ErrNoItem is what Browser.Item and Download answer for an id the
// storage does not hold (matched with errors.Is).
var ErrNoItem = errors.New("the storage holds no item with this id")

// Query is a search of a storage: any field may be empty.
type Query struct {
	Mailbox, Folder, Subject, From, Recipient string
	After, Before                             string // dates, 2006-01-02
}

func (q Query) searching() bool {
	return q.Folder != "" || q.Subject != "" || q.From != "" || q.Recipient != "" || q.After != "" || q.Before != ""
}

func (q Query) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"mailbox": q.Mailbox, "folder": q.Folder, "subject": q.Subject, "from": q.From, "recipient": q.Recipient,
		"after": q.After, "before": q.Before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Group is a mailbox, or a folder of one, and what the storage holds of it.
type Group struct {
	Name  string
	Items int
	Bytes int64
}

// ItemRow is one stored version in a list.
type ItemRow struct {
	ID, Mailbox, Folder, Kind, Subject, From string
	When                                     time.Time
	Size                                     int64
	// Stored is when this version was stored.
	Stored time.Time
}

// ItemPage is one stored version opened.
type ItemPage struct {
	Row     ItemRow
	Headers []Field
	Text    string
	// HTML is the sanitised HTML body (itemview.Sanitize): shown in a
	// sandboxed frame, where no script runs and nothing loads.
	HTML          string
	RemoteBlocked int
	Attachments   []Attachment
	// Versions are every stored version of the item, newest first.
	Versions []ItemRow
	// Problem says why the item cannot be shown (it can still be
	// downloaded as stored, or restored).
	Problem string
}

// Field is one header line of an item.
type Field struct{ Name, Value string }

// Attachment is one attachment as listed.
type Attachment struct {
	Name, Type string
	Size       int64
}

// FindRows is how many items a page of search results shows.
const FindRows = 100

// queryOf reads a query from a request's fields: the search form's URL,
// or the restore form's body, which carries the page's query.
func queryOf(r *http.Request) Query {
	g := func(k string) string { return strings.TrimSpace(r.FormValue(k)) }
	return Query{Mailbox: g("mailbox"), Folder: strings.Trim(g("folder"), "/"), Subject: g("subject"), From: g("from"), Recipient: g("recipient"),
		After: g("after"), Before: g("before")}
}

func (s *Server) storages(w http.ResponseWriter, r *http.Request) {
	names, err := s.br.Storages(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(names) == 1 {
		http.Redirect(w, r, "/browse/"+url.PathEscape(names[0]), http.StatusSeeOther)
		return
	}
	s.render(w, r, "browse.html", map[string]any{"Storages": names, "Page": "browse"})
}

// browse shows a storage: its mailboxes, a mailbox's folders, or the items
// a search chooses (a folder picked counts as a search), a page at a time.
func (s *Server) browse(w http.ResponseWriter, r *http.Request) {
	storage := r.PathValue("storage")
	q := queryOf(r)
	data := map[string]any{"Storage": storage, "Q": q, "Page": "browse"}
	if !q.searching() {
		groups, err := s.br.Groups(r.Context(), storage, q)
		if err != nil {
			s.browseError(w, r, data, err)
			return
		}
		links := make([]template.URL, len(groups))
		for i, g := range groups {
			v := q.values()
			if q.Mailbox == "" {
				v.Set("mailbox", g.Name)
			} else {
				v.Set("folder", strings.TrimPrefix(g.Name, q.Mailbox+"/"))
			}
			links[i] = template.URL("?" + v.Encode())
		}
		data["Groups"], data["Links"], data["Folders"] = groups, links, q.Mailbox != ""
		if q.Mailbox != "" && len(groups) > 0 {
			data["Restore"] = s.restoreForm(r.Context(), q.values(), "this mailbox")
		}
		s.render(w, r, "browse.html", data)
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	skip := (page - 1) * FindRows
	var rows []ItemRow
	more := false
	err := s.br.Find(r.Context(), storage, q, func(row ItemRow) bool {
		if skip > 0 {
			skip--
			return true
		}
		if len(rows) == FindRows {
			more = true
			return false
		}
		rows = append(rows, row)
		return true
	})
	if err != nil {
		s.browseError(w, r, data, err)
		return
	}
	link := func(p int) template.URL {
		v := q.values()
		v.Set("page", strconv.Itoa(p))
		return template.URL("?" + v.Encode())
	}
	data["Rows"], data["Searched"], data["PageNo"] = rows, true, page
	if len(rows) > 0 {
		what := "the items this search finds"
		if q.Subject == "" && q.From == "" && q.Recipient == "" && q.After == "" && q.Before == "" {
			what = "this folder and its subfolders"
			if q.Folder == "" {
				what = "this mailbox"
			}
		}
		data["Restore"] = s.restoreForm(r.Context(), q.values(), what)
	}
	data["First"] = (page-1)*FindRows + 1
	if page > 1 {
		data["PrevURL"] = link(page - 1)
	}
	if more {
		data["NextURL"] = link(page + 1)
	}
	s.render(w, r, "browse.html", data)
}

func (s *Server) browseError(w http.ResponseWriter, r *http.Request, data map[string]any, err error) {
	w.WriteHeader(http.StatusBadRequest)
	data["Error"] = err.Error()
	s.render(w, r, "browse.html", data)
}

func (s *Server) item(w http.ResponseWriter, r *http.Request) {
	storage, id := r.PathValue("storage"), r.PathValue("id")
	it, err := s.br.Item(r.Context(), storage, id)
	if err != nil {
		http.Error(w, err.Error(), itemStatus(err))
		return
	}
	s.render(w, r, "item.html", map[string]any{"Storage": storage, "It": it, "Page": "item",
		"Restore": s.restoreForm(r.Context(), url.Values{"item": {id}}, "this version of the item")})
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	name, ctype, b, err := s.br.Download(r.Context(), r.PathValue("storage"), r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), itemStatus(err))
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.NewReplacer(`"`, "", "/", "", "\\", "").Replace(name)+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// itemStatus is the HTTP status of a failure to read an item: an id the
// storage does not hold is not found; anything else (a damaged item, a
// storage that cannot be opened) is the server's.
func itemStatus(err error) int {
	if errors.Is(err, ErrNoItem) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}
