package ewssim

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// itemShape is the properties a request asks for (ItemShape): a base
// shape, the MIME content, and additional field URIs.
type itemShape struct {
	Base       string `xml:"BaseShape"`
	MIME       bool   `xml:"IncludeMimeContent"`
	Additional []struct {
		URI string `xml:"FieldURI,attr"`
	} `xml:"AdditionalProperties>FieldURI"`
	// Indexed are entries of dictionary properties (an email address, a
	// phone number), by field URI and index.
	Indexed []struct {
		URI   string `xml:"FieldURI,attr"`
		Index string `xml:"FieldIndex,attr"`
	} `xml:"AdditionalProperties>IndexedFieldURI"`
}

// wantsEntry says whether the shape asks for one entry of a dictionary
// property (all of it, or that entry).
func (sh itemShape) wantsEntry(dictionary, uri, index string) bool {
	if sh.wants(dictionary) {
		return true
	}
	for _, a := range sh.Indexed {
		if a.URI == uri && a.Index == index {
			return true
		}
	}
	return false
}

// defaultItemProps are what BaseShape Default returns beside the id.
var defaultItemProps = map[string]bool{
	"item:Subject": true, "item:Sensitivity": true, "item:Size": true, "item:DateTimeReceived": true, "item:DateTimeSent": true,
	"item:DateTimeCreated": true, "item:HasAttachments": true, "item:DisplayTo": true, "item:DisplayCc": true, "item:Importance": true,
	"message:From": true, "message:IsRead": true,
	"calendar:Start": true, "calendar:End": true, "calendar:Organizer": true, "calendar:Location": true, "calendar:IsAllDayEvent": true,
	"calendar:LegacyFreeBusyStatus": true, "calendar:CalendarItemType": true,
	"contacts:DisplayName": true, "contacts:GivenName": true, "contacts:EmailAddresses": true, "contacts:PhoneNumbers": true,
}

// wants says whether the shape asks for a property (its field URI).
func (sh itemShape) wants(uri string) bool {
	switch sh.Base {
	case "AllProperties":
		return true
	case "Default":
		if defaultItemProps[uri] {
			return true
		}
	}
	if uri == "item:MimeContent" && sh.MIME {
		return true
	}
	for _, a := range sh.Additional {
		if a.URI == uri {
			return true
		}
	}
	return false
}

// mailboxXML is an EmailAddressType's content.
func mailboxXML(name, address string) string {
	return `<t:Mailbox><t:Name>` + esc(name) + `</t:Name><t:EmailAddress>` + esc(address) + `</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>`
}

// itemXML renders an item with the properties the shape asks for, and
// only those, in the schema's order; what it says is what its MIME says.
func itemXML(sn simtenant.Snapshot, id string, sh itemShape) string {
	el := itemElement(sn.Kind)
	f := sn.Facts()
	when := f.Date.UTC()
	created, modified := when, when
	if sn.Kind == domain.KindCalendar {
		modified = when.Add(-30 * 24 * time.Hour) // invited a month ahead, as the Graph rendering
		created = modified.Add(-time.Hour)
	}
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	var b strings.Builder
	prop := func(uri, xml string) {
		if sh.wants(uri) {
			b.WriteString(xml)
		}
	}
	b.WriteString(`<t:` + el + `>`)
	if sh.wants("item:MimeContent") {
		b.WriteString(`<t:MimeContent CharacterSet="UTF-8">` + base64.StdEncoding.EncodeToString(sn.Content()) + `</t:MimeContent>`)
	}
	b.WriteString(idXML("ItemId", id, sn.ChangeKey))
	prop("item:ParentFolderId", idXML("ParentFolderId", sn.FolderID, ""))
	class := domain.ItemClass(sn.Kind)
	if class == "" {
		class = domain.ItemClass(domain.KindMail)
	}
	prop("item:ItemClass", `<t:ItemClass>`+class+`</t:ItemClass>`)
	subject := f.Subject
	if sn.Kind == domain.KindContacts {
		subject = f.FromName
	}
	prop("item:Subject", `<t:Subject>`+esc(subject)+`</t:Subject>`)
	prop("item:Sensitivity", `<t:Sensitivity>Normal</t:Sensitivity>`)
	body := f.Text
	if sn.Kind != domain.KindMail {
		body = ""
	}
	prop("item:Body", `<t:Body BodyType="Text">`+esc(body)+`</t:Body>`)
	if sn.Kind == domain.KindMail {
		prop("item:DateTimeReceived", `<t:DateTimeReceived>`+ts(when)+`</t:DateTimeReceived>`)
	}
	prop("item:Size", `<t:Size>`+strconv.FormatInt(sn.Size(), 10)+`</t:Size>`)
	prop("item:Categories", ``)
	prop("item:Importance", `<t:Importance>Normal</t:Importance>`)
	prop("item:IsDraft", `<t:IsDraft>false</t:IsDraft>`)
	if sn.Kind == domain.KindMail {
		prop("item:DateTimeSent", `<t:DateTimeSent>`+ts(when)+`</t:DateTimeSent>`)
	}
	prop("item:DateTimeCreated", `<t:DateTimeCreated>`+ts(created)+`</t:DateTimeCreated>`)
	prop("item:DisplayCc", `<t:DisplayCc></t:DisplayCc>`)
	to := ""
	if sn.Kind == domain.KindMail {
		to = f.To
	}
	prop("item:DisplayTo", `<t:DisplayTo>`+esc(to)+`</t:DisplayTo>`)
	prop("item:HasAttachments", `<t:HasAttachments>false</t:HasAttachments>`)
	prop("item:LastModifiedTime", `<t:LastModifiedTime>`+ts(modified)+`</t:LastModifiedTime>`)
	switch sn.Kind {
	case domain.KindMail:
		from := mailboxXML(f.FromName, f.FromAddress)
		prop("message:Sender", `<t:Sender>`+from+`</t:Sender>`)
		prop("message:ToRecipients", `<t:ToRecipients>`+mailboxXML(f.To, f.To)+`</t:ToRecipients>`)
		prop("message:IsReadReceiptRequested", `<t:IsReadReceiptRequested>false</t:IsReadReceiptRequested>`)
		prop("message:IsDeliveryReceiptRequested", `<t:IsDeliveryReceiptRequested>false</t:IsDeliveryReceiptRequested>`)
		prop("message:ConversationTopic", `<t:ConversationTopic>`+esc(f.Subject)+`</t:ConversationTopic>`)
		prop("message:From", `<t:From>`+from+`</t:From>`)
		prop("message:InternetMessageId", `<t:InternetMessageId>`+esc(f.MessageID)+`</t:InternetMessageId>`)
		prop("message:IsRead", `<t:IsRead>`+strconv.FormatBool(!sn.Unread)+`</t:IsRead>`)
	case domain.KindCalendar:
		prop("calendar:Start", `<t:Start>`+ts(when)+`</t:Start>`)
		prop("calendar:End", `<t:End>`+ts(when.Add(time.Hour))+`</t:End>`)
		prop("calendar:IsAllDayEvent", `<t:IsAllDayEvent>false</t:IsAllDayEvent>`)
		prop("calendar:LegacyFreeBusyStatus", `<t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus>`)
		prop("calendar:Location", `<t:Location></t:Location>`)
		prop("calendar:IsMeeting", `<t:IsMeeting>true</t:IsMeeting>`)
		prop("calendar:IsCancelled", `<t:IsCancelled>false</t:IsCancelled>`)
		prop("calendar:CalendarItemType", `<t:CalendarItemType>Single</t:CalendarItemType>`)
		prop("calendar:MyResponseType", `<t:MyResponseType>Accept</t:MyResponseType>`)
		prop("calendar:Organizer", `<t:Organizer>`+mailboxXML(f.FromName, f.FromAddress)+`</t:Organizer>`)
		prop("calendar:RequiredAttendees", `<t:RequiredAttendees><t:Attendee>`+mailboxXML(f.To, f.To)+`<t:ResponseType>Accept</t:ResponseType></t:Attendee></t:RequiredAttendees>`)
	case domain.KindContacts:
		prop("contacts:FileAs", `<t:FileAs>`+esc(f.FromName)+`</t:FileAs>`)
		prop("contacts:DisplayName", `<t:DisplayName>`+esc(f.FromName)+`</t:DisplayName>`)
		prop("contacts:GivenName", `<t:GivenName>`+esc(f.FromName)+`</t:GivenName>`)
		if sh.wantsEntry("contacts:EmailAddresses", "contacts:EmailAddress", "EmailAddress1") {
			b.WriteString(`<t:EmailAddresses><t:Entry Key="EmailAddress1">` + esc(f.FromAddress) + `</t:Entry></t:EmailAddresses>`)
		}
		if sh.wantsEntry("contacts:PhoneNumbers", "contacts:PhoneNumber", "BusinessPhone") {
			b.WriteString(`<t:PhoneNumbers><t:Entry Key="BusinessPhone">` + esc(f.Phone) + `</t:Entry></t:PhoneNumbers>`)
		}
	}
	b.WriteString(`</t:` + el + `>`)
	return b.String()
}

// findItem lists a folder's items (FindItem, shallow): a page of an
// indexed view, with the properties asked for, sorted by the date
// received, created or the subject when asked, restricted as below.
func (s *Server) findItem(c *opContext) (string, *throttle) {
	var req struct {
		Traversal string    `xml:"Traversal,attr"`
		Shape     itemShape `xml:"ItemShape"`
		Indexed   *struct {
			Max       int    `xml:"MaxEntriesReturned,attr"`
			Offset    int    `xml:"Offset,attr"`
			BasePoint string `xml:"BasePoint,attr"`
		} `xml:"IndexedPageItemView"`
		Sort []struct {
			Order string `xml:"Order,attr"`
			Field struct {
				URI string `xml:"FieldURI,attr"`
			} `xml:"FieldURI"`
		} `xml:"SortOrder>FieldOrder"`
		Restriction *struct {
			IsEqualTo *struct {
				Field *struct {
					URI string `xml:"FieldURI,attr"`
				} `xml:"FieldURI"`
				Extended *struct {
					Name string `xml:"PropertyName,attr"`
				} `xml:"ExtendedFieldURI"`
				Constant struct {
					Value string `xml:"Value,attr"`
				} `xml:"FieldURIOrConstant>Constant"`
			} `xml:"IsEqualTo"`
		} `xml:"Restriction"`
		Parents refList `xml:"ParentFolderIds"`
	}
	if !c.decode(&req) {
		return "", nil
	}
	const op = "FindItem"
	// The restrictions applied: IsEqualTo on the restore mark (an extended
	// property by name) and on message:InternetMessageId; any other
	// restriction leaves every item in the view.
	match := func(*simtenant.StoredFolder, int) bool { return true }
	if r := req.Restriction; r != nil && r.IsEqualTo != nil {
		eq := r.IsEqualTo
		want := eq.Constant.Value
		switch {
		case eq.Extended != nil && eq.Extended.Name == itemformat.RestoreMarkName:
			match = func(f *simtenant.StoredFolder, pos int) bool { return f.Items[pos-1].Marker == want }
		case eq.Field != nil && eq.Field.URI == "message:InternetMessageId":
			match = func(f *simtenant.StoredFolder, pos int) bool {
				return itemformat.MessageID(domain.FormatMIME, s.store.Content(f, pos)) == want
			}
		}
	}
	if req.Traversal != "" && req.Traversal != "Shallow" && req.Traversal != "Associated" {
		c.fault = &faultReply{"ErrorInvalidRequest", "The request is invalid: only Shallow and Associated traversals are supported for items."}
		return "", nil
	}
	type entry struct {
		snap simtenant.Snapshot
		id   string
	}
	s.mu.Lock()
	c.count = len(req.Parents.List)
	lists := make([][]entry, len(req.Parents.List))
	missing := make([]bool, len(req.Parents.List))
	for i, r := range req.Parents.List {
		f := c.resolve(r)
		if f == nil {
			missing[i] = true
			continue
		}
		if t := c.admit(f.Box); t != nil {
			s.mu.Unlock()
			return "", t
		}
		if req.Traversal == "Associated" {
			continue // no associated (hidden) items
		}
		for pos := 1; pos <= len(f.Items); pos++ {
			if !f.Items[pos-1].Deleted && match(f, pos) {
				lists[i] = append(lists[i], entry{s.store.Snapshot(f, pos), s.store.ItemID(f, pos)})
			}
		}
	}
	s.mu.Unlock()
	var b strings.Builder
	for i, list := range lists {
		if missing[i] {
			b.WriteString(failure(op, "ErrorFolderNotFound", "The specified folder could not be found in the store."))
			continue
		}
		for k := len(req.Sort) - 1; k >= 0; k-- {
			field, desc := req.Sort[k].Field.URI, req.Sort[k].Order == "Descending"
			key := func(e entry) string {
				switch field {
				case "item:DateTimeReceived", "item:DateTimeSent", "item:DateTimeCreated", "calendar:Start":
					return e.snap.Facts().Date.UTC().Format(time.RFC3339)
				case "item:Subject":
					return e.snap.Facts().Subject
				}
				return ""
			}
			simtenant.SortByKey(list, key, desc)
		}
		off, maxN := 0, len(list)
		if v := req.Indexed; v != nil {
			if v.Max > 0 {
				maxN = v.Max
			}
			off = min(max(v.Offset, 0), len(list))
			if v.BasePoint == "End" {
				off = max(len(list)-off-maxN, 0)
			}
		}
		end := min(off+maxN, len(list))
		var items strings.Builder
		for _, e := range list[off:end] {
			items.WriteString(itemXML(e.snap, e.id, req.Shape))
		}
		b.WriteString(success(op, `<m:RootFolder IndexedPagingOffset="`+strconv.Itoa(end)+`" TotalItemsInView="`+strconv.Itoa(len(list))+
			`" IncludesLastItemInRange="`+strconv.FormatBool(end == len(list))+`"><t:Items>`+items.String()+`</t:Items></m:RootFolder>`))
	}
	return b.String(), nil
}
