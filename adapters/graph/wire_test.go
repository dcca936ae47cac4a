package graph

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{"2.128", 2128 * time.Millisecond, true},
		{" 30 ", 30 * time.Second, true},
		{"0", 0, true},
		{"Tue, 01 Dec 2026 12:00:05 GMT", 5 * time.Second, true},
		{"Tue, 01 Dec 2026 11:00:00 GMT", 0, true},
		{"99999999999", domain.MaxRetryAfter, true},
		{"Fri, 01 Dec 2126 12:00:00 GMT", domain.MaxRetryAfter, true},
		{"-5", 0, false},
		{"NaN", 0, false},
		{"+Inf", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v,%v want %v,%v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestClassify(t *testing.T) {
	jsonCT := "application/json; charset=utf-8"
	cases := []struct {
		name   string
		status int
		h      http.Header
		body   string
		class  domain.FailureClass
		code   string
		ra     time.Duration
	}{
		{"ok", 200, hdr(), "{}", "", "", 0},
		{"429 app throttled", 429, hdr("Content-Type", jsonCT, "Retry-After", "2.128"),
			`{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}`, domain.ClassThrottled, "ApplicationThrottled", 2128 * time.Millisecond},
		{"429 without hint", 429, hdr("Content-Type", jsonCT), `{"error":{"code":"TooManyRequests"}}`, domain.ClassThrottled, "TooManyRequests", 0},
		{"503 with Retry-After", 503, hdr("Retry-After", "10"), "", domain.ClassThrottled, "HTTP503", 10 * time.Second},
		{"503 empty body (Graph timeout)", 503, hdr(), "", domain.ClassTransient, "HTTP503", 0},
		{"504 html page", 504, hdr("Content-Type", "text/html"), "<html><body>Gateway Timeout</body></html>", domain.ClassTransient, "HTTP504", 0},
		{"500 corrupt item", 500, hdr("Content-Type", jsonCT), `{"error":{"code":"ErrorCorruptData","message":"Data is corrupt., Invalid global object ID"}}`, domain.ClassDirty, "ErrorCorruptData", 0},
		{"500 other", 500, hdr("Content-Type", jsonCT), `{"error":{"code":"generalException"}}`, domain.ClassTransient, "generalException", 0},
		{"500 malformed json", 500, hdr("Content-Type", jsonCT), `{"error":`, domain.ClassTransient, "HTTP500", 0},
		{"403 missing permission", 403, hdr("Content-Type", jsonCT), `{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}`, domain.ClassFatal, "ErrorAccessDenied", 0},
		{"410 resync", 410, hdr("Content-Type", jsonCT), `{"error":{"code":"SyncStateNotFound"}}`, domain.ClassResync, "SyncStateNotFound", 0},
		{"404 gone", 404, hdr("Content-Type", jsonCT), `{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store."}}`, domain.ClassGone, "ErrorItemNotFound", 0},
		{"400", 400, hdr("Content-Type", jsonCT), `{"error":{"code":"BadRequest"}}`, domain.ClassFatal, "BadRequest", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := Classify(c.status, c.h, []byte(c.body), now)
			if c.class == "" {
				if f != nil {
					t.Fatalf("success classified as %v", f)
				}
				return
			}
			if f == nil || f.Class != c.class || f.Code != c.code || f.RetryAfter != c.ra || f.Message == "" {
				t.Fatalf("got %+v, want class %s code %s retry %v", f, c.class, c.code, c.ra)
			}
		})
	}
	if f := Classify(504, hdr("Content-Type", "text/html"), []byte("<html>"), now); !strings.Contains(f.Message, "text/html body") {
		t.Errorf("HTML page message: %q", f.Message)
	}
	if !IsResync(Classify(410, hdr("Content-Type", jsonCT), []byte(`{"error":{"code":"ResyncRequired"}}`), now)) {
		t.Error("ResyncRequired is a resync")
	}
}

func TestCheckLinkRefusesForeignHosts(t *testing.T) {
	base, _ := url.Parse("https://127.0.0.1:8443/v1.0/users/a/mailFolders/x/messages/delta")
	for _, ok := range []string{
		"https://127.0.0.1:8443/v1.0/users/a/mailFolders/x/messages/delta?$skiptoken=abc",
		"/v1.0/users/a/mailFolders/x/messages/delta?$deltatoken=z",
	} {
		if _, err := CheckLink(base, ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"https://evil.example/v1.0/users?$skiptoken=abc",
		"http://127.0.0.1:8443/v1.0/users",
		"https://127.0.0.1:9999/v1.0/users",
		"https://127.0.0.1:8443@evil.example/v1.0",
		"//evil.example/v1.0/users",
		"https://user:pw@127.0.0.1:8443/v1.0",
	} {
		if _, err := CheckLink(base, bad); !errors.Is(err, ErrForeignHost) {
			t.Errorf("%s accepted (%v)", bad, err)
		}
	}
}

func TestReadCappedAndDecode(t *testing.T) {
	if _, err := ReadCapped(strings.NewReader(strings.Repeat("x", 11)), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the cap: %v", err)
	}
	if b, err := ReadCapped(strings.NewReader("0123456789"), 10); err != nil || len(b) != 10 {
		t.Fatalf("at the cap: %v", err)
	}
	var v map[string]any
	json := hdr("Content-Type", "application/json")
	for _, c := range []struct {
		h    http.Header
		body string
		code string
		in   string
	}{
		{json, `{"value":[{"id":"1"}`, "MalformedReply", "truncated"},
		{json, `{"value":[}`, "MalformedReply", "malformed"},
		{hdr("Content-Type", "text/html"), `<html>login</html>`, "UnexpectedContentType", "text/html"},
	} {
		f := DecodeJSON(c.h, []byte(c.body), &v)
		if f == nil || f.Class != domain.ClassTransient || f.Code != c.code || !strings.Contains(f.Message, c.in) {
			t.Errorf("DecodeJSON(%q) = %+v", c.body, f)
		}
	}
	if f := DecodeJSON(json, []byte(`{"value":[]}`), &v); f != nil {
		t.Errorf("valid JSON: %v", f)
	}
}
