// Package itemview makes a stored item readable by a person: its headers,
// its body as text, its HTML body sanitised (no scripts, no styles that
// load anything, no remote images: nothing in it reaches the network when
// shown), and its attachments listed by name, type and size. It reads what
// export reads (itemformat), so an item shows as it exports.
package itemview

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/microcosm-cc/bluemonday"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
)

// View is what the item page shows.
type View struct {
	Headers []Header
	// Text is the plain-text body (or, for events and contacts, their
	// iCalendar or vCard text).
	Text string
	// HTML is the HTML body after sanitising: safe to put in a page.
	HTML string
	// RemoteBlocked counts the remote images and other loads removed.
	RemoteBlocked int
	Attachments   []Attachment
}

// Header is one header line.
type Header struct{ Name, Value string }

// Attachment is one attachment as listed.
type Attachment struct {
	Name, Type string
	Size       int64
}

// maxBody bounds what a page shows of one body: a view is for reading,
// the download has it all.
const maxBody = 1 << 20

// Open reads an item of a kind (domain.KindMail, ...) stored in a format.
func Open(kind, format string, content []byte) (View, error) {
	switch kind {
	case domain.KindCalendar, domain.KindTasks:
		return openEvent(format, content)
	case domain.KindContacts:
		return openContact(format, content)
	}
	raw, err := itemformat.MIME(format, content)
	if err != nil {
		return View{}, err
	}
	return openMessage(raw)
}

func openMessage(raw []byte) (View, error) {
	var v View
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if r == nil {
		return v, fmt.Errorf("read the message: %w", err)
	}
	defer r.Close()
	for _, name := range []string{"From", "To", "Cc", "Date", "Subject"} {
		val, err := r.Header.Text(name)
		if err != nil {
			val = r.Header.Get(name)
		}
		if val != "" {
			v.Headers = append(v.Headers, Header{Name: name, Value: val})
		}
	}
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if message.IsUnknownCharset(err) || message.IsUnknownEncoding(err) {
				continue
			}
			return v, fmt.Errorf("read the message's parts: %w", err)
		}
		switch h := p.Header.(type) {
		case *gomail.InlineHeader:
			ct, _, _ := h.ContentType()
			body, _ := io.ReadAll(io.LimitReader(p.Body, maxBody))
			n, _ := io.Copy(io.Discard, p.Body)
			switch {
			case ct == "text/html" && v.HTML == "":
				v.HTML, v.RemoteBlocked = Sanitize(string(body))
			case (ct == "text/plain" || ct == "") && v.Text == "":
				v.Text = validText(body)
			default:
				v.Attachments = append(v.Attachments, Attachment{Name: "(inline part)", Type: ct, Size: int64(len(body)) + n})
			}
		case *gomail.AttachmentHeader:
			name, _ := h.Filename()
			ct, _, _ := h.ContentType()
			n, _ := io.Copy(io.Discard, p.Body)
			v.Attachments = append(v.Attachments, Attachment{Name: name, Type: ct, Size: n})
		}
	}
	return v, nil
}

func openEvent(format string, content []byte) (View, error) {
	comps, err := itemformat.CalendarComponents(format, content)
	if err != nil {
		return View{}, err
	}
	var v View
	for _, c := range comps {
		if c.Name == ical.CompTimezone {
			continue
		}
		for _, p := range []struct{ name, prop string }{{"Subject", ical.PropSummary}, {"Start", ical.PropDateTimeStart},
			{"End", ical.PropDateTimeEnd}, {"Due", ical.PropDue}, {"Location", ical.PropLocation}, {"Organizer", ical.PropOrganizer}} {
			if pr := c.Props.Get(p.prop); pr != nil && pr.Value != "" {
				v.Headers = append(v.Headers, Header{Name: p.name, Value: strings.TrimPrefix(strings.TrimPrefix(pr.Value, "mailto:"), "MAILTO:")})
			}
		}
		if d := c.Props.Get(ical.PropDescription); d != nil {
			v.Text = d.Value
		}
		break
	}
	return v, nil
}

func openContact(format string, content []byte) (View, error) {
	card, err := itemformat.Card(format, content)
	if err != nil {
		return View{}, err
	}
	var v View
	for _, f := range []struct{ name, field string }{{"Name", "FN"}, {"Email", "EMAIL"}, {"Phone", "TEL"}, {"Organization", "ORG"}, {"Title", "TITLE"}} {
		for _, val := range card.Values(f.field) {
			if val = strings.TrimSpace(val); val != "" {
				v.Headers = append(v.Headers, Header{Name: f.name, Value: strings.ReplaceAll(val, ";", " ")})
			}
		}
	}
	if b, err := itemformat.EncodeCard(card); err == nil {
		v.Text = string(b)
	}
	return v, nil
}

// validText is a body as text, with bytes that are not UTF-8 replaced.
func validText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// policy keeps the HTML of mail that reads as written (text, formatting,
// tables, lists, links) and nothing that runs or loads: no scripts, no
// forms, no frames, no style sheets or style attributes (url() in them
// loads), images only when their data is inside the message.
var policy = func() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowStandardAttributes()
	p.AllowElements("a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "dd", "del", "div", "dl", "dt", "em",
		"font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike",
		"strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul")
	p.AllowAttrs("align", "valign", "colspan", "rowspan", "width", "height", "bgcolor", "border", "cellpadding", "cellspacing").
		OnElements("table", "td", "th", "tr", "tbody", "thead", "tfoot", "div", "p", "img")
	p.AllowAttrs("color", "face", "size").OnElements("font")
	p.AllowAttrs("href").OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto", "data")
	p.RequireParseableURLs(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowAttrs("alt", "title").OnElements("img")
	p.AllowAttrs("src").Matching(inlineImage).OnElements("img")
	return p
}()

// inlineImage is an image whose bytes are in the message.
var inlineImage = regexp.MustCompile(`^data:image/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=\s]+$`)

// remoteRef finds what a browser would load from elsewhere in raw HTML:
// counted so the page can say what it blocked.
var remoteRef = regexp.MustCompile(`(?i)<(img|image|link|script|iframe|frame|object|embed|video|audio|source|input)\b[^>]*\b(src|href|data|background|poster)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|\bbackground\s*=\s*["']?\s*(https?:)?//`)

// Sanitize returns HTML safe to show, and how many remote loads it held.
func Sanitize(html string) (string, int) {
	return policy.Sanitize(html), len(remoteRef.FindAllStringIndex(html, -1))
}
