// Package ews is the Exchange Web Services source for on-premises Exchange
// Server (2016, 2019, Subscription Edition): SOAP 1.1 over HTTPS with Basic,
// NTLM or OAuth, impersonation, the folder tree by SyncFolderHierarchy (public
// folders by Shallow FindFolder), incremental listing by SyncFolderItems, and
// full-fidelity content by ExportItems (or MIME by GetItem). This file builds
// requests and reads replies; it does no I/O.
package ews

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// XML namespaces of SOAP and EWS.
const (
	NSSoap     = "http://schemas.xmlsoap.org/soap/envelope/"
	NSTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	NSMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
	NSErrors   = "http://schemas.microsoft.com/exchange/services/2006/errors"
)

// ServerVersion is the schema version mailvault speaks: the newest the
// published schemas name, understood by Exchange 2013 SP1 and later.
const ServerVersion = "Exchange2013_SP1"

// esc escapes text for an XML attribute or element.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// envelope wraps an operation element. The body element declares the m: and
// t: prefixes itself, so that it is a document of its own for schema
// validation.
func envelope(impersonate string, body string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<soap:Envelope xmlns:soap="` + NSSoap + `" xmlns:t="` + NSTypes + `"><soap:Header>`)
	b.WriteString(`<t:RequestServerVersion Version="` + ServerVersion + `"/>`)
	if impersonate != "" {
		b.WriteString(`<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>` + esc(impersonate) + `</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`)
	}
	b.WriteString(`</soap:Header><soap:Body>`)
	b.WriteString(body)
	b.WriteString(`</soap:Body></soap:Envelope>`)
	return b.Bytes()
}

// op opens an operation element with its namespace declarations.
func op(name, attrs string) string {
	return `<m:` + name + ` xmlns:m="` + NSMessages + `" xmlns:t="` + NSTypes + `"` + attrs + `>`
}

// folderRef is a folder as EWS addresses it: a distinguished name (with the
// mailbox when not impersonating) or an id.
type folderRef struct {
	distinguished string
	mailbox       string
	id            string
}

func (f folderRef) xml() string {
	if f.distinguished != "" {
		if f.mailbox != "" {
			return `<t:DistinguishedFolderId Id="` + esc(f.distinguished) + `"><t:Mailbox><t:EmailAddress>` + esc(f.mailbox) + `</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>`
		}
		return `<t:DistinguishedFolderId Id="` + esc(f.distinguished) + `"/>`
	}
	return `<t:FolderId Id="` + esc(f.id) + `"/>`
}

const folderProps = `<t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURI FieldURI="folder:FolderClass"/>` +
	`<t:FieldURI FieldURI="folder:ParentFolderId"/><t:FieldURI FieldURI="folder:ChildFolderCount"/></t:AdditionalProperties>`

func getFolderRequest(folders []folderRef) string {
	var b strings.Builder
	b.WriteString(op("GetFolder", "") + `<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>`)
	for _, f := range folders {
		b.WriteString(f.xml())
	}
	b.WriteString(`</m:FolderIds></m:GetFolder>`)
	return b.String()
}

func syncFolderHierarchyRequest(root folderRef, syncState string) string {
	s := op("SyncFolderHierarchy", "") + `<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>` + folderProps + `</m:FolderShape>` +
		`<m:SyncFolderId>` + root.xml() + `</m:SyncFolderId>`
	if syncState != "" {
		s += `<m:SyncState>` + esc(syncState) + `</m:SyncState>`
	}
	return s + `</m:SyncFolderHierarchy>`
}

func findFolderRequest(parent folderRef, offset int) string {
	return op("FindFolder", ` Traversal="Shallow"`) + `<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>` + folderProps + `</m:FolderShape>` +
		`<m:IndexedPageFolderView MaxEntriesReturned="1000" Offset="` + strconv.Itoa(offset) + `" BasePoint="Beginning"/>` +
		`<m:ParentFolderIds>` + parent.xml() + `</m:ParentFolderIds></m:FindFolder>`
}

// MaxChangesReturned is the SyncFolderItems page size (the protocol's
// maximum).
const MaxChangesReturned = 512

func syncFolderItemsRequest(folderID, syncState string, calendar bool) string {
	props := `<t:FieldURI FieldURI="item:Size"/><t:FieldURI FieldURI="item:LastModifiedTime"/>`
	if calendar {
		props += `<t:FieldURI FieldURI="calendar:Start"/>`
	}
	s := op("SyncFolderItems", "") + `<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>` + props + `</t:AdditionalProperties></m:ItemShape>` +
		`<m:SyncFolderId><t:FolderId Id="` + esc(folderID) + `"/></m:SyncFolderId>`
	if syncState != "" {
		s += `<m:SyncState>` + esc(syncState) + `</m:SyncState>`
	}
	return s + `<m:MaxChangesReturned>` + strconv.Itoa(MaxChangesReturned) + `</m:MaxChangesReturned></m:SyncFolderItems>`
}

func itemIDs(items []domain.ItemRef) string {
	var b strings.Builder
	b.WriteString(`<m:ItemIds>`)
	for _, it := range items {
		b.WriteString(`<t:ItemId Id="` + esc(it.ID) + `"/>`)
	}
	b.WriteString(`</m:ItemIds>`)
	return b.String()
}

func exportItemsRequest(items []domain.ItemRef) string {
	return op("ExportItems", "") + itemIDs(items) + `</m:ExportItems>`
}

func getItemMIMERequest(items []domain.ItemRef) string {
	return op("GetItem", "") + `<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape>` +
		itemIDs(items) + `</m:GetItem>`
}

// --- replies ---

type envelopeReply struct {
	XMLName xml.Name `xml:"Envelope"`
	Body    struct {
		Fault *soapFault `xml:"Fault"`
		Inner []byte     `xml:",innerxml"`
	} `xml:"Body"`
}

type soapFault struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
	Detail struct {
		ResponseCode string     `xml:"ResponseCode"`
		Message      string     `xml:"Message"`
		MessageXML   messageXML `xml:"MessageXml"`
	} `xml:"detail"`
}

type messageXML struct {
	Values []struct {
		Name  string `xml:"Name,attr"`
		Value string `xml:",chardata"`
	} `xml:"Value"`
}

func (m messageXML) value(name string) string {
	for _, v := range m.Values {
		if v.Name == name {
			return strings.TrimSpace(v.Value)
		}
	}
	return ""
}

// responseMessage is the part every EWS response message shares.
type responseMessage struct {
	Class      string     `xml:"ResponseClass,attr"`
	Code       string     `xml:"ResponseCode"`
	Text       string     `xml:"MessageText"`
	MessageXML messageXML `xml:"MessageXml"`
}

type itemID struct {
	ID        string `xml:"Id,attr"`
	ChangeKey string `xml:"ChangeKey,attr"`
}

type folderXML struct {
	XMLName          xml.Name
	FolderID         itemID `xml:"FolderId"`
	ParentFolderID   itemID `xml:"ParentFolderId"`
	FolderClass      string `xml:"FolderClass"`
	DisplayName      string `xml:"DisplayName"`
	ChildFolderCount int    `xml:"ChildFolderCount"`
}

// changeXML is one change of SyncFolderItems or SyncFolderHierarchy:
// Create/Update hold an item or folder element, Delete an id.
type changeXML struct {
	XMLName   xml.Name
	ItemID    itemID // Delete, ReadFlagChange
	rawItem   *changedItem
	rawFolder *folderXML
}

type changedItem struct {
	ItemID       itemID `xml:"ItemId"`
	Size         int64  `xml:"Size"`
	LastModified string `xml:"LastModifiedTime"`
	Start        string `xml:"Start"`
}

// time is what a time filter ages the item by: an appointment's start,
// anything else's last modification (zero when the server sent neither).
func (c changedItem) time() time.Time {
	for _, v := range []string{c.Start, c.LastModified} {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(v)); err == nil {
			return t
		}
	}
	return time.Time{}
}

// UnmarshalXML reads a change whatever element it wraps.
func (c *changeXML) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	c.XMLName = start.Name
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Local == "ItemId" || t.Name.Local == "FolderId" && c.XMLName.Local == "Delete":
				if err := d.DecodeElement(&c.ItemID, &t); err != nil {
					return err
				}
			case strings.HasSuffix(t.Name.Local, "Folder"):
				var f folderXML
				if err := d.DecodeElement(&f, &t); err != nil {
					return err
				}
				c.rawFolder = &f
			default: // Message, CalendarItem, Contact, Item, ...
				var it changedItem
				if err := d.DecodeElement(&it, &t); err != nil {
					return err
				}
				c.rawItem = &it
			}
		case xml.EndElement:
			return nil
		}
	}
}

type folderList struct {
	List []folderXML `xml:",any"`
}

type changeList struct {
	List []changeXML `xml:",any"`
}

// Replies of the operations mailvault uses; each holds one message per
// requested thing.
type (
	getFolderMessage struct {
		responseMessage
		Folders folderList `xml:"Folders"`
	}
	syncHierarchyMessage struct {
		responseMessage
		SyncState string     `xml:"SyncState"`
		Last      bool       `xml:"IncludesLastFolderInRange"`
		Changes   changeList `xml:"Changes"`
	}
	findFolderMessage struct {
		responseMessage
		Root struct {
			Last    bool       `xml:"IncludesLastItemInRange,attr"`
			Folders folderList `xml:"Folders"`
		} `xml:"RootFolder"`
	}
	syncItemsMessage struct {
		responseMessage
		SyncState string     `xml:"SyncState"`
		Last      bool       `xml:"IncludesLastItemInRange"`
		Changes   changeList `xml:"Changes"`
	}
	exportMessage struct {
		responseMessage
		ItemID itemID `xml:"ItemId"`
		Data   string `xml:"Data"`
	}
	getItemMessage struct {
		responseMessage
		Items struct {
			List []struct {
				ItemID      itemID `xml:"ItemId"`
				MimeContent string `xml:"MimeContent"`
			} `xml:",any"`
		} `xml:"Items"`
	}
)

// messagesOf decodes the response messages of an operation reply body: the
// body's single element holds m:ResponseMessages with one message each.
func messagesOf[T any](inner []byte) ([]T, error) {
	var wrap struct {
		Messages struct {
			List []T `xml:",any"`
		} `xml:"ResponseMessages"`
	}
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if err := d.DecodeElement(&wrap, &se); err != nil {
				return nil, err
			}
			return wrap.Messages.List, nil
		}
	}
}

// Error codes and what they mean for the backup.
var (
	dirtyCodes = map[string]bool{"ErrorCorruptData": true, "ErrorItemCorrupt": true, "ErrorMimeContentConversionFailed": true,
		"ErrorCannotOpenFileAttachment": true, "ErrorInvalidRecipients": true, "ErrorMessageSizeExceeded": true}
	transientCodes = map[string]bool{"ErrorInternalServerTransientError": true, "ErrorTimeoutExpired": true,
		"ErrorMailboxStoreUnavailable": true, "ErrorMailboxMoveInProgress": true, "ErrorBatchProcessingStopped": true,
		"ErrorConnectionFailed": true, "ErrorServerBusy": true, "ErrorInternalServerError": true}
	fatalCodes = map[string]bool{"ErrorAccessDenied": true, "ErrorImpersonateUserDenied": true, "ErrorNonExistentMailbox": true,
		"ErrorFolderNotFound": true, "ErrorInvalidIdMalformed": true, "ErrorSchemaValidation": true, "ErrorInvalidRequest": true,
		"ErrorImpersonationFailed": true, "ErrorInvalidServerVersion": true, "ErrorMailboxConfiguration": true}
)

// serverBusy reads the back-off of a throttled reply: ErrorServerBusy with
// BackOffMilliseconds, or ErrorInternalServerError wrapping one.
func serverBusy(code string, mx messageXML) (time.Duration, bool) {
	inner := mx.value("InnerErrorResponseCode")
	if code != "ErrorServerBusy" && !(code == "ErrorInternalServerError" && inner == "ErrorServerBusy") && code != "ErrorExceededConnectionCount" {
		return 0, false
	}
	ms, err := strconv.ParseInt(mx.value("BackOffMilliseconds"), 10, 64)
	if err != nil || ms < 0 {
		return 0, true // throttled without a hint: the planner backs off
	}
	if ms > domain.MaxRetryAfter.Milliseconds() {
		return domain.MaxRetryAfter, true // and time.Duration(ms) would overflow
	}
	return time.Duration(ms) * time.Millisecond, true
}

// classifyCode maps an EWS response code to a failure.
func classifyCode(code, text string, mx messageXML) *domain.Failure {
	f := &domain.Failure{Code: code, Message: domain.ShortMessage(strings.TrimSpace(text))}
	if wait, busy := serverBusy(code, mx); busy {
		f.Class, f.RetryAfter = domain.ClassThrottled, wait
		if inner := mx.value("InnerErrorResponseCode"); inner != "" {
			f.Code = inner
		}
		return f
	}
	switch {
	case code == "ErrorInvalidSyncStateData" || code == "ErrorInvalidSyncStateDataException":
		f.Class = domain.ClassResync
	case code == "ErrorItemNotFound":
		f.Class = domain.ClassGone
	case dirtyCodes[code]:
		f.Class = domain.ClassDirty
	case transientCodes[code]:
		f.Class = domain.ClassTransient
	case fatalCodes[code]:
		f.Class = domain.ClassFatal
	default:
		f.Class = domain.ClassFatal
		f.Message = domain.ShortMessage(fmt.Sprintf("unknown EWS error %s: %s", code, strings.TrimSpace(text)))
	}
	return f
}

// messageFailure is the failure of one response message, nil on success
// (Warning counts as success: the item is there).
func messageFailure(m responseMessage) *domain.Failure {
	if m.Class != "Error" {
		return nil
	}
	return classifyCode(m.Code, m.Text, m.MessageXML)
}

// truncatedMarker ends an export whose data the server could not finish.
const truncatedMarker = "=== Truncated Data ==="
