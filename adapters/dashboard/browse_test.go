package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
