// Package dashboard is the daemon's web console: server-rendered pages
// (html/template, no build step), live counters over Server-Sent Events,
// a login that turns the daemon's API token into a session (a random id in
// an HttpOnly, SameSite=Strict cookie, ended by logout or expiry), and the
// session's CSRF token on every action. It shows the jobs and runs from
// the daemon's projections of the event log, and, through the ports its
// backend may offer (Browser, Restorer, Setup, QuarantineDesk), browses
// the storages, restores, runs the setup wizards and retries quarantined
// items: the same application commands as the command line.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/projections"
)

//go:embed templates/*.html
var templateFS embed.FS

// Job is a job as the pages show it.
type Job struct {
	Name, Type, State, Storage, Connection string
	Running                                bool
	ItemsPerS, MBPerS                      float64
	Stored, Scanned, Restored              int
	CurrentMailbox, CurrentFolder          string
	Run                                    string // the run now, or the last one
	Settings                               []Setting
	// LastSuccess is when the job's newest cycle that finished (with or
	// without warnings) ended; zero for none yet.
	LastSuccess time.Time
	// Protected is the item versions the job's cycles stored in all.
	Protected int
}

// Setting is one line of a job's summary card.
type Setting struct{ Name, Value string }

// News is one line of the good or bad news cards.
type News struct {
	Time   time.Time
	Text   string
	RunID  string
	Detail string
}

// Backend is what the daemon gives the dashboard.
type Backend interface {
	Jobs() []Job
	News() (good, bad []News, err error)
	Runs() ([]projections.RunSummary, error)
	Report(run string) (*projections.Report, error)
	RunCSV(run string, w io.Writer) error
	// Do runs a job action: start, stop, or edit with the new idle time.
	Do(action, job, idle string) error
	// Changed is closed at the next change of the log; call again after.
	Changed() <-chan struct{}
}

// Server serves the pages.
type Server struct {
	b     Backend
	br    Browser  // nil when the backend cannot browse storages
	rs    Restorer // nil when it cannot restore
	su    Setup    // nil when it has no wizards
	qd    QuarantineDesk
	token string
	tmpl  *template.Template
	mux   *http.ServeMux
	// Now is the clock sessions expire by (tests set it).
	Now func() time.Time
	// Secure marks the cookie Secure (the listener serves TLS).
	Secure bool

	mu       sync.Mutex
	sessions map[string]*session
}

// session is one login: a random id in the cookie (nothing derived from
// the token, so a logout or an expiry ends it for good), its own CSRF
// token, and its times.
type session struct {
	csrf            string
	created, active time.Time
}

// Session lifetimes: an absolute one from the login, and an idle one.
const (
	SessionLifetime = 12 * time.Hour
	SessionIdle     = time.Hour
	// maxSessions bounds the memory logins can take; the oldest goes first.
	maxSessions = 64
)

const cookieName = "mailvault_session"

// New builds the dashboard for the daemon's token.
func New(b Backend, token string) *Server {
	s := &Server{b: b, token: token, mux: http.NewServeMux(), Now: time.Now, sessions: map[string]*session{}}
	funcs := template.FuncMap{
		"since": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
		"pct": func(a, total float64) string {
			if total <= 0 {
				return "0"
			}
			return fmt.Sprintf("%.0f", 100*a/total)
		},
		"add": func(a, b float64) float64 { return a + b },
		// add1 is the last row's number of a page: first + n - 1.
		"add1":  func(first, n int) int { return first + n - 1 },
		"bytes": projections.HumanBytes,
		"has":   has,
		"list":  func(s ...string) []string { return s },
	}
	s.tmpl = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.Handle("GET /{$}", s.authed(s.dashboard))
	s.mux.Handle("GET /jobs", s.authed(s.jobs))
	s.mux.Handle("POST /jobs/{name}/{action}", s.authed(s.action))
	s.mux.Handle("GET /runs/{id}", s.authed(s.run))
	s.mux.Handle("GET /runs/{id}/csv", s.authed(s.csv))
	s.mux.Handle("GET /events", s.authed(s.events))
	s.mux.Handle("POST /logout", s.authed(s.logout))
	if qd, ok := b.(QuarantineDesk); ok {
		s.qd = qd
		s.mux.Handle("GET /jobs/{name}/quarantine", s.authed(s.quarantinePage))
		s.mux.Handle("POST /jobs/{name}/quarantine/retry", s.authed(s.retryQuarantined))
	}
	if su, ok := b.(Setup); ok {
		s.su = su
		s.mux.Handle("GET /setup", s.authed(s.setupIndex))
		s.mux.Handle("GET /setup/connections/new", s.authed(s.connectionPage))
		s.mux.Handle("POST /setup/connections", s.authed(s.saveConnection))
		s.mux.Handle("POST /setup/connections/{name}/test", s.authed(s.testConnection))
		s.mux.Handle("GET /setup/connections/{name}/edit", s.authed(s.editConnectionPage))
		s.mux.Handle("POST /setup/connections/{name}", s.authed(s.saveConnection))
		s.mux.Handle("GET /setup/storages/{name}/edit", s.authed(s.retentionPage))
		s.mux.Handle("POST /setup/storages/{name}", s.authed(s.setRetention))
		s.mux.Handle("GET /setup/storages/new", s.authed(s.storagePage))
		s.mux.Handle("POST /setup/storages", s.authed(s.addStorage))
		s.mux.Handle("GET /setup/jobs/new", s.authed(s.jobPage))
		s.mux.Handle("GET /setup/jobs/{name}/edit", s.authed(s.jobPage))
		s.mux.Handle("POST /setup/jobs/review", s.authed(s.jobReview))
		s.mux.Handle("POST /setup/jobs", s.authed(s.saveJob))
		s.mux.Handle("GET /setup/alerts", s.authed(s.alertsPage))
		s.mux.Handle("POST /setup/alerts", s.authed(s.setAlerts))
	}
	if br, ok := b.(Browser); ok {
		s.br = br
		s.mux.Handle("GET /browse", s.authed(s.storages))
		s.mux.Handle("GET /browse/{storage}", s.authed(s.browse))
		s.mux.Handle("GET /browse/{storage}/items/{id}", s.authed(s.item))
		s.mux.Handle("GET /browse/{storage}/items/{id}/download", s.authed(s.download))
		if rs, ok := b.(Restorer); ok {
			s.rs = rs
			s.mux.Handle("POST /browse/{storage}/restore", s.authed(s.startRestore))
			s.mux.Handle("GET /restores/{id}", s.authed(s.restoreStatus))
		}
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	// Images only from here or inside a page (an item's inline images):
	// a stored message shown never loads anything from elsewhere.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand: never fails on the platforms Go supports
	return hex.EncodeToString(b)
}

// newSession starts a session, the oldest one giving way when there are
// too many.
func (s *Server) newSession() string {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if len(s.sessions) >= maxSessions {
		oldest := ""
		for id, ss := range s.sessions {
			if oldest == "" || ss.created.Before(s.sessions[oldest].created) {
				oldest = id
			}
		}
		delete(s.sessions, oldest)
	}
	id := randomHex()
	s.sessions[id] = &session{csrf: randomHex(), created: now, active: now}
	return id
}

// expire drops the sessions past either lifetime. Called with s.mu held.
func (s *Server) expire(now time.Time) {
	for id, ss := range s.sessions {
		if now.Sub(ss.created) >= SessionLifetime || now.Sub(ss.active) >= SessionIdle {
			delete(s.sessions, id)
		}
	}
}

// sessionOf is the live session a request's cookie names, marked active.
func (s *Server) sessionOf(r *http.Request) (string, *session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return "", nil, false
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	ss, ok := s.sessions[c.Value]
	if !ok {
		return "", nil, false
	}
	ss.active = now
	return c.Value, ss, true
}

type sessionKey struct{}

func (s *Server) authed(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ss, ok := s.sessionOf(r)
		if !ok {
			if r.Method == http.MethodGet && r.URL.Path != "/events" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(r.FormValue("csrf")), []byte(ss.csrf)) != 1 {
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page", http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sessionRef{id, ss.csrf})))
	})
}

// sessionRef is what a handler knows of its request's session.
type sessionRef struct{ id, csrf string }

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data map[string]any) {
	ref, _ := r.Context().Value(sessionKey{}).(sessionRef)
	data["CSRF"] = ref.csrf
	data["Browse"], data["Setup"], data["Quarantine"] = s.br != nil, s.su != nil, s.qd != nil
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.tmpl.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (s *Server) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: "/", HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode, MaxAge: maxAge}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login.html", map[string]any{"Error": r.URL.Query().Get("error")})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r.FormValue("token"))), []byte(s.token)) != 1 {
		http.Redirect(w, r, "/login?error="+url.QueryEscape("That is not the daemon's token (DATA/daemon.token)"), http.StatusSeeOther)
		return
	}
	http.SetCookie(w, s.cookie(s.newSession(), int(SessionLifetime/time.Second)))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the session on the server: its cookie, kept or copied,
// opens nothing any more.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	ref, _ := r.Context().Value(sessionKey{}).(sessionRef)
	s.mu.Lock()
	delete(s.sessions, ref.id)
	s.mu.Unlock()
	http.SetCookie(w, s.cookie("", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	good, bad, err := s.b.News()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.render(w, r, "dashboard.html", map[string]any{"Jobs": s.b.Jobs(), "Good": good, "Bad": bad, "Page": "dashboard"})
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	runs, err := s.b.Runs()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i] // newest first
	}
	if len(runs) > 20 {
		runs = runs[:20]
	}
	s.render(w, r, "jobs.html", map[string]any{"Jobs": s.b.Jobs(), "Runs": runs, "Page": "jobs", "Error": r.URL.Query().Get("error")})
}

func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	err := s.b.Do(r.PathValue("action"), r.PathValue("name"), r.FormValue("idle"))
	if err != nil {
		http.Redirect(w, r, "/jobs?error="+url.QueryEscape(err.Error()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/jobs", http.StatusSeeOther)
}

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rep, err := s.b.Report(id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	var buf strings.Builder
	if err := s.b.RunCSV(id, &buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rows := parseCSV(buf.String())
	q := r.URL.Query()
	page := timelinePage(rows, q.Get("q"), q.Get("problems") != "", q.Get("page"))
	s.render(w, r, "run.html", map[string]any{"R": rep, "Rows": page.Rows, "Timeline": page, "Explain": Explain(rep), "Page": "run",
		"StallMax": max(rep.StallSourceS, rep.StallTargetS, 0.001)})
}

// TimelineRows is how many rows of a run's timeline a page shows: a run
// has thousands, and the CSV has them all.
const TimelineRows = 200

// Timeline is one page of a run's timeline, filtered.
type Timeline struct {
	Rows               []Row
	Query              string
	Problems           bool
	Page, Pages        int
	First, Last, Total int // rows First..Last of Total (1-based), after the filter
	PrevURL, NextURL   template.URL
}

// timelinePage filters rows (text anywhere in the mailbox, folder, event
// or detail, any case; problems only) and cuts the page asked for (the
// last one for a page past the end).
func timelinePage(rows []Row, query string, problems bool, page string) Timeline {
	t := Timeline{Query: strings.TrimSpace(query), Problems: problems, Page: 1}
	needle := strings.ToLower(t.Query)
	var kept []Row
	for _, r := range rows {
		if problems && !r.Bad {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(r.Mailbox+" "+r.Folder+" "+r.Event+" "+r.Detail), needle) {
			continue
		}
		kept = append(kept, r)
	}
	t.Total = len(kept)
	t.Pages = max(1, (t.Total+TimelineRows-1)/TimelineRows)
	if n, err := strconv.Atoi(page); err == nil {
		t.Page = min(max(n, 1), t.Pages)
	}
	from := (t.Page - 1) * TimelineRows
	to := min(from+TimelineRows, t.Total)
	t.Rows = kept[from:to]
	if t.Total > 0 {
		t.First, t.Last = from+1, to
	}
	link := func(p int) template.URL {
		v := url.Values{"page": {strconv.Itoa(p)}}
		if t.Query != "" {
			v.Set("q", t.Query)
		}
		if problems {
			v.Set("problems", "1")
		}
		return template.URL("?" + v.Encode() + "#timeline")
	}
	if t.Page > 1 {
		t.PrevURL = link(t.Page - 1)
	}
	if t.Page < t.Pages {
		t.NextURL = link(t.Page + 1)
	}
	return t
}

func (s *Server) csv(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.NewReplacer(`"`, "", "/", "").Replace(id)+`.csv"`)
	if err := s.b.RunCSV(id, w); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
	}
}

// events streams the jobs' counters whenever the log changes (at most
// twice a second), as Server-Sent Events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	send := func() bool {
		b, _ := json.Marshal(s.b.Jobs())
		if _, err := fmt.Fprintf(w, "event: jobs\ndata: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send() {
		return
	}
	tick := time.NewTicker(2 * time.Second) // speeds and states change without log events too
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.b.Changed():
		case <-tick.C:
		}
		if !send() {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
