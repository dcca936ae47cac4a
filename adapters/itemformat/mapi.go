package itemformat

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// MAPI properties an item's stream carries and the conversions read
// ([MS-OXPROPS]); the type in each tag is the one written, any string type
// is read.
var (
	tagMessageClass        = ft.NewTag(0x001A, ft.TypeString)
	tagSubject             = ft.NewTag(0x0037, ft.TypeString)
	tagClientSubmitTime    = ft.NewTag(0x0039, ft.TypeTime)
	tagSentRepName         = ft.NewTag(0x0042, ft.TypeString)
	tagSentRepAddrType     = ft.NewTag(0x0064, ft.TypeString)
	tagSentRepEmail        = ft.NewTag(0x0065, ft.TypeString)
	tagTransportHeaders    = ft.NewTag(0x007D, ft.TypeString)
	tagSenderAddrType      = ft.NewTag(0x0C1E, ft.TypeString)
	tagSenderEmail         = ft.NewTag(0x0C1F, ft.TypeString)
	tagSenderName          = ft.NewTag(0x0C1A, ft.TypeString)
	tagRecipientType       = ft.NewTag(0x0C15, ft.TypeInteger32)
	tagDisplayCc           = ft.NewTag(0x0E03, ft.TypeString)
	tagDisplayTo           = ft.NewTag(0x0E04, ft.TypeString)
	tagMessageDeliveryTime = ft.NewTag(0x0E06, ft.TypeTime)
	tagMessageFlags        = ft.NewTag(0x0E07, ft.TypeInteger32)
	tagNormalizedSubject   = ft.NewTag(0x0E1D, ft.TypeString)
	tagAttachSize          = ft.NewTag(0x0E20, ft.TypeInteger32)
	tagAttachNumber        = ft.NewTag(0x0E21, ft.TypeInteger32)
	tagObjectType          = ft.NewTag(0x0FFE, ft.TypeInteger32)
	tagBody                = ft.NewTag(0x1000, ft.TypeString)
	tagHTML                = ft.NewTag(0x1013, ft.TypeBinary)
	tagInternetMessageID   = ft.NewTag(0x1035, ft.TypeString)
	tagRowID               = ft.NewTag(0x3000, ft.TypeInteger32)
	tagDisplayName         = ft.NewTag(0x3001, ft.TypeString)
	tagAddressType         = ft.NewTag(0x3002, ft.TypeString)
	tagEmailAddress        = ft.NewTag(0x3003, ft.TypeString)
	tagCreationTime        = ft.NewTag(0x3007, ft.TypeTime)
	tagLastModified        = ft.NewTag(0x3008, ft.TypeTime)
	tagAttachData          = ft.NewTag(0x3701, ft.TypeBinary)
	tagAttachExtension     = ft.NewTag(0x3703, ft.TypeString)
	tagAttachFilename      = ft.NewTag(0x3704, ft.TypeString)
	tagAttachMethod        = ft.NewTag(0x3705, ft.TypeInteger32)
	tagAttachLongFilename  = ft.NewTag(0x3707, ft.TypeString)
	tagRenderingPosition   = ft.NewTag(0x370B, ft.TypeInteger32)
	tagAttachMimeTag       = ft.NewTag(0x370E, ft.TypeString)
	tagAttachContentID     = ft.NewTag(0x3712, ft.TypeString)
	tagAttachmentFlags     = ft.NewTag(0x3714, ft.TypeInteger32)
	tagDisplayType         = ft.NewTag(0x3900, ft.TypeInteger32)
	tagSMTPAddress         = ft.NewTag(0x39FE, ft.TypeString)
	tagInternetCodepage    = ft.NewTag(0x3FDE, ft.TypeInteger32)
	tagSenderSMTP          = ft.NewTag(0x5D01, ft.TypeString)
	tagSentRepSMTP         = ft.NewTag(0x5D02, ft.TypeString)
	tagAttachmentHidden    = ft.NewTag(0x7FFE, ft.TypeBoolean)
)

// Recipient types and attach methods.
const (
	recipTo, recipCc, recipBcc = 1, 2, 3
	attachByValue              = 1
	attachEmbedded             = 5
	msgflagRead                = 0x1
	afException                = 0x2 // an attachment holding a series' changed occurrence
)

// streamMIME writes a decoded stream as MIME: messages per [MS-OXCMAIL],
// appointments as a message whose body is their iCalendar, contacts as one
// whose body is their vCard.
func streamMIME(m *ft.Message) ([]byte, error) {
	class := strings.ToUpper(m.Props.String(tagMessageClass))
	switch {
	case strings.HasPrefix(class, "IPM.APPOINTMENT"):
		cal, err := appointmentICS(m)
		if err != nil {
			return nil, err
		}
		return wrapped(m, "text/calendar; charset=utf-8; method=PUBLISH", cal), nil
	case strings.HasPrefix(class, "IPM.TASK"):
		cal, err := taskICS(m)
		if err != nil {
			return nil, err
		}
		return wrapped(m, "text/calendar; charset=utf-8; method=PUBLISH", cal), nil
	case strings.HasPrefix(class, "IPM.CONTACT"):
		card, err := contactVCard(m)
		if err != nil {
			return nil, err
		}
		return wrapped(m, "text/vcard; charset=utf-8", card), nil
	}
	var b bytes.Buffer
	b.Grow(mimeSize(m))
	writeMessage(&b, m, 0)
	return b.Bytes(), nil
}

// mimeSize is about what a message's MIME takes: base64 makes attachments
// a third larger, quoted-printable text up to that.
func mimeSize(m *ft.Message) int {
	n := 2048 + len(m.Props.Bytes(tagBody))*2/3 + len(m.Props.Bytes(tagHTML))*4/3
	for _, a := range m.Attachments {
		n += 512 + len(a.Props.Bytes(tagAttachData))*4/3*78/76
		if a.Embedded != nil {
			n += mimeSize(a.Embedded)
		}
	}
	return n
}

// header writes the RFC 5322 fields every rendering starts with; the
// recipients only for messages (an appointment's are its attendees).
func header(b *bytes.Buffer, m *ft.Message, recipients bool) {
	ps := m.Props
	if from := sender(ps); from != "" {
		fmt.Fprintf(b, "From: %s\r\n", from)
	}
	if recipients {
		for _, kind := range []struct {
			name string
			typ  int32
		}{{"To", recipTo}, {"Cc", recipCc}, {"Bcc", recipBcc}} {
			var list []string
			for _, r := range m.Recipients {
				if r.Int32(tagRecipientType)&0xF == kind.typ {
					list = append(list, address(r.String(tagDisplayName), recipientAddress(r)))
				}
			}
			if len(list) > 0 {
				fmt.Fprintf(b, "%s: %s\r\n", kind.name, strings.Join(list, ", "))
			}
		}
	}
	if s := ps.String(tagSubject); s != "" {
		fmt.Fprintf(b, "Subject: %s\r\n", encodeWord(s))
	}
	date := ps.Time(tagClientSubmitTime)
	if date.IsZero() {
		date = ps.Time(tagMessageDeliveryTime)
	}
	if !date.IsZero() {
		fmt.Fprintf(b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	}
	if id := oneLine(ps.String(tagInternetMessageID)); id != "" {
		fmt.Fprintf(b, "Message-ID: %s\r\n", id)
	}
	b.WriteString("MIME-Version: 1.0\r\n")
}

func wrapped(m *ft.Message, contentType string, body []byte) []byte {
	var b bytes.Buffer
	header(&b, m, false)
	fmt.Fprintf(&b, "Content-Type: %s\r\n\r\n", contentType)
	b.Write(body)
	return b.Bytes()
}

func sender(ps ft.Props) string {
	name, addr := ps.String(tagSentRepName), firstNonEmpty(ps.String(tagSentRepSMTP), smtpOnly(ps.String(tagSentRepAddrType), ps.String(tagSentRepEmail)))
	if addr == "" {
		name, addr = ps.String(tagSenderName), firstNonEmpty(ps.String(tagSenderSMTP), smtpOnly(ps.String(tagSenderAddrType), ps.String(tagSenderEmail)))
	}
	if addr == "" && name == "" {
		return ""
	}
	return address(name, addr)
}

func recipientAddress(r ft.Props) string {
	return firstNonEmpty(r.String(tagSMTPAddress), smtpOnly(r.String(tagAddressType), r.String(tagEmailAddress)))
}

// smtpOnly is an address if its type is SMTP (an Exchange DN is no
// Internet address).
func smtpOnly(typ, addr string) string {
	if strings.EqualFold(typ, "SMTP") || (typ == "" && strings.Contains(addr, "@")) {
		return addr
	}
	return ""
}

func address(name, addr string) string {
	addr = oneLine(addr)
	if addr == "" {
		return encodeWord(name) + " <>"
	}
	if name == "" || name == addr {
		return addr
	}
	return (&mail.Address{Name: name, Address: addr}).String()
}

func encodeWord(s string) string { return mime.QEncoding.Encode("utf-8", s) }

// oneLine drops the control characters (line breaks above all) a
// property's value may hold before it goes into a header as it is: a
// stream must not be able to add header fields or break the header.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7F {
			return -1
		}
		return r
	}, s)
}

// writeMessage writes a message's MIME: its header, then its body and
// attachments (multipart/mixed when it has any), embedded messages as
// message/rfc822 parts.
func writeMessage(b *bytes.Buffer, m *ft.Message, depth int) {
	header(b, m, true)
	text, html := m.Props.String(tagBody), m.Props.Bytes(tagHTML)
	var atts []ft.Attachment
	for _, a := range m.Attachments {
		if a.Props.Int32(tagAttachmentFlags)&afException == 0 {
			atts = append(atts, a)
		}
	}
	if len(atts) == 0 {
		writeBody(b, text, html, boundary(m, depth, "alt"))
		return
	}
	mixed := boundary(m, depth, "mixed")
	fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mixed)
	fmt.Fprintf(b, "--%s\r\n", mixed)
	writeBody(b, text, html, boundary(m, depth, "alt"))
	for _, a := range atts {
		fmt.Fprintf(b, "\r\n--%s\r\n", mixed)
		writeAttachment(b, a, depth)
	}
	fmt.Fprintf(b, "\r\n--%s--\r\n", mixed)
}

// boundary is derived from the message, so the same stream always gives
// the same MIME.
func boundary(m *ft.Message, depth int, part string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", m.Props.String(tagInternetMessageID), m.Props.String(tagSubject), depth, part)
	return fmt.Sprintf("mv_%x", h.Sum(nil)[:8])
}

func writeBody(b *bytes.Buffer, text string, html []byte, alt string) {
	switch {
	case html != nil && text != "":
		fmt.Fprintf(b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n--%s\r\n", alt, alt)
		writeTextPart(b, "text/plain", text)
		fmt.Fprintf(b, "\r\n--%s\r\n", alt)
		writeTextPart(b, "text/html", string(html))
		fmt.Fprintf(b, "\r\n--%s--\r\n", alt)
	case html != nil:
		writeTextPart(b, "text/html", string(html))
	default:
		writeTextPart(b, "text/plain", text)
	}
}

func writeTextPart(b *bytes.Buffer, typ, text string) {
	fmt.Fprintf(b, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", typ)
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(text))
	w.Close()
}

func writeAttachment(b *bytes.Buffer, a ft.Attachment, depth int) {
	ps := a.Props
	name := firstNonEmpty(ps.String(tagAttachLongFilename), ps.String(tagAttachFilename), ps.String(tagDisplayName))
	disposition := "attachment"
	if name != "" {
		disposition = mime.FormatMediaType("attachment", map[string]string{"filename": name})
	}
	if a.Embedded != nil && ps.Int32(tagAttachMethod) == attachEmbedded {
		fmt.Fprintf(b, "Content-Type: message/rfc822\r\nContent-Disposition: %s\r\n\r\n", disposition)
		writeMessage(b, a.Embedded, depth+1)
		return
	}
	typ := firstNonEmpty(ps.String(tagAttachMimeTag), "application/octet-stream")
	if _, _, err := mime.ParseMediaType(typ); err != nil {
		typ = "application/octet-stream"
	}
	fmt.Fprintf(b, "Content-Type: %s\r\nContent-Disposition: %s\r\n", typ, disposition)
	if id := oneLine(ps.String(tagAttachContentID)); id != "" {
		fmt.Fprintf(b, "Content-ID: <%s>\r\n", strings.Trim(id, "<>"))
	}
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	// Lines of 76 characters, 57 bytes each, encoded straight into b.
	data := ps.Bytes(tagAttachData)
	var line [76]byte
	for len(data) > 0 {
		n := min(57, len(data))
		w := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(line[:w], data[:n])
		b.Write(line[:w])
		b.WriteString("\r\n")
		data = data[n:]
	}
}
