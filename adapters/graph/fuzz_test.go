package graph

import (
	"net/http"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// Retry-After is a server's number: whatever it says, the wait is between
// nothing and domain.MaxRetryAfter, and a readable huge value means the
// longest wait, never none.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "2.128", "-1", "NaN", "+Inf", "1e300", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", " 30 ", "0x10"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if d < 0 || d > domain.MaxRetryAfter || !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", v, d, ok)
		}
	})
}

// Any reply (status, headers, body) classifies without panicking into a
// failure whose wait is bounded and whose message is bounded.
func FuzzClassify(f *testing.F) {
	f.Add(429, "3", []byte(`{"error":{"code":"TooManyRequests","message":"slow down"}}`))
	f.Add(503, "", []byte(`<html>busy</html>`))
	f.Add(400, "", []byte(`{"error":{"code":"ErrorItemCorrupt","innerError":{"code":"x"}}}`))
	f.Add(200, "", []byte(`{"value":[]}`))
	f.Add(410, "1e9", []byte(`{"error":{"code":"SyncStateNotFound"}}`))
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("Content-Type", "application/json")
		fl := Classify(status, h, body, now)
		if fl == nil {
			return
		}
		if fl.RetryAfter < 0 || fl.RetryAfter > domain.MaxRetryAfter || len(fl.Message) > domain.MaxMessage+64 {
			t.Fatalf("failure %+v", fl)
		}
		var v map[string]any
		_ = DecodeJSON(h, body, &v)
	})
}
