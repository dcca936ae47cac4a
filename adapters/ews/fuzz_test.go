package ews

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// BackOffMilliseconds is the server's number: any value gives a wait
// between nothing and domain.MaxRetryAfter, and a huge one the longest
// wait, never none.
func FuzzServerBusy(f *testing.F) {
	for _, v := range []string{"", "0", "299973", "-5", "9223372036854775807", "99999999999999999999", " 42 ", "1e3"} {
		f.Add("ErrorServerBusy", v)
	}
	f.Add("ErrorInternalServerError", "1000")
	f.Fuzz(func(t *testing.T, code, backoff string) {
		var mx messageXML
		mx.Values = append(mx.Values, struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		}{"BackOffMilliseconds", backoff})
		d, busy := serverBusy(code, mx)
		if d < 0 || d > domain.MaxRetryAfter || !busy && d != 0 {
			t.Fatalf("serverBusy(%q, %q) = %v, %v", code, backoff, d, busy)
		}
		if ms, err := strconv.ParseInt(strings.TrimSpace(backoff), 10, 64); busy && err == nil && ms >= 0 {
			want := domain.MaxRetryAfter
			if ms < want.Milliseconds() {
				want = time.Duration(ms) * time.Millisecond
			}
			if d != want {
				t.Fatalf("BackOffMilliseconds %q: wait %v, want %v", backoff, d, want)
			}
		}
		_ = classifyCode(code, "text", mx)
	})
}
