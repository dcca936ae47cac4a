package itemformat

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

// summarizeByNetMail is Summarize as net/mail reads a message whole (its
// header, and the date through mail.ParseDate): what Summarize's pooled
// reading and quick date must agree with.
func summarizeByNetMail(raw []byte) Summary {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Summary{}
	}
	return summaryOf(msg.Header, mail.ParseDate)
}

var summaryCases = []struct{ name, raw string }{
	{"usual", "From: Ann <ann@x.test>\r\nSubject: Hello\r\nDate: Mon, 02 Jun 2025 10:00:00 +0200\r\n\r\nbody\r\n"},
	{"bare LF", "From: ann@x.test\nSubject: Hi\nDate: Tue, 3 Jun 2025 10:00:00 -0700\n\nbody\n"},
	{"folded subject", "Subject: a long\r\n subject line\r\nFrom: b@x.test\r\n\r\n"},
	{"encoded words", "From: =?utf-8?q?Gr=C3=BC=C3=9Fe?= <g@x.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\r\n"},
	{"date with comment", "Date: Wed, 4 Jun 2025 10:00:00 -0700 (PDT)\r\nSubject: c\r\n\r\n"},
	{"date without weekday or seconds", "Date: 5 Jun 2025 10:00 GMT\r\n\r\n"},
	{"bad date", "Date: yesterday\r\nSubject: d\r\n\r\n"},
	{"header only, no blank line", "Subject: only\r\nFrom: o@x.test\r\n"},
	{"blank line inside the body", "Subject: e\n\nbody\r\n\r\nmore: not a header\r\n"},
	{"CRLF block after an LF one", "Subject: f\n\nFrom: not@header\r\n\r\n"},
	{"not a message", "\x00\x01garbage"},
	{"empty", ""},
}

func TestSummarizeReadsHeadersAsNetMail(t *testing.T) {
	for _, c := range summaryCases {
		t.Run(c.name, func(t *testing.T) {
			got, want := Summarize(domain.FormatMIME, []byte(c.raw)), summarizeByNetMail([]byte(c.raw))
			if got != want {
				t.Errorf("Summarize %+v, net/mail %+v", got, want)
			}
		})
	}
}

func FuzzSummarizeAgreesWithNetMail(f *testing.F) {
	for _, c := range summaryCases {
		f.Add([]byte(c.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := Summarize(domain.FormatMIME, raw), summarizeByNetMail(raw); got != want {
			t.Fatalf("Summarize %#v, net/mail %#v", got, want)
		}
	})
}

func BenchmarkSummarize(b *testing.B) {
	raw := []byte("Received: from a.x.test by b.x.test; Mon, 02 Jun 2025 10:00:00 +0200\r\nFrom: Ann <ann@x.test>\r\nTo: Bob <bob@x.test>\r\n" +
		"Subject: Quarterly numbers\r\nDate: Mon, 02 Jun 2025 10:00:00 +0200\r\nMessage-ID: <1@x.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + string(bytes.Repeat([]byte("body text "), 300)))
	stream, err := ExportStream(raw, true)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		fn      func([]byte) Summary
		content []byte
	}{
		{"pooled reader, usual date first", func(r []byte) Summary { return Summarize(domain.FormatMIME, r) }, raw},
		{"net/mail", summarizeByNetMail, raw},
		{"export stream", func(r []byte) Summary { return Summarize(domain.FormatGraphExport, r) }, stream},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn(c.content)
			}
		})
	}
}

// A message's To and Cc recipients are summarised for the search by
// recipient, alike from MIME and from the export stream made of it, and
// cut at maxRecipients bytes.
func TestSummaryRecipients(t *testing.T) {
	raw := []byte("From: Ann <ann@x.test>\r\nTo: Bob <bob@x.test>, carol@x.test\r\nCc: =?utf-8?q?J=C3=BCrgen?= <j@x.test>\r\nBcc: hidden@x.test\r\n" +
		"Subject: hi\r\nDate: Mon, 02 Jun 2025 10:00:00 +0200\r\n\r\nbody\r\n")
	stream, err := ExportStream(raw, true)
	if err != nil {
		t.Fatal(err)
	}
	for format, content := range map[string][]byte{domain.FormatMIME: raw, domain.FormatGraphExport: stream} {
		got := Summarize(format, content).To
		for _, want := range []string{"Bob", "bob@x.test", "carol@x.test", "Jürgen", "j@x.test"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: %q lacks %q", format, got, want)
			}
		}
		if strings.Contains(got, "hidden") {
			t.Errorf("%s: %q has the Bcc recipient", format, got)
		}
	}
	var many strings.Builder
	many.WriteString("To: ")
	for i := range 200 {
		if i > 0 {
			many.WriteString(", ")
		}
		fmt.Fprintf(&many, "user%03d@x.test", i)
	}
	many.WriteString("\r\nSubject: all hands\r\n\r\n")
	got := Summarize(domain.FormatMIME, []byte(many.String())).To
	if len(got) > maxRecipients || !strings.HasPrefix(got, "user000@x.test, user001@x.test") || strings.HasSuffix(got, ", ") {
		t.Errorf("200 recipients: %d bytes: %q", len(got), got)
	}
}
