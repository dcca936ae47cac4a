package domain

import (
	"net/url"
	"strings"
	"time"
)

// ItemKey identifies one version of one item in storage.
type ItemKey struct {
	// Source is the identity of the server the item was backed up from
	// (see SourceIdentity): one mailbox backed up through two connections
	// is two independent backups.
	Source     string
	Mailbox    string
	FolderPath string
	FolderID   string
	ItemID     string
	ChangeKey  string
	// Kind is the folder's kind (mail, calendar, contacts, tasks, notes) and Format how
	// the content is encoded (see the Format constants), so that restore
	// and export know what they read back.
	Kind   string
	Format string
	// Time is when the item was last modified (when an appointment
	// occurs), zero when the source does not say.
	Time time.Time
}

// PutResult says what storing an item did.
type PutResult struct {
	SHA256  string
	Size    int64
	Existed bool
	// NewBytes is what the storage wrote for this item after compression
	// and deduplication: 0 when every piece of it was stored already.
	NewBytes int64
}

// Content formats: how a source encodes an item's content.
const (
	// FormatMIME is an RFC 5322 message (for calendar and contact items of
	// the simulators, a MIME wrapper around iCalendar or vCard).
	FormatMIME = "mime"
	// FormatGraphJSON is a Graph resource (event or contact) as JSON.
	FormatGraphJSON = "graph-json"
	// FormatGraphExport is Graph's exportItems stream (FastTransfer).
	FormatGraphExport = "graph-export"
	// FormatEWSExport is EWS ExportItems data, restorable with UploadItems.
	FormatEWSExport = "ews-export"
)

// StoredVersion is what the resume index knows of a stored item.
type StoredVersion struct {
	ChangeKey string `json:"ck"`
	Pass      string `json:"pass"`
}

// QuarantineRecord is what the quarantine remembers of a dirty item.
type QuarantineRecord struct {
	// Scope is the backup it belongs to (storage and source).
	Scope       string    `json:"scope,omitempty"`
	Mailbox     string    `json:"mailbox"`
	Folder      string    `json:"folder"`
	FolderID    string    `json:"folder_id"`
	ItemID      string    `json:"item_id"`
	Position    int       `json:"pos"`
	Code        string    `json:"code"`
	Inferred    bool      `json:"inferred,omitempty"`
	First       time.Time `json:"first"`
	LastAttempt time.Time `json:"last_attempt"`
	Attempts    int       `json:"attempts"`
}

// SourceIdentity names the server a backup reads from, whatever the
// connection is called: the source type and the tenant (Graph) or the
// server's URL (EWS), so that two connections to the same tenant share one
// backup and a Graph and an EWS backup of one mailbox stay apart.
func SourceIdentity(sourceType, tenantOrServer string) string {
	s := strings.TrimSpace(tenantOrServer)
	switch sourceType {
	case "graph":
		s = strings.ToLower(s)
	case "ews":
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
			u.Path = strings.TrimRight(u.Path, "/")
			u.RawQuery, u.Fragment, u.User = "", "", nil
			s = u.String()
		}
	}
	return sourceType + ":" + s
}

// SyncState is where a completed folder's next pass lists changes from
// (Graph's deltaLink, EWS's SyncState), and when the source handed it out.
type SyncState struct {
	Token  string
	Issued time.Time // zero when not known (kept before issue times were)
}

// TokenRefresh is how long a change token that found nothing new is used
// again instead of the one the server answered with. A listing from an
// older token returns exactly what one from the newer would (nothing
// changed between the two), so keeping it writes nothing for a folder or
// a folder tree without changes; a day bounds its age, since servers
// expire tokens (Graph answers 410 syncStateNotFound, and a folder then
// lists again in full) and document no lifetime for mail.
const TokenRefresh = 24 * time.Hour

// KeepToken says whether a token issued at issued may be used again at
// now when the changes it lists are none.
func KeepToken(issued, now time.Time) bool {
	return !issued.IsZero() && !now.Before(issued) && now.Sub(issued) < TokenRefresh
}
