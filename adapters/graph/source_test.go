package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// recorded is a Graph reply played back by a test server.
type recorded struct {
	status int
	header map[string]string
	body   string
	// truncate announces the whole body and sends half of it.
	truncate bool
}

func serve(t *testing.T, replies map[string]recorded) (*httptest.Server, *Source) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, ok := replies[r.URL.Path]
		if !ok {
			http.Error(w, "no recorded reply for "+r.URL.Path, http.StatusTeapot)
			return
		}
		body := strings.ReplaceAll(rep.body, "BASE", "https://"+r.Host)
		for k, v := range rep.header {
			w.Header().Set(k, strings.ReplaceAll(v, "BASE", "https://"+r.Host))
		}
		if rep.truncate {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(rep.status)
			w.Write([]byte(body))
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
			return
		}
		w.WriteHeader(rep.status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Timeout = 5 * time.Second
	src, err := NewSource(Config{GraphURL: srv.URL + "/v1.0", HTTP: hc, MaxReply: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return srv, src
}

const jsonCT = "application/json;odata.metadata=minimal;charset=utf-8"

func jsonReply(body string) recorded {
	return recorded{status: 200, header: map[string]string{"Content-Type": jsonCT}, body: body}
}

func failureOf(t *testing.T, err error) *domain.Failure {
	t.Helper()
	var fl *domain.Failure
	if !errors.As(err, &fl) {
		t.Fatalf("error %v is not a classified failure", err)
	}
	return fl
}

// Every bad reply of the Safety list ends in a classified failure with a
// clear message, never a panic, and the token never leaves for another host.
func TestHostileRepliesAreClassified(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"value":[]}`))
	}))
	defer foreign.Close()
	big := `{"value":[{"id":"` + strings.Repeat("x", 70<<10) + `"}]}`
	cases := []struct {
		name  string
		reply recorded
		class domain.FailureClass
		code  string
		msg   string
	}{
		{"foreign nextLink", jsonReply(`{"value":[{"id":"u1","mail":"a@x"}],"@odata.nextLink":"` + foreign.URL + `/v1.0/users?$skiptoken=1"}`), domain.ClassFatal, "ForeignLink", "outside the configured Graph host"},
		{"nextLink with userinfo", jsonReply(`{"value":[],"@odata.nextLink":"https://evil@BASE/v1.0/users"}`), domain.ClassFatal, "ForeignLink", ""},
		{"redirect to a foreign host", recorded{status: 302, header: map[string]string{"Location": foreign.URL + "/v1.0/users"}}, domain.ClassFatal, "ForeignLink", "redirect"},
		{"HTML error page", recorded{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: "<html><body><h1>502 Bad Gateway</h1></body></html>"}, domain.ClassTransient, "HTTP502", "text/html"},
		{"503 with an empty body", recorded{status: 503}, domain.ClassTransient, "HTTP503", "503"},
		{"malformed JSON", jsonReply(`{"value":[{"id":"u1",]}`), domain.ClassTransient, "MalformedReply", "malformed JSON"},
		{"truncated body", recorded{status: 200, header: map[string]string{"Content-Type": jsonCT}, body: `{"value":[{"id":"u1","ma`, truncate: true}, domain.ClassTransient, "TruncatedReply", "connection broke"},
		{"wrong content type", recorded{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<html>sign in</html>"}, domain.ClassTransient, "UnexpectedContentType", "expected JSON, got text/html"},
		{"reply over the size cap", jsonReply(big), domain.ClassDirty, "ReplyTooLarge", "size limit"},
		{"429 fractional Retry-After", recorded{status: 429, header: map[string]string{"Content-Type": jsonCT, "Retry-After": "2.128"},
			body: `{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}`}, domain.ClassThrottled, "ApplicationThrottled", "MailboxConcurrency"},
		{"504 with Retry-After", recorded{status: 504, header: map[string]string{"Retry-After": "3"}}, domain.ClassThrottled, "HTTP504", ""},
		{"401 after the retry", recorded{status: 401, header: map[string]string{"Content-Type": jsonCT}, body: `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}`}, domain.ClassFatal, "InvalidAuthenticationToken", "expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, src := serve(t, map[string]recorded{"/v1.0/users": c.reply})
			_, err := src.Mailboxes(context.Background())
			fl := failureOf(t, err)
			if fl.Class != c.class || fl.Code != c.code || !strings.Contains(fl.Message, c.msg) {
				t.Fatalf("got %v, want class %s code %s message containing %q", fl, c.class, c.code, c.msg)
			}
			if c.code == "ApplicationThrottled" && fl.RetryAfter != 2128*time.Millisecond {
				t.Fatalf("Retry-After %s, want 2.128s", fl.RetryAfter)
			}
			if len(fl.Message) > domain.MaxMessage+len("…") {
				t.Fatalf("message of %d bytes", len(fl.Message))
			}
		})
	}
	if n := foreignHits.Load(); n != 0 {
		t.Fatalf("the foreign host was contacted %d times", n)
	}
}

// A delta page's links are checked too, and a page with neither link is
// malformed rather than the end of the folder.
func TestDeltaLinksAreChecked(t *testing.T) {
	for _, c := range []struct {
		name, body, code string
	}{
		{"foreign deltaLink", `{"value":[{"id":"m1","changeKey":"c1"}],"@odata.deltaLink":"https://graph.evil.test/v1.0/delta?$deltatoken=x"}`, "ForeignLink"},
		{"foreign nextLink", `{"value":[],"@odata.nextLink":"http://BASE/v1.0/next"}`, "ForeignLink"},
		{"no link", `{"value":[{"id":"m1","changeKey":"c1"}]}`, "MalformedReply"},
		{"entry without id", `{"value":[{"changeKey":"c1"}],"@odata.deltaLink":"BASE/v1.0/d"}`, "MalformedReply"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, src := serve(t, map[string]recorded{"/v1.0/users/a@x/mailFolders/F1/messages/delta": jsonReply(c.body)})
			src.kinds["a@x\x00F1"] = domain.KindMail
			_, err := src.List(context.Background(), "a@x", "F1", "")
			if fl := failureOf(t, err); fl.Code != c.code {
				t.Fatalf("got %v, want %s", fl, c.code)
			}
		})
	}
}

// A delta round: positions continue across pages, removals are reported,
// the deltaLink becomes the sync token, and a resync code restarts.
func TestDeltaPagesAndResync(t *testing.T) {
	_, src := serve(t, map[string]recorded{
		"/v1.0/users/a@x/mailFolders/F1/messages/delta": jsonReply(`{"value":[{"id":"m1","changeKey":"c1"},{"id":"m2","changeKey":"c2"}],"@odata.nextLink":"BASE/v1.0/p2"}`),
		"/v1.0/p2": jsonReply(`{"value":[{"id":"m3","changeKey":"c3"},{"id":"m0","@removed":{"reason":"deleted"}}],"@odata.deltaLink":"BASE/v1.0/d?$deltatoken=abc"}`),
		"/v1.0/d":  {status: 410, header: map[string]string{"Content-Type": jsonCT}, body: `{"error":{"code":"SyncStateNotFound","message":"The sync state generation was not found."}}`},
	})
	src.kinds["a@x\x00F1"] = domain.KindMail
	ctx := context.Background()
	p1, err := src.List(ctx, "a@x", "F1", "")
	if err != nil || len(p1.Items) != 2 || p1.Items[1].Position != 2 || p1.Next == "" || !p1.Tracked {
		t.Fatalf("page 1: %+v %v", p1, err)
	}
	p2, err := src.List(ctx, "a@x", "F1", p1.Next)
	if err != nil || len(p2.Items) != 1 || p2.Items[0].Position != 3 || len(p2.Removed) != 1 || p2.Removed[0] != "m0" || p2.Next != "" || p2.SyncToken == "" {
		t.Fatalf("page 2: %+v %v", p2, err)
	}
	_, err = src.List(ctx, "a@x", "F1", p2.SyncToken)
	if fl := failureOf(t, err); fl.Class != domain.ClassResync {
		t.Fatalf("expired delta: %v", fl)
	}
	_, err = src.List(ctx, "a@x", "F1", "garbage")
	if fl := failureOf(t, err); fl.Class != domain.ClassResync {
		t.Fatalf("unreadable stored token: %v", fl)
	}
	// A link stored when Graph answered on another host (the URL of the
	// connection changed): stale, so the listing starts again, and the
	// old host is never asked.
	stale := strings.Replace(p2.SyncToken, strings.TrimPrefix(src.c.base.Scheme+"://"+src.c.base.Host, ""), "https://graph.old-host.test", 1)
	_, err = src.List(ctx, "a@x", "F1", stale)
	if fl := failureOf(t, err); fl.Class != domain.ClassResync || fl.Code != "StaleDeltaLink" || !strings.Contains(fl.Message, "graph.old-host.test") {
		t.Fatalf("stale link: %v", fl)
	}
}

// $batch: every sub-response has its own status; failures are per item.
func TestBatchFetchPerItemOutcomes(t *testing.T) {
	_, src := serve(t, map[string]recorded{"/v1.0/$batch": jsonReply(`{"responses":[
		{"id":"2","status":429,"headers":{"Retry-After":"1.5","Content-Type":"application/json"},"body":{"error":{"code":"ApplicationThrottled","message":"over"}}},
		{"id":"1","status":200,"headers":{"Content-Type":"text/plain"},"body":"RnJvbTogYUB4DQoNCmhp"},
		{"id":"4","status":404,"headers":{"Content-Type":"application/json"},"body":{"error":{"code":"ErrorItemNotFound","message":"gone"}}},
		{"id":"3","status":500,"headers":{"Content-Type":"application/json"},"body":{"error":{"code":"ErrorCorruptData","message":"Data is corrupt."}}}]}`)})
	src.kinds["a@x\x00F1"] = domain.KindMail
	src.cfg.Content = map[string]string{domain.KindMail: ModeBatch}
	var got []domain.Item
	items := []domain.ItemRef{{Position: 1, ID: "m1"}, {Position: 2, ID: "m2"}, {Position: 3, ID: "m3"}, {Position: 4, ID: "m4"}, {Position: 5, ID: "m5"}}
	err := src.Fetch(context.Background(), "a@x", "F1", items, func(it domain.Item) error { got = append(got, it); return nil })
	if err != nil || len(got) != 5 {
		t.Fatalf("fetch: %v, %d items", err, len(got))
	}
	want := []struct {
		class   domain.FailureClass
		content string
	}{{"", "From: a@x\r\n\r\nhi"}, {domain.ClassThrottled, ""}, {domain.ClassDirty, ""}, {domain.ClassGone, ""}, {domain.ClassTransient, ""}}
	for i, w := range want {
		class := domain.FailureClass("")
		if got[i].Failure != nil {
			class = got[i].Failure.Class
		}
		if class != w.class || string(got[i].Content) != w.content {
			t.Fatalf("item %d: %+v %v, want %s %q", i+1, got[i].Failure, string(got[i].Content), w.class, w.content)
		}
	}
	if got[1].Failure.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("sub-request Retry-After %s", got[1].Failure.RetryAfter)
	}
}

// exportItems: per-item errors fail their item; without the permission the
// source falls back to $batch for the rest of the run.
func TestExportItemsAndFallback(t *testing.T) {
	_, src := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange":                  jsonReply(`{"primaryMailboxId":"MBX:1@2"}`),
		"/v1.0/admin/exchange/mailboxes/MBX:1@2/exportItems": jsonReply(`{"value":[{"itemId":"m1","changeKey":"c9","data":"TVZGVAE=","error":null},{"itemId":"m2","error":{"code":"ErrorCorruptData","message":"bad"}}]}`),
	})
	src.kinds["a@x\x00F1"] = domain.KindMail
	var got []domain.Item
	err := src.Fetch(context.Background(), "a@x", "F1", []domain.ItemRef{{Position: 1, ID: "m1"}, {Position: 2, ID: "m2"}, {Position: 3, ID: "m3"}},
		func(it domain.Item) error { got = append(got, it); return nil })
	if err != nil || len(got) != 3 || string(got[0].Content) != "MVFT\x01" || got[0].Ref.ChangeKey != "c9" ||
		got[1].Failure.Class != domain.ClassDirty || got[2].Failure.Code != "MissingResponse" {
		t.Fatalf("export: %v %+v", err, got)
	}

	_, denied := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange":                  jsonReply(`{"primaryMailboxId":"MBX:1@2"}`),
		"/v1.0/admin/exchange/mailboxes/MBX:1@2/exportItems": {status: 403, header: map[string]string{"Content-Type": jsonCT}, body: `{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}`},
		"/v1.0/$batch": jsonReply(`{"responses":[{"id":"1","status":200,"headers":{"Content-Type":"text/plain"},"body":"aGk="}]}`),
	})
	denied.kinds["a@x\x00F1"] = domain.KindMail
	if c := denied.RequestCost(domain.RequestFetch, domain.KindMail, 20); c != domain.UnitCost {
		t.Fatalf("export costs %+v", c)
	}
	got = nil
	err = denied.Fetch(context.Background(), "a@x", "F1", []domain.ItemRef{{Position: 1, ID: "m1"}}, func(it domain.Item) error { got = append(got, it); return nil })
	if err != nil || len(got) != 1 || string(got[0].Content) != "hi" {
		t.Fatalf("fallback: %v %+v", err, got)
	}
	if c := denied.RequestCost(domain.RequestFetch, domain.KindMail, 20); c.Budget != 20 || c.Concurrency != 4 {
		t.Fatalf("after the fallback a batch of 20 costs %+v, want 20 budget and 4 concurrent", c)
	}

	// An archive has no route but the mailbox API: denied, it says so
	// rather than asking the user's folders through $batch.
	_, archive := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange":                  jsonReply(`{"primaryMailboxId":"MBX:1@2","archiveMailboxId":"MBX:9@2"}`),
		"/beta/admin/exchange/mailboxes/MBX:9@2/exportItems": {status: 403, header: map[string]string{"Content-Type": jsonCT}, body: `{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}`},
	})
	archive.kinds["a@x (archive)\x00F1"] = domain.KindMail
	got = nil
	err = archive.Fetch(context.Background(), "a@x (archive)", "F1", []domain.ItemRef{{Position: 1, ID: "m1"}}, func(it domain.Item) error { got = append(got, it); return nil })
	var fl *domain.Failure
	if !errors.As(err, &fl) || fl.Code != "ErrorAccessDenied" || len(got) != 0 || archive.exportDenied.Load() {
		t.Fatalf("a denied archive export: %v %+v", err, got)
	}
}

func TestParseContentModesAreValidated(t *testing.T) {
	if _, err := NewSource(Config{Content: map[string]string{"mail": "fast"}}); err == nil {
		t.Fatal("an unknown content mode was accepted")
	}
	if _, err := NewSource(Config{GraphURL: "ftp://graph"}); err == nil {
		t.Fatal("a non-http URL was accepted")
	}
	b, _ := json.Marshal(pageToken(501, "https://g/v1.0/x?$skiptoken=a|b"))
	if pos, link, err := parsePageToken(pageToken(501, "https://g/v1.0/x?$skiptoken=a|b")); err != nil || pos != 501 || link != "https://g/v1.0/x?$skiptoken=a|b" {
		t.Fatalf("page token round trip: %s %d %s %v", b, pos, link, err)
	}
}

func TestBetaURLIsDerivedFromTheVersionSegment(t *testing.T) {
	for in, want := range map[string]string{
		"https://graph.microsoft.com/v1.0":        "https://graph.microsoft.com/beta",
		"https://graph.microsoft.us/v1.0/":        "https://graph.microsoft.us/beta",
		"https://127.0.0.1:8443/graph/v1.0":       "https://127.0.0.1:8443/graph/beta",
		"https://microsoftgraph.chinacloudapi.cn": "https://microsoftgraph.chinacloudapi.cn/beta",
	} {
		if got := BetaURL(in); got != want {
			t.Errorf("BetaURL(%q) = %q, want %q", in, got, want)
		}
	}
}
