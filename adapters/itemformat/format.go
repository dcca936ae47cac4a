// Package itemformat reads stored item content in the formats the sources
// deliver (MIME, Graph JSON, export streams) and gives restore, export and
// the storage index what they need from it.
package itemformat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/charset"

	"github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/domain"
)

// Export streams of the simulators before they wrote FastTransfer streams:
// a marker, then the item's MIME. Storages written then still hold them.
const (
	SimGraphExportPrefix = "MVFT\x01"
	SimEWSExportPrefix   = "MVEWS\x01"
)

// ErrOpaque means the content is a server's export stream that mailvault
// cannot convert to MIME; it can still be restored to a mailbox.
var ErrOpaque = errors.New("the item's export stream (FastTransfer) cannot be converted; restore it to a mailbox instead")

// MIME returns the RFC 5322 form of stored content in the given format.
// An export stream is decoded and converted: messages to MIME, appointments
// and contacts to a message whose body is their iCalendar or vCard.
func MIME(format string, content []byte) ([]byte, error) {
	switch format {
	case domain.FormatMIME, "":
		return content, nil
	case domain.FormatGraphExport, domain.FormatEWSExport:
		for _, legacy := range []string{SimGraphExportPrefix, SimEWSExportPrefix} {
			if b, ok := bytes.CutPrefix(content, []byte(legacy)); ok {
				return b, nil
			}
		}
		m, err := fasttransfer.Decode(content)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrOpaque, err)
		}
		raw, err := streamMIME(m)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrOpaque, err)
		}
		return raw, nil
	case domain.FormatGraphJSON:
		return nil, fmt.Errorf("a Graph JSON resource has no MIME form")
	}
	return nil, fmt.Errorf("unknown content format %q", format)
}

// Summary is what the storage index keeps of an item to find it by.
type Summary struct {
	Subject string `json:"subject,omitempty"`
	From    string `json:"from,omitempty"`
	// To are the To and Cc recipients, "Name <address>" joined by ", ",
	// cut at maxRecipients bytes: what a search by recipient reads.
	To   string    `json:"to,omitempty"`
	Date time.Time `json:"date,omitzero"`
}

// maxRecipients bounds what an item's recipients add to the storage
// index: a message to a thousand people is found by its first few dozen.
const maxRecipients = 512

// recipientList joins recipients (or headers of them), cut at a
// recipient's end before maxRecipients bytes.
func recipientList(list []string) string {
	s := strings.Join(list, ", ")
	if len(s) <= maxRecipients {
		return s
	}
	if i := strings.LastIndex(s[:maxRecipients], ", "); i > 0 {
		return s[:i]
	}
	return strings.ToValidUTF8(s[:maxRecipients], "")
}

// nameAddr is an address as the index keeps it.
func nameAddr(name, addr string) string {
	if name == "" || name == addr {
		return addr
	}
	return name + " <" + addr + ">"
}

var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// MessageID is a message's Message-ID in either stored form: an export
// stream's PidTagInternetMessageId, read from its properties without
// converting it to MIME, or the MIME header (of what MIME makes of the
// rest: legacy export blobs included); "" when it has none or cannot be
// read.
func MessageID(format string, content []byte) string {
	if format == domain.FormatGraphExport || format == domain.FormatEWSExport {
		if m, err := fasttransfer.Decode(content); err == nil {
			return strings.TrimSpace(oneLine(m.Props.String(tagInternetMessageID)))
		}
	}
	raw, err := MIME(format, content)
	if err != nil {
		return ""
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return msg.Header.Get("Message-Id")
}

// Summarize reads subject, sender and date from content; what it cannot
// read stays empty.
func Summarize(format string, content []byte) Summary {
	if format == domain.FormatGraphJSON {
		return summarizeJSON(content)
	}
	if format == domain.FormatGraphExport || format == domain.FormatEWSExport {
		if m, err := fasttransfer.Decode(content); err == nil {
			return summarizeStream(m)
		}
	}
	raw, err := MIME(format, content)
	if err != nil {
		return Summary{}
	}
	h, err := readHeader(raw)
	if err != nil {
		return Summary{}
	}
	return summaryOf(h, parseDate)
}

// summaryOf reads subject, sender and date (through date) from a header.
func summaryOf(h mail.Header, date func(string) (time.Time, error)) Summary {
	var s Summary
	s.Subject = decodeHeader(h.Get("Subject"))
	if from, err := mail.ParseAddress(h.Get("From")); err == nil {
		s.From = nameAddr(from.Name, from.Address)
	} else {
		s.From = decodeHeader(h.Get("From"))
	}
	// The headers as written, decoded, not parsed address by address: a
	// search by recipient looks for text in them, and Summarize runs for
	// every stored item.
	var to []string
	for _, field := range []string{"To", "Cc"} {
		if v := h.Get(field); v != "" {
			if strings.Contains(v, "=?") {
				v = decodeHeader(v) // encoded words; most headers have none
			}
			to = append(to, v)
		}
	}
	s.To = recipientList(to)
	if d, err := date(h.Get("Date")); err == nil {
		s.Date = d.UTC()
	}
	return s
}

// headerReaders are the buffered readers readHeader lends to
// mail.ReadMessage: Summarize runs for every stored item, and a new 4 KiB
// reader per call was a tenth of the backup's allocations. mail.ReadMessage
// takes a bufio.Reader of its own size as it is.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// readHeader reads a message's header as mail.ReadMessage does (its own
// lenient reading, not textproto's), through a pooled reader.
func readHeader(raw []byte) (mail.Header, error) {
	br := headerReaders.Get().(*bufio.Reader)
	defer headerReaders.Put(br)
	br.Reset(bytes.NewReader(raw))
	msg, err := mail.ReadMessage(br)
	br.Reset(nil)
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// parseDate parses a Date header. Nearly every message's is RFC 5322's
// usual form, tried first: mail.ParseDate tries a list of layouts in turn,
// and the failures it allocates on the way were another tenth of the
// backup's allocations.
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC1123Z, v); err == nil {
		return t, nil
	}
	return mail.ParseDate(v)
}

func decodeHeader(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// summarizeStream reads a decoded stream's properties, without converting
// its body and attachments.
func summarizeStream(m *fasttransfer.Message) Summary {
	ps := m.Props
	s := Summary{Subject: ps.String(tagSubject), From: sender(ps)}
	if a, err := mail.ParseAddress(s.From); err == nil {
		s.From = nameAddr(a.Name, a.Address)
	}
	var to []string
	for _, r := range m.Recipients {
		if typ := r.Int32(tagRecipientType) & 0xF; typ == recipTo || typ == recipCc {
			to = append(to, nameAddr(r.String(tagDisplayName), recipientAddress(r)))
		}
	}
	s.To = recipientList(to)
	s.Date = firstTime(ps.Time(tagClientSubmitTime), ps.Time(tagMessageDeliveryTime), named(ps, psetidAppointment, lidStartWhole).Time(), ps.Time(tagLastModified))
	return s
}

func summarizeJSON(content []byte) Summary {
	var r Resource
	if json.Unmarshal(content, &r) != nil {
		return Summary{}
	}
	s := Summary{Subject: r.Subject}
	if s.Subject == "" {
		s.Subject = r.DisplayName
	}
	if r.Organizer != nil {
		s.From = r.Organizer.EmailAddress.Address
	}
	if t, err := r.Start.Time(); err == nil {
		s.Date = t
	} else if t, err := time.Parse(time.RFC3339, r.LastModified); err == nil {
		s.Date = t.UTC()
	}
	return s
}
