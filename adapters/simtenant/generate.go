package simtenant

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// itemSeed is the per-item random seed: the same tenant seed, mailbox, folder
// and position always produce the same item.
func itemSeed(seed int64, mailbox, path string, pos int) uint64 {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d", seed, strings.ToLower(mailbox), path, pos)
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// FolderID is the simulated server id of a folder.
func FolderID(mailbox, path string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(mailbox) + "\x00" + path))
	return "AAMkAF" + hex.EncodeToString(sum[:12])
}

// ItemID is the simulated server id of the item at pos.
func ItemID(seed int64, mailbox, path string, pos int) string {
	return fmt.Sprintf("AAMkAI%016x%08x", itemSeed(seed, mailbox, path, pos), pos)
}

// ChangeKey is the simulated change key; items never change in the model.
func ChangeKey(seed int64, mailbox, path string, pos int) string {
	return fmt.Sprintf("CQAAAB%08x", uint32(itemSeed(seed, mailbox, path, pos)>>32))
}

// Version derives the folder a changed item's version v is generated from:
// the same position with another seed, so a new version has new content and
// a new change key while keeping its id.
func (f *Folder) Version(v int) *Folder {
	if v == 0 {
		return f
	}
	g := *f
	g.Path = fmt.Sprintf("%s\x00v%d", f.Path, v)
	return &g
}

// contentOwner is whose random stream generates an item's content: the
// mailbox, or the shared list the folder receives.
func contentOwner(mailbox string, f *Folder) string {
	if f.Shared != "" {
		return f.Shared
	}
	return mailbox
}

// ItemSize is the size the item at pos will have. Without an override sizes
// follow a log-normal spread: median about 30 KB, from a few KB to a few MB.
func ItemSize(seed int64, mailbox string, f *Folder, pos int) int64 {
	r := rand.New(rand.NewPCG(itemSeed(seed, contentOwner(mailbox, f), f.Path, pos), 1))
	if f.Size != nil {
		lo, hi := int64(f.Size.Min), int64(f.Size.Max)
		if hi == lo {
			return lo
		}
		return lo + r.Int64N(hi-lo+1)
	}
	v := math.Exp(math.Log(30<<10) + 1.3*r.NormFloat64())
	return int64(min(max(v, 3<<10), 4<<20))
}

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dariusz", "Émilie", "François", "Jürgen", "Søren", "Zoë", "Ōtani", "Müller", "Priya"}
	subjects   = []string{"Quarterly report", "Réunion de projet", "Angebot für Q3", "Lunch on Friday?", "Invoice 2026-0412", "Встреча в понедельник", "会議の議事録", "Re: contract draft", "Fwd: travel plans", "Status update – week 48"}
)

// itemBasics draws an item's sender, subject and date, in that order, from
// its random stream; Content goes on drawing from the same stream.
func itemBasics(seed int64, mailbox string, f *Folder, pos int) (r *rand.Rand, from, subject string, date time.Time) {
	r = rand.New(rand.NewPCG(itemSeed(seed, contentOwner(mailbox, f), f.Path, pos), 2))
	from = firstNames[r.IntN(len(firstNames))]
	subject = subjects[r.IntN(len(subjects))]
	date = time.Date(2020, 1, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(6 * 365 * 24 * time.Hour))))
	return r, from, subject, date
}

// ItemTime is the item's date: when a message was sent (and last changed),
// when an appointment occurs, when a contact was last changed. It is the
// Date header (or DTSTART) of its generated content, so filters by age can
// be checked against the model.
func ItemTime(seed int64, mailbox string, f *Folder, pos int) time.Time {
	_, _, _, date := itemBasics(seed, mailbox, f, pos)
	return date
}

// Facts are what an item's generated content says, for the renderings
// that are not MIME (Graph's JSON): the same sender, recipients, subject,
// dates and text, without generating the content.
type Facts struct {
	FromName, FromAddress string
	To                    string // the mailbox the item belongs to
	Subject               string // as the MIME's Subject (SUMMARY for events)
	Date                  time.Time
	MessageID             string
	Text                  string // the message's text part
	Phone                 string // a contact's telephone number
}

// ItemFacts returns the facts of the item at pos (see Facts).
func ItemFacts(seed int64, mailbox string, f *Folder, pos int) Facts {
	r, from, subject, date := itemBasics(seed, mailbox, f, pos)
	fc := Facts{FromName: from, FromAddress: strings.ToLower(asciiName(from)) + "@contoso.test", To: owner(contentOwner(mailbox, f)),
		Subject: fmt.Sprintf("%s #%d", subject, pos), Date: date, MessageID: fmt.Sprintf("<%016x@sim.contoso.test>", itemSeed(seed, contentOwner(mailbox, f), f.Path, pos)),
		Text: fmt.Sprintf("Hello,\r\n\r\nplease find the notes for %s below. Grüße, %s\r\n", subject, from)}
	switch f.Kind {
	case domain.KindCalendar:
		fc.Subject = subject
	case domain.KindContacts:
		fc.Phone = fmt.Sprintf("+1-555-%04d", r.IntN(10000))
	}
	return fc
}

// Content generates the MIME of the item at pos, exactly ItemSize bytes long
// when that size exceeds the headers (otherwise as small as possible).
func Content(seed int64, mailbox string, f *Folder, pos int) []byte {
	size := ItemSize(seed, mailbox, f, pos)
	r, from, subject, date := itemBasics(seed, mailbox, f, pos)
	var b bytes.Buffer
	b.Grow(int(size) + 256)
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	facts := ItemFacts(seed, mailbox, f, pos)
	hdr("From", fmt.Sprintf("%s <%s>", mime.QEncoding.Encode("utf-8", from), facts.FromAddress))
	hdr("To", facts.To)
	hdr("Subject", mime.QEncoding.Encode("utf-8", fmt.Sprintf("%s #%d", subject, pos)))
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("Message-ID", facts.MessageID)
	hdr("MIME-Version", "1.0")
	switch f.Kind {
	case domain.KindCalendar:
		return calendarItem(&b, r, size, date, subject, pos)
	case domain.KindContacts:
		return contactItem(&b, r, size, from)
	case domain.KindTasks:
		return taskItem(&b, r, size, date, subject, pos)
	case domain.KindNotes:
		hdr("Content-Type", "text/plain; charset=utf-8")
		b.WriteString("\r\n" + subject + "\r\n")
		return fillText(&b, r, size, "")
	case domain.KindJournal:
		// A journal entry (IPM.Activity): what happened, with whom, as text.
		hdr("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(&b, "\r\nPhone call with %s about %s.\r\n", from, subject)
		return fillText(&b, r, size, "")
	}
	mw := multipart.NewWriter(&b)
	boundary := fmt.Sprintf("mv_%016x", r.Uint64())
	_ = mw.SetBoundary(boundary)
	hdr("Content-Type", fmt.Sprintf("multipart/mixed; boundary=%q", boundary))
	b.WriteString("\r\n")
	text := facts.Text
	pw, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	qp := quotedprintable.NewWriter(pw)
	qp.Write([]byte(text))
	qp.Close()
	// The attachment pads the message to its size: base64 of random bytes,
	// like a real PDF or image, so compression tests see realistic entropy.
	closing := len("\r\n--" + boundary + "--\r\n")
	attHeader := "\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"attachment.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	room := int(size) - b.Len() - closing - len(attHeader)
	if room > 8 {
		b.WriteString(attHeader)
		writeBase64Lines(&b, r, room)
	}
	mw.Close()
	return pad(b.Bytes(), size)
}

func asciiName(s string) string {
	var out []rune
	for _, c := range s {
		if c < 128 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "user"
	}
	return string(out)
}

// writeBase64Lines writes at most n bytes of valid base64 text in lines of at
// most 76 columns; pad makes up the rest.
func writeBase64Lines(b *bytes.Buffer, r *rand.Rand, n int) {
	raw := make([]byte, 57)
	line := make([]byte, 76)
	for n >= 6 {
		take := min(76, (n-2)/4*4)
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(line, raw)
		b.Write(line[:take])
		b.WriteString("\r\n")
		n -= take + 2
	}
}

// pad extends the message to size with line breaks, which are legal after
// the closing boundary or the last property line.
func pad(msg []byte, size int64) []byte {
	for int64(len(msg))+2 <= size {
		msg = append(msg, '\r', '\n')
	}
	if int64(len(msg)) < size {
		msg = append(msg, '\n')
	}
	return msg
}

func calendarItem(b *bytes.Buffer, r *rand.Rand, size int64, start time.Time, subject string, pos int) []byte {
	b.WriteString("Content-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n\r\n")
	uid := fmt.Sprintf("%016x@sim.contoso.test", r.Uint64())
	stamp := start.Add(-30 * 24 * time.Hour).Format(icalUTC)
	fmt.Fprintf(b, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailvault//sim//EN\r\nBEGIN:VEVENT\r\nUID:%s\r\nDTSTAMP:%s\r\nDTSTART:%s\r\nDTEND:%s\r\nSUMMARY:%s\r\n",
		uid, stamp, start.Format(icalUTC), start.Add(time.Hour).Format(icalUTC), subject)
	closing := "END:VEVENT\r\nEND:VCALENDAR\r\n"
	if pos%10 == 3 {
		// A weekly series of 8 with its third occurrence cancelled and its
		// second moved an hour later: recurrence and exceptions to keep.
		second, third := start.AddDate(0, 0, 7), start.AddDate(0, 0, 14)
		fmt.Fprintf(b, "RRULE:FREQ=WEEKLY;COUNT=8\r\nEXDATE:%s\r\n", third.Format(icalUTC))
		closing = fmt.Sprintf("END:VEVENT\r\nBEGIN:VEVENT\r\nUID:%s\r\nDTSTAMP:%s\r\nRECURRENCE-ID:%s\r\nDTSTART:%s\r\nDTEND:%s\r\nSUMMARY:%s (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
			uid, stamp, second.Format(icalUTC), second.Add(time.Hour).Format(icalUTC), second.Add(2*time.Hour).Format(icalUTC), subject)
	}
	return fillAndClose(b, r, size, "DESCRIPTION", closing)
}

const icalUTC = "20060102T150405Z"

// taskItem is a task as Exchange's iCalendar rendering has it: a VTODO
// with a start, a due date, and every third one completed.
func taskItem(b *bytes.Buffer, r *rand.Rand, size int64, start time.Time, subject string, pos int) []byte {
	b.WriteString("Content-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n\r\n")
	fmt.Fprintf(b, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailvault//sim//EN\r\nMETHOD:PUBLISH\r\nBEGIN:VTODO\r\nUID:%016x@sim.contoso.test\r\nDTSTAMP:%s\r\nDTSTART:%s\r\nDUE:%s\r\nSUMMARY:%s\r\n",
		r.Uint64(), start.Format(icalUTC), start.Format(icalUTC), start.Add(72*time.Hour).Format(icalUTC), subject)
	if pos%3 == 0 {
		fmt.Fprintf(b, "STATUS:COMPLETED\r\nPERCENT-COMPLETE:100\r\nCOMPLETED:%s\r\n", start.Add(48*time.Hour).Format(icalUTC))
	} else {
		b.WriteString("STATUS:NEEDS-ACTION\r\nPERCENT-COMPLETE:0\r\n")
	}
	return fillAndClose(b, r, size, "DESCRIPTION", "END:VTODO\r\nEND:VCALENDAR\r\n")
}

// fillText pads a plain text body to size with words, then closing.
func fillText(b *bytes.Buffer, r *rand.Rand, size int64, closing string) []byte {
	for b.Len()+len(closing)+8 < int(size) {
		for i := 0; i < 60 && b.Len()+len(closing)+8 < int(size); i++ {
			b.WriteByte('a' + byte(r.IntN(26)))
		}
		b.WriteString("\r\n")
	}
	b.WriteString(closing)
	return pad(b.Bytes(), size)
}

func contactItem(b *bytes.Buffer, r *rand.Rand, size int64, name string) []byte {
	b.WriteString("Content-Type: text/vcard; charset=utf-8\r\n\r\n")
	fmt.Fprintf(b, "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:%s\r\nEMAIL:%s@contoso.test\r\nTEL:+1-555-%04d\r\n", name, strings.ToLower(asciiName(name)), r.IntN(10000))
	return fillAndClose(b, r, size, "NOTE", "END:VCARD\r\n")
}

// fillAndClose pads an iCalendar or vCard body to size with one text
// property, then writes the closing lines.
func fillAndClose(b *bytes.Buffer, r *rand.Rand, size int64, property, closing string) []byte {
	room := int(size) - b.Len() - len(closing) - len(property) - len(":\r\n")
	if room > 0 {
		b.WriteString(property + ":")
		for i := 0; i < room; i++ {
			b.WriteByte('a' + byte(r.IntN(26)))
		}
		b.WriteString("\r\n")
	}
	b.WriteString(closing)
	return pad(b.Bytes(), size)
}

// Demo is the demo tenant: three mailboxes, about 5,000 items, a few dirty
// items and a throttled calendar.
func Demo(seed int64) *Tenant {
	l := DefaultLimits
	return &Tenant{
		Seed:   seed,
		Limits: &l,
		Mailboxes: []Mailbox{
			{Address: "alice@contoso.test", Folders: []Folder{
				{Path: "Inbox", Kind: domain.KindMail, Items: 1400, Dirty: []int{2, 977}},
				{Path: "Inbox/Projects", Kind: domain.KindMail, Items: 300, Dirty: []int{150}},
				{Path: "Sent Items", Kind: domain.KindMail, Items: 350},
				{Path: "Calendar", Kind: domain.KindCalendar, Items: 1500, Throttle: &Throttle{Items: 700, Window: Duration(4 * time.Second)}},
			}},
			{Address: "bob@contoso.test", Folders: []Folder{
				{Path: "Inbox", Kind: domain.KindMail, Items: 600},
				{Path: "Contacts", Kind: domain.KindContacts, Items: 250},
				{Path: "Deleted Items", Kind: domain.KindMail, Items: 150, Dirty: []int{33}},
			}},
			{Address: "carol@contoso.test", Folders: []Folder{
				{Path: "Inbox", Kind: domain.KindMail, Items: 400},
				{Path: "Archive/2025", Kind: domain.KindMail, Items: 200},
				{Path: "Calendar", Kind: domain.KindCalendar, Items: 150},
			}},
		},
	}
}
