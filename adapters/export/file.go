package export

import (
	"bytes"
	"fmt"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
)

// File is one item as a file of the standard format its kind exports to,
// for a download: a message as EML, an event or a task as an iCalendar
// file (with the time zones it uses), a contact as a vCard (3.0, what
// Outlook imports). name is the file's name, made of the version id.
func File(it Item) (name, contentType string, b []byte, err error) {
	switch it.Kind {
	case domain.KindCalendar, domain.KindTasks:
		comps, err := itemformat.CalendarComponents(it.Format, it.Content)
		if err != nil {
			return "", "", nil, fmt.Errorf("%s item without iCalendar data: %w", it.Kind, err)
		}
		var buf bytes.Buffer
		buf.WriteString(icsHeader)
		for _, c := range comps {
			b, err := encodeComponent(c)
			if err != nil {
				return "", "", nil, fmt.Errorf("encode %s: %w", c.Name, err)
			}
			buf.Write(b)
		}
		buf.WriteString(icsFooter)
		return SafeName(it.ID) + ".ics", "text/calendar; charset=utf-8", buf.Bytes(), nil
	case domain.KindContacts:
		b, err := vcardOf(it, "3.0")
		if err != nil {
			return "", "", nil, fmt.Errorf("contact without vCard data: %w", err)
		}
		return SafeName(it.ID) + ".vcf", "text/vcard; charset=utf-8", b, nil
	}
	raw, err := itemformat.MIME(it.Format, it.Content)
	if err != nil {
		return "", "", nil, err
	}
	return SafeName(it.ID) + ".eml", "message/rfc822", raw, nil
}
