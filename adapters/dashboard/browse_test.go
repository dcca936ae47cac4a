package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// browsingBackend is the fake backend with a storage of 250 items.
type browsingBackend struct {
	fakeBackend
	asked []Query
}

func (b *browsingBackend) Storages(context.Context) ([]string, error) {
	return []string{"nas", "usb"}, nil
}
func (b *browsingBackend) Groups(_ context.Context, storage string, q Query) ([]Group, error) {
	b.asked = append(b.asked, q)
	if q.Mailbox != "" {
		return []Group{{Name: q.Mailbox + "/Inbox", Items: 250, Bytes: 1 << 20}}, nil
	}
	return []Group{{Name: "ana@contoso.test", Items: 250, Bytes: 1 << 20}}, nil
}
func (b *browsingBackend) Find(_ context.Context, storage string, q Query, fn func(ItemRow) bool) error {
	b.asked = append(b.asked, q)
	for i := 1; i <= 250; i++ {
		if !fn(ItemRow{ID: fmt.Sprintf("v%03d", i), Mailbox: "ana@contoso.test", Folder: "Inbox", Subject: fmt.Sprintf("Item %d", i), When: time.Unix(0, 0)}) {
			return nil
		}
	}
	return nil
}
func (b *browsingBackend) Item(_ context.Context, storage, id string) (ItemPage, error) {
	if id != "v001" {
		return ItemPage{}, ErrNoItem
	}
	return ItemPage{Row: ItemRow{ID: id, Subject: "Item 1"}, Headers: []Field{{"From", "Ana <ana@contoso.test>"}},
		HTML: `<p title="a&quot;b">Hi <b>there</b></p>`, Text: "Hi there"}, nil
}
func (b *browsingBackend) Download(_ context.Context, storage, id string) (string, string, []byte, error) {
	if id != "v001" {
		return "", "", nil, ErrNoItem
	}
	return `v"001.eml`, "message/rfc822", []byte("Subject: Item 1\r\n\r\nHi"), nil
}

// Browsing: mailboxes, then folders, then a folder's items a hundred a
// page; an item shown with its HTML only inside a sandboxed frame (as an
// escaped srcdoc, never in the page itself); a download as an attachment;
// an unknown id is 404.
func TestBrowseSearchAndOpen(t *testing.T) {
	b := &browsingBackend{fakeBackend: fakeBackend{changed: make(chan struct{})}}
	srv := httptest.NewServer(New(b, "tok-123"))
	defer srv.Close()
	c, _ := login(t, srv.URL)
	get := func(path string, wantStatus int) (string, http.Header) {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("GET %s: %d, want %d: %s", path, resp.StatusCode, wantStatus, body)
		}
		return string(body), resp.Header
	}
	page, _ := get("/browse", 200)
	mustHave(t, page, `href="/browse/nas"`, `href="/browse/usb"`, `id="nav-browse"`)
	page, _ = get("/browse/nas", 200)
	mustHave(t, page, `href="?mailbox=ana%40contoso.test"`, ">250<")
	page, _ = get("/browse/nas?mailbox=ana@contoso.test", 200)
	mustHave(t, page, `href="?folder=Inbox&amp;mailbox=ana%40contoso.test"`)
	page, _ = get("/browse/nas?mailbox=ana@contoso.test&folder=Inbox", 200)
	mustHave(t, page, "Items 1–100, page 1", `href="/browse/nas/items/v001"`, `href="/browse/nas/items/v100"`, `id="results-next"`)
	if strings.Contains(page, "v101") || strings.Contains(page, `id="results-prev"`) {
		t.Errorf("page 1 shows more than its hundred")
	}
	page, _ = get("/browse/nas?mailbox=ana@contoso.test&folder=Inbox&page=3", 200)
	mustHave(t, page, "Items 201–250, page 3", "v250", `id="results-prev"`)
	if strings.Contains(page, `id="results-next"`) {
		t.Errorf("the last page links to a next one")
	}
	if last := b.asked[len(b.asked)-1]; last.Mailbox != "ana@contoso.test" || last.Folder != "Inbox" {
		t.Errorf("the search asked %+v", last)
	}
	page, hdr := get("/browse/nas/items/v001", 200)
	mustHave(t, page, `sandbox="allow-popups allow-popups-to-escape-sandbox"`, `srcdoc="&lt;p title=&#34;a&amp;quot;b&#34;&gt;Hi &lt;b&gt;there&lt;/b&gt;&lt;/p&gt;"`,
		"Ana &lt;ana@contoso.test&gt;", `href="/browse/nas/items/v001/download"`)
	if strings.Contains(page, "<b>there</b>") {
		t.Errorf("the message's HTML is in the page itself")
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data:") {
		t.Errorf("CSP %q lets images load from elsewhere", csp)
	}
	body, hdr := get("/browse/nas/items/v001/download", 200)
	if hdr.Get("Content-Disposition") != `attachment; filename="v001.eml"` || hdr.Get("Content-Type") != "message/rfc822" || !strings.HasPrefix(body, "Subject: Item 1") {
		t.Errorf("download: %v %q", hdr, body)
	}
	get("/browse/nas/items/nope", 404)
	get("/browse/nas/items/nope/download", 404)
}

func mustHave(t *testing.T, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %s:\n%s", w, page)
		}
	}
}

// restoringBackend also restores: it records what it was asked.
type restoringBackend struct {
	browsingBackend
	asked []RestoreRequest
}

func (b *restoringBackend) Connections(context.Context) ([]string, error) {
	return []string{"online"}, nil
}
func (b *restoringBackend) StartRestore(_ context.Context, storage string, req RestoreRequest) (string, error) {
	if req.To != "online" {
		return "", fmt.Errorf("no connection named %q", req.To)
	}
	b.asked = append(b.asked, req)
	return "r1", nil
}
func (b *restoringBackend) RestoreStatus(id string) (RestoreStatus, bool) {
	if id != "r1" {
		return RestoreStatus{}, false
	}
	return RestoreStatus{ID: id, What: "ana@contoso.test / Inbox", Running: true, Total: 4, Done: 1}, true
}

// The restore form carries the page's selection; it needs the session's
// CSRF token; a refused restore says why; a running restore's page
// follows it.
func TestRestoreFromTheConsole(t *testing.T) {
	b := &restoringBackend{browsingBackend: browsingBackend{fakeBackend: fakeBackend{changed: make(chan struct{})}}}
	srv := httptest.NewServer(New(b, "tok-123"))
	defer srv.Close()
	c, _ := login(t, srv.URL)
	resp, err := c.Get(srv.URL + "/browse/nas?mailbox=ana@contoso.test&folder=Inbox")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustHave(t, string(page), "Restore this folder and its subfolders", `name="folder" value="Inbox"`, `name="mailbox" value="ana@contoso.test"`, `<option>online</option>`)
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(string(page))
	if csrf == nil {
		t.Fatal("no CSRF token in the form")
	}
	post := func(form url.Values) *http.Response {
		t.Helper()
		resp, err := c.PostForm(srv.URL+"/browse/nas/restore", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(url.Values{"mailbox": {"ana@contoso.test"}, "to": {"online"}}); resp.StatusCode != http.StatusForbidden || len(b.asked) != 0 {
		t.Fatalf("a restore without the CSRF token: %d, %d started", resp.StatusCode, len(b.asked))
	}
	if resp := post(url.Values{"csrf": {csrf[1]}, "mailbox": {"ana@contoso.test"}, "to": {"elsewhere"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a restore to an unknown connection: %d", resp.StatusCode)
	}
	if resp := post(url.Values{"csrf": {csrf[1]}, "to": {"online"}}); resp.StatusCode != http.StatusBadRequest || len(b.asked) != 0 {
		t.Fatalf("a restore of nothing chosen: %d", resp.StatusCode)
	}
	resp = post(url.Values{"csrf": {csrf[1]}, "mailbox": {"ana@contoso.test"}, "folder": {"Inbox"}, "to": {"online"}, "target_mailbox": {"ben@contoso.test"}, "collisions": {"copy"}})
	if resp.Request.URL.Path != "/restores/r1" || len(b.asked) != 1 {
		t.Fatalf("the restore did not start: %v %d", resp.Request.URL, len(b.asked))
	}
	if got := b.asked[0]; got.Query.Folder != "Inbox" || got.TargetMailbox != "ben@contoso.test" || got.Collisions != "copy" {
		t.Fatalf("asked %+v", got)
	}
	resp, _ = c.Get(srv.URL + "/restores/r1")
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	mustHave(t, string(page), `http-equiv="refresh"`, "1 of 4 items", "running")
	if resp, _ := c.Get(srv.URL + "/restores/r9"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown restore: %d", resp.StatusCode)
	}
}

// noStorages browses nothing.
type noStorages struct{ browsingBackend }

func (noStorages) Storages(context.Context) ([]string, error) { return nil, nil }

// Without a storage added by name, Browse says so and where to add one.
func TestBrowseWithoutStorages(t *testing.T) {
	srv := httptest.NewServer(New(&noStorages{browsingBackend{fakeBackend: fakeBackend{changed: make(chan struct{})}}}, "tok-123"))
	defer srv.Close()
	c, _ := login(t, srv.URL)
	resp, err := c.Get(srv.URL + "/browse")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustHave(t, string(page), `id="no-storages"`, `href="/setup/storages/new"`)
}
