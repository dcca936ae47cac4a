// Package graphsim is a Microsoft Graph simulator for Exchange Online: it
// serves a simtenant model over HTTPS with Graph's URLs, JSON shapes, status
// codes, headers and error bodies, an Entra-like token endpoint, and the
// throttling Exchange Online applies (concurrency and requests per window per
// app and mailbox, each $batch sub-request counted). It enforces its limits
// itself, can inject faults, and changes mailboxes while they are listed, so
// that a client is tested against the server it will meet, not a friendly
// one.
package graphsim

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// Folder kinds as Graph groups them.
const (
	kindMail     = domain.KindMail
	kindCalendar = domain.KindCalendar
	kindContacts = domain.KindContacts
)

// Id prefixes: Graph's default REST ids and ImmutableId ids differ, and a
// client asking for immutable ids must get the other form.
const (
	restPrefix      = "AAMkAI"
	immutablePrefix = "AAkALg"
)

// folder is a folder of the shared tenant store.
type folder = simtenant.StoredFolder

// mailbox is a store mailbox with Graph's per-app limits and counts.
type mailbox struct {
	*simtenant.Box
	exchangeID string
	archive    *mailbox // the mailbox's archive, reached only through the mailbox API (beta)
	inFlight   int
	window     *domain.SlidingWindow
	stats      MailboxStats
	admitted   []time.Time // budget units admitted, for utilisation
	// blockedUntil is when the last Retry-After given ends: with
	// graph.throttle_push, a request sent before then lengthens it.
	blockedUntil time.Time
}

func newMailbox(t *simtenant.Tenant, b *simtenant.Box) *mailbox {
	name := "mbx\x00" + strings.ToLower(b.Address)
	if b.ArchiveOf != nil {
		name += "\x00archive"
	}
	sum := sha256.Sum256([]byte(name))
	return &mailbox{Box: b, exchangeID: fmt.Sprintf("MBX:%x@%x", sum[:4], sum[4:8]),
		window: domain.NewSlidingWindow(t.Limits.Requests, time.Duration(t.Limits.Window))}
}

// itemID is the id of the item at pos in the form the client asked for.
func (s *Server) itemID(f *folder, pos int, immutable bool) string {
	id := s.store.ItemID(f, pos)
	if immutable {
		return immutablePrefix + id[len(restPrefix):]
	}
	return id
}

// lookup finds a live item by either id form.
func lookup(m *mailbox, id string) (*folder, int, bool) {
	if !strings.HasPrefix(id, restPrefix) && !strings.HasPrefix(id, immutablePrefix) {
		return nil, 0, false
	}
	return m.Lookup(id)
}
