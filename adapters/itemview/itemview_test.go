package itemview

import (
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

func TestSanitize(t *testing.T) {
	cases := []struct {
		name, in     string
		keep, reject []string
		remote       int
	}{
		{"script", `<p>hi</p><script>alert(1)</script>`, []string{"<p>hi</p>"}, []string{"script", "alert"}, 0},
		{"remote script", `<script src="https://evil.test/x.js"></script>`, nil, []string{"script", "evil"}, 1},
		{"event handler", `<p onclick="steal()">x</p>`, []string{"<p>x</p>"}, []string{"onclick", "steal"}, 0},
		{"remote image (a tracking pixel)", `<img src="https://track.test/p.gif" alt="pixel">`, []string{`alt="pixel"`}, []string{"track.test"}, 1},
		{"protocol-relative image", `<img src="//track.test/p.gif">`, nil, []string{"track.test"}, 1},
		{"inline image", `<img src="data:image/png;base64,iVBORw0KGgo=">`, []string{`src="data:image/png;base64,iVBORw0KGgo="`}, nil, 0},
		{"svg data image", `<img src="data:image/svg+xml;base64,PHN2Zz4=">`, nil, []string{"svg"}, 0},
		{"style attribute loads", `<div style="background:url(https://track.test/b.png)">x</div>`, []string{"x"}, []string{"track.test", "style"}, 1},
		{"style sheet", `<link rel="stylesheet" href="https://cdn.test/s.css"><style>p{}</style><p>x</p>`, []string{"<p>x</p>"}, []string{"cdn.test", "<style", "<link"}, 1},
		{"link", `<a href="https://example.test/page">read</a>`, []string{`href="https://example.test/page"`, `noreferrer`, `target="_blank"`}, nil, 0},
		{"javascript link", `<a href="javascript:steal()">x</a>`, []string{"x"}, []string{"javascript", "steal"}, 0},
		{"frame", `<iframe src="https://evil.test/"></iframe><p>x</p>`, []string{"<p>x</p>"}, []string{"iframe", "evil"}, 1},
		{"form", `<form action="https://evil.test/"><input name="pw"></form>`, nil, []string{"form", "input", "evil"}, 0},
		{"table layout", `<table border="0"><tr><td colspan="2" align="left">x</td></tr></table>`, []string{`colspan="2"`, `align="left"`}, nil, 0},
		{"background attribute", `<td background="https://track.test/bg.png">x</td>`, nil, []string{"track.test"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, remote := Sanitize(c.in)
			for _, k := range c.keep {
				if !strings.Contains(out, k) {
					t.Errorf("lost %q: %s", k, out)
				}
			}
			for _, r := range c.reject {
				if strings.Contains(strings.ToLower(out), strings.ToLower(r)) {
					t.Errorf("kept %q: %s", r, out)
				}
			}
			if remote != c.remote {
				t.Errorf("counted %d remote loads, want %d", remote, c.remote)
			}
		})
	}
}

const sampleMessage = "From: Ana <ana@contoso.test>\r\nTo: Ben <ben@contoso.test>\r\nSubject: =?UTF-8?Q?Caf=C3=A9_plans?=\r\n" +
	"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B1\r\n\r\n" +
	"--B1\r\nContent-Type: multipart/alternative; boundary=B2\r\n\r\n" +
	"--B2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee you at the café.\r\n" +
	"--B2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See you <b>there</b></p><img src=\"http://track.test/o.gif\"><script>x()</script>\r\n" +
	"--B2--\r\n" +
	"--B1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"menu.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
	"--B1--\r\n"

func TestOpenMessage(t *testing.T) {
	v, err := Open(domain.KindMail, domain.FormatMIME, []byte(sampleMessage))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"From": "Ana <ana@contoso.test>", "To": "Ben <ben@contoso.test>", "Subject": "Café plans"}
	got := map[string]string{}
	for _, h := range v.Headers {
		got[h.Name] = h.Value
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("header %s = %q, want %q", k, got[k], w)
		}
	}
	if !strings.Contains(v.Text, "See you at the café.") {
		t.Errorf("text %q", v.Text)
	}
	if !strings.Contains(v.HTML, "<b>there</b>") || strings.Contains(v.HTML, "track.test") || strings.Contains(v.HTML, "script") || v.RemoteBlocked != 1 {
		t.Errorf("html %q (remote %d)", v.HTML, v.RemoteBlocked)
	}
	if len(v.Attachments) != 1 || v.Attachments[0].Name != "menu.pdf" || v.Attachments[0].Type != "application/pdf" || v.Attachments[0].Size != 9 {
		t.Errorf("attachments %+v", v.Attachments)
	}
}

func TestOpenRefusesWhatIsNotAMessage(t *testing.T) {
	if _, err := Open(domain.KindCalendar, domain.FormatMIME, []byte("not a calendar")); err == nil {
		t.Error("a calendar item without iCalendar data opened")
	}
}
