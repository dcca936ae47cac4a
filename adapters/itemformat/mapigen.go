package itemformat

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-vcard"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/domain"
)

// ExportStream converts an item's MIME into the FastTransfer stream an
// export returns for it, framed as exports frame it ([MS-OXCMAIL] from
// MIME to properties; a text/calendar body becomes an appointment per
// [MS-OXCICAL], a text/vcard one a contact per [MS-OXVCARD]). The
// simulators answer exports with it from their item model; read sets the
// message's read flag.
func ExportStream(raw []byte, read bool) ([]byte, error) {
	m, err := messageFromMIME(raw, read, 0)
	if err != nil {
		return nil, err
	}
	return ft.Encode(m)
}

// maxEmbedded bounds message/rfc822 parts inside each other.
const maxEmbedded = 16

func messageFromMIME(raw []byte, read bool, depth int) (*ft.Message, error) {
	if depth > maxEmbedded {
		return nil, fmt.Errorf("messages nested deeper than %d", maxEmbedded)
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("read MIME: %w", err)
	}
	h := gomail.Header{Header: ent.Header}
	m := &ft.Message{}
	mt, _, _ := ent.Header.ContentType()
	switch strings.ToLower(mt) {
	case "text/calendar":
		body, err := io.ReadAll(ent.Body)
		if err != nil {
			return nil, fmt.Errorf("read iCalendar: %w", err)
		}
		var cal *ical.Calendar
		if err := guarded("iCalendar", func() (err error) {
			cal, err = ical.NewDecoder(bytes.NewReader(body)).Decode()
			return err
		}); err != nil {
			return nil, err
		}
		if todo := onlyToDo(cal); todo != nil {
			taskProps(todo, m)
		} else if err := appointmentProps(cal, m); err != nil {
			return nil, err
		}
		headerProps(h, m, false)
	case "text/vcard", "text/x-vcard", "text/directory":
		var card vcard.Card
		if err := guarded("vCard", func() (err error) {
			card, err = vcard.NewDecoder(ent.Body).Decode()
			return err
		}); err != nil {
			return nil, err
		}
		contactProps(card, m)
		headerProps(h, m, false)
	default:
		m.Props = append(m.Props, ft.String16(tagMessageClass, "IPM.Note"))
		headerProps(h, m, true)
		if end := bytes.Index(raw, []byte("\r\n\r\n")); end > 0 {
			m.Props = append(m.Props, ft.String16(tagTransportHeaders, string(raw[:end+2])))
		}
		if err := bodyProps(ent, m, depth); err != nil {
			return nil, err
		}
	}
	var flags int32
	if read {
		flags |= msgflagRead
	}
	m.Props = append(m.Props, ft.Int32Prop(tagMessageFlags, flags), ft.Int32Prop(tagInternetCodepage, 65001))
	return m, nil
}

// onlyToDo is a calendar's VTODO when it holds one and no event: a task.
func onlyToDo(cal *ical.Calendar) *ical.Component {
	var todo *ical.Component
	for _, c := range cal.Children {
		switch c.Name {
		case ical.CompEvent:
			return nil
		case ical.CompToDo:
			if todo == nil {
				todo = c
			}
		}
	}
	return todo
}

// headerProps sets the sender, date, message id, subject and (for
// messages) recipients from a header.
func headerProps(h gomail.Header, m *ft.Message, recipients bool) {
	add := func(p ft.Prop) { m.Props = append(m.Props, p) }
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		name, addr := firstNonEmpty(from[0].Name, from[0].Address), from[0].Address
		for _, tags := range [][4]ft.Tag{{tagSenderName, tagSenderAddrType, tagSenderEmail, tagSenderSMTP}, {tagSentRepName, tagSentRepAddrType, tagSentRepEmail, tagSentRepSMTP}} {
			add(ft.String16(tags[0], name))
			add(ft.String16(tags[1], "SMTP"))
			add(ft.String16(tags[2], addr))
			add(ft.String16(tags[3], addr))
		}
	}
	if !hasProp(m.Props, tagSubject) {
		if s, err := h.Subject(); err == nil && s != "" {
			add(ft.String16(tagSubject, s))
			add(ft.String16(tagNormalizedSubject, s))
		}
	}
	if d, err := h.Date(); err == nil && !d.IsZero() {
		add(ft.TimeProp(tagClientSubmitTime, d))
		add(ft.TimeProp(tagMessageDeliveryTime, d))
		add(ft.TimeProp(tagCreationTime, d))
		add(ft.TimeProp(tagLastModified, d))
	}
	if id := h.Get("Message-Id"); id != "" {
		add(ft.String16(tagInternetMessageID, strings.TrimSpace(id)))
	}
	if !recipients {
		return
	}
	display := map[int32][]string{}
	for _, kind := range []struct {
		field string
		typ   int32
	}{{"To", recipTo}, {"Cc", recipCc}, {"Bcc", recipBcc}} {
		list, err := h.AddressList(kind.field)
		if err != nil {
			continue
		}
		for _, a := range list {
			m.Recipients = append(m.Recipients, recipientProps(len(m.Recipients), kind.typ, a.Name, a.Address))
			display[kind.typ] = append(display[kind.typ], firstNonEmpty(a.Name, a.Address))
		}
	}
	if len(display[recipTo]) > 0 {
		add(ft.String16(tagDisplayTo, strings.Join(display[recipTo], "; ")))
	}
	if len(display[recipCc]) > 0 {
		add(ft.String16(tagDisplayCc, strings.Join(display[recipCc], "; ")))
	}
}

func hasProp(ps ft.Props, tag ft.Tag) bool {
	_, ok := ps.Get(tag)
	return ok
}

// bodyProps walks a message's parts: the first text and HTML parts that
// are not attachments are its body; message/rfc822 parts are embedded
// messages; every other leaf is an attachment.
func bodyProps(ent *message.Entity, m *ft.Message, depth int) error {
	var text, html []byte
	return ent.Walk(func(_ []int, e *message.Entity, err error) error {
		if err != nil {
			return fmt.Errorf("read MIME part: %w", err)
		}
		if e.MultipartReader() != nil {
			return nil
		}
		mt, params, _ := e.Header.ContentType()
		mt = strings.ToLower(mt)
		disp, dparams, _ := e.Header.ContentDisposition()
		body, err := io.ReadAll(e.Body)
		if err != nil {
			return fmt.Errorf("read MIME part: %w", err)
		}
		inline := !strings.EqualFold(disp, "attachment")
		switch {
		case inline && (mt == "text/plain" || mt == "") && text == nil:
			text = body
			m.Props = append(m.Props, ft.String16(tagBody, string(body)))
			return nil
		case inline && mt == "text/html" && html == nil:
			html = body
			m.Props = append(m.Props, ft.BinaryProp(tagHTML, body))
			return nil
		}
		n := int32(len(m.Attachments))
		name := firstNonEmpty(dparams["filename"], params["name"])
		a := ft.Attachment{Props: ft.Props{ft.Int32Prop(tagAttachNumber, n), ft.Int32Prop(tagRenderingPosition, -1)}}
		if name != "" {
			a.Props = append(a.Props, ft.String16(tagAttachLongFilename, name), ft.String16(tagAttachFilename, name), ft.String16(tagDisplayName, name))
			if ext := path.Ext(name); ext != "" {
				a.Props = append(a.Props, ft.String16(tagAttachExtension, ext))
			}
		}
		if mt == "message/rfc822" {
			inner, err := messageFromMIME(body, true, depth+1)
			if err != nil {
				return fmt.Errorf("embedded message: %w", err)
			}
			a.Props = append(a.Props, ft.Int32Prop(tagAttachMethod, attachEmbedded))
			a.Embedded = inner
		} else {
			a.Props = append(a.Props, ft.Int32Prop(tagAttachMethod, attachByValue), ft.String16(tagAttachMimeTag, firstNonEmpty(mt, "application/octet-stream")),
				ft.BinaryProp(tagAttachData, body), ft.Int32Prop(tagAttachSize, int32(len(body))))
			if id := e.Header.Get("Content-Id"); id != "" {
				a.Props = append(a.Props, ft.String16(tagAttachContentID, strings.Trim(strings.TrimSpace(id), "<>")))
			}
		}
		m.Attachments = append(m.Attachments, a)
		return nil
	})
}

// GraphJSONAsMIME renders an event or contact kept as Graph's JSON (as a
// simulator keeps one created through Graph's JSON routes) as the MIME
// ExportStream reads: a text/calendar or text/vcard body.
func GraphJSONAsMIME(kind string, content []byte) ([]byte, error) {
	var body []byte
	var contentType string
	switch kind {
	case "calendar":
		comps, err := CalendarComponents(domain.FormatGraphJSON, content)
		if err != nil {
			return nil, err
		}
		if body, err = publish("-//mailvault//sim//EN", comps); err != nil {
			return nil, err
		}
		contentType = "text/calendar; charset=utf-8; method=PUBLISH"
	case "contacts":
		card, err := Card(domain.FormatGraphJSON, content)
		if err != nil {
			return nil, err
		}
		if card, err = CardAs(card, "4.0"); err != nil {
			return nil, err
		}
		if body, err = EncodeCard(card); err != nil {
			return nil, err
		}
		contentType = "text/vcard; charset=utf-8"
	default:
		return nil, fmt.Errorf("a %s item has no Graph JSON rendering to convert", kind)
	}
	return append([]byte("MIME-Version: 1.0\r\nContent-Type: "+contentType+"\r\n\r\n"), body...), nil
}
