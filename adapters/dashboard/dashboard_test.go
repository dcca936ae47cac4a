package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/projections"
)

type fakeBackend struct {
	did     []string
	changed chan struct{}
}

func (f *fakeBackend) Jobs() []Job {
	return []Job{{Name: "nightly", Type: "continuous", State: "active (running)", Stored: 42, Settings: []Setting{{"Storage", "nas"}}}}
}
func (f *fakeBackend) News() ([]News, []News, error) {
	return []News{{Time: time.Unix(0, 0), Text: "Run r1 finished", RunID: "r1"}}, []News{{Time: time.Unix(0, 0), Text: "Run r2 finished with warnings", RunID: "r2"}}, nil
}
func (f *fakeBackend) Runs() ([]projections.RunSummary, error) { return nil, nil }
func (f *fakeBackend) Report(run string) (*projections.Report, error) {
	r := projections.NewReport(run)
	r.ThrottledRequests, r.StallSourceS, r.StallTargetS = 3, 1, 9
	r.Paces, r.PaceLimits = map[string]float64{"a@x": 2.5}, map[string]string{"a@x": "ErrorServerBusy, costly"}
	return r, nil
}
func (f *fakeBackend) RunCSV(run string, w io.Writer) error {
	_, err := io.WriteString(w, "timestamp,job,run,mailbox,folder,worker,event,detail\nt,,r1,a@x,Inbox,1,batch_failed,1. Fetch 400 items (#1 - #400) – failed\n")
	return err
}
func (f *fakeBackend) Do(action, job, idle string) error {
	f.did = append(f.did, action+" "+job+" "+idle)
	return nil
}
func (f *fakeBackend) Changed() <-chan struct{} { return f.changed }

func TestLoginSessionAndCSRF(t *testing.T) {
	fb := &fakeBackend{changed: make(chan struct{})}
	srv := httptest.NewServer(New(fb, "tok-123"))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	resp, _ := c.Get(srv.URL + "/")
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("without a session / goes to %s", resp.Request.URL.Path)
	}
	resp, _ = c.PostForm(srv.URL+"/login", url.Values{"token": {"wrong"}})
	if resp.Request.URL.Path != "/login" || !strings.Contains(resp.Request.URL.RawQuery, "error") {
		t.Fatalf("a wrong token got in: %s", resp.Request.URL)
	}
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = noFollow.PostForm(srv.URL+"/login", url.Values{"token": {"tok-123"}})
	ck := resp.Header.Get("Set-Cookie")
	if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || strings.Contains(ck, "tok-123") {
		t.Fatalf("session cookie %q", ck)
	}
	resp, _ = c.Get(srv.URL + "/")
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"Jobs", "Good news", "Bad news", "nightly", "Run r2 finished with warnings"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("dashboard lacks %q", want)
		}
	}
	resp, _ = c.PostForm(srv.URL+"/jobs/nightly/stop", url.Values{})
	if resp.StatusCode != http.StatusForbidden || len(fb.did) != 0 {
		t.Fatalf("an action without the CSRF token: %d %v", resp.StatusCode, fb.did)
	}
	resp, _ = c.PostForm(srv.URL+"/jobs/nightly/edit", url.Values{"csrf": {csrfOf(t, c, srv.URL)}, "idle": {"00:05:00"}})
	if resp.StatusCode != http.StatusOK || len(fb.did) != 1 || fb.did[0] != "edit nightly 00:05:00" {
		t.Fatalf("action: %d %v", resp.StatusCode, fb.did)
	}
	resp, _ = c.Get(srv.URL + "/runs/r1")
	body, _ = io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "Fetch 400 items (#1 - #400) – failed") || !strings.Contains(string(body), "Waiting for storage") || !strings.Contains(string(body), "Throttled by the server") ||
		!strings.Contains(string(body), "<td>a@x</td><td>2.5 requests/s</td><td>ErrorServerBusy, costly</td>") {
		t.Fatalf("run page:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := c.Do(req)
	if err != nil || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %v", err, resp.Header)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "event: jobs\n" {
		t.Fatalf("first event line %q", line)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrfOf is the CSRF token the jobs page's forms carry for c's session.
func csrfOf(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	resp, err := c.Get(base + "/jobs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	m := csrfField.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the jobs page:\n%s", body)
	}
	return string(m[1])
}

// login opens a session and returns a client holding its cookie.
func login(t *testing.T, base string) (*http.Client, *http.Cookie) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(base+"/login", url.Values{"token": {"tok-123"}})
	if err != nil || resp.Request.URL.Path != "/" {
		t.Fatalf("login: %v %v", err, resp.Request.URL)
	}
	u, _ := url.Parse(base)
	return c, jar.Cookies(u)[0]
}

// reaches tells whether a request with only this cookie gets the
// dashboard.
func reaches(t *testing.T, base string, ck *http.Cookie) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.AddCookie(ck)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode == http.StatusOK
}

// Logout ends the session on the server: the old cookie, replayed, is
// refused, while another session goes on; each session has its own CSRF
// token; sessions end after an hour idle or 12 hours after the login,
// whatever the cookie says.
func TestSessionsEndOnLogoutAndExpiry(t *testing.T) {
	fb := &fakeBackend{changed: make(chan struct{})}
	dash := New(fb, "tok-123")
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	dash.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	srv := httptest.NewServer(dash)
	defer srv.Close()

	a, aCookie := login(t, srv.URL)
	b, bCookie := login(t, srv.URL)
	if aCookie.Value == bCookie.Value || csrfOf(t, a, srv.URL) == csrfOf(t, b, srv.URL) {
		t.Fatal("two logins share a session or a CSRF token")
	}
	resp, _ := a.PostForm(srv.URL+"/jobs/nightly/stop", url.Values{"csrf": {csrfOf(t, b, srv.URL)}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another session's CSRF token was taken: %d", resp.StatusCode)
	}
	resp, _ = a.PostForm(srv.URL+"/logout", url.Values{"csrf": {csrfOf(t, a, srv.URL)}})
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("logout went to %s", resp.Request.URL.Path)
	}
	if reaches(t, srv.URL, aCookie) {
		t.Fatal("the logged-out cookie still opens the dashboard")
	}
	if !reaches(t, srv.URL, bCookie) {
		t.Fatal("another session ended with the logout")
	}

	advance(SessionIdle - time.Minute)
	if !reaches(t, srv.URL, bCookie) {
		t.Fatal("a session ended before its idle time")
	}
	advance(SessionIdle) // idle since the last request
	if reaches(t, srv.URL, bCookie) {
		t.Fatal("an idle session did not end")
	}

	_, cCookie := login(t, srv.URL)
	for range SessionLifetime / (SessionIdle / 2) {
		if !reaches(t, srv.URL, cCookie) {
			t.Fatal("an active session ended before its lifetime")
		}
		advance(SessionIdle / 2)
	}
	if reaches(t, srv.URL, cCookie) {
		t.Fatal("a session outlived its lifetime")
	}
	if reaches(t, srv.URL, &http.Cookie{Name: cookieName, Value: strings.Repeat("0", 64)}) {
		t.Fatal("a made-up session id got in")
	}
}

// A run's timeline comes a page at a time, filtered by text (any case,
// anywhere in the row) and to problems only; the links keep the filter; a
// page past the end shows the last one.
func TestTimelinePages(t *testing.T) {
	var rows []Row
	for i := range 450 {
		r := Row{Mailbox: "a@x", Folder: "Inbox", Event: "item_stored", Detail: fmt.Sprintf("Stored item %d", i)}
		if i%10 == 0 {
			r.Event, r.Detail, r.Bad = "item_quarantined", fmt.Sprintf("Quarantined item %d: ErrorCorruptData", i), true
		}
		if i >= 400 {
			r.Mailbox = "b@x"
		}
		rows = append(rows, r)
	}
	for _, c := range []struct {
		name, q           string
		problems          bool
		page              string
		want, first, last int
		pages, total      int
		prev, next        bool
	}{
		{"the first page", "", false, "", 1, 1, 200, 3, 450, false, true},
		{"the last page", "", false, "3", 3, 401, 450, 3, 450, true, false},
		{"past the end", "", false, "99", 3, 401, 450, 3, 450, true, false},
		{"not a number", "", false, "x", 1, 1, 200, 3, 450, false, true},
		{"problems only", "", true, "", 1, 1, 45, 1, 45, false, false},
		{"by text, any case", "B@X", false, "", 1, 1, 50, 1, 50, false, false},
		{"both", "corruptdata", true, "1", 1, 1, 45, 1, 45, false, false},
		{"nothing found", "no such text", false, "", 1, 0, 0, 1, 0, false, false},
	} {
		tl := timelinePage(rows, c.q, c.problems, c.page)
		if tl.Page != c.want || tl.First != c.first || tl.Last != c.last || tl.Pages != c.pages || tl.Total != c.total ||
			(tl.PrevURL != "") != c.prev || (tl.NextURL != "") != c.next || len(tl.Rows) != max(0, c.last-c.first+1) && c.total > 0 {
			t.Errorf("%s: %+v", c.name, Timeline{Page: tl.Page, Pages: tl.Pages, First: tl.First, Last: tl.Last, Total: tl.Total, PrevURL: tl.PrevURL, NextURL: tl.NextURL})
		}
	}
	tl := timelinePage(rows, "item", true, "1")
	if tl.NextURL != "" || !strings.Contains(string(timelinePage(rows, "item", false, "1").NextURL), "q=item") {
		t.Errorf("the links lose the filter: %q", timelinePage(rows, "item", false, "1").NextURL)
	}
}
