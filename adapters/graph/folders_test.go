package graph

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// The hierarchy delta: a full round over pages, folder classes mapped to
// kinds, removals, a change round from the stored deltaLink that needs no
// settings/exchange, a forgotten state listed again in full, and no
// permission turned into "walk the folder lists instead".
func TestFolderChanges(t *testing.T) {
	ctx := context.Background()
	const base = "/v1.0/admin/exchange/mailboxes/MBX:1@2/folders/delta"
	_, src := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange": jsonReply(`{"primaryMailboxId":"MBX:1@2"}`),
		base: jsonReply(`{"value":[{"id":"I","displayName":"Inbox","parentFolderId":"R","type":"IPF.Note","wellKnownName":"inbox"},` +
			`{"id":"T","displayName":"Tasks","parentFolderId":"R","type":"IPF.Task","wellKnownName":"tasks"}],"@odata.nextLink":"BASE/v1.0/fp2"}`),
		"/v1.0/fp2": jsonReply(`{"value":[{"id":"C","displayName":"Calendar","parentFolderId":"R","type":"IPF.Appointment"},` +
			`{"id":"K","displayName":"Friends","parentFolderId":"R","type":"IPF.Contact"},{"id":"S","displayName":"Search","parentFolderId":"I","type":"IPF.Note.OutlookHomepage"}],` +
			`"@odata.deltaLink":"BASE` + base + `?$deltatoken=t1"}`),
	})
	full, err := src.FolderChanges(ctx, "a@x", domain.FolderTree{})
	if err != nil || !full.Full || full.From != "" || len(full.Changed) != 5 || full.Token == "" {
		t.Fatalf("first discovery: %+v %v", full, err)
	}
	tree, _ := domain.FolderTree{}.Apply(full)
	kinds := map[string]string{}
	for _, f := range tree.Folders() {
		kinds[f.Path] = f.Kind
	}
	if len(kinds) != 5 || kinds["Inbox"] != domain.KindMail || kinds["Calendar"] != domain.KindCalendar || kinds["Friends"] != domain.KindContacts || kinds["Inbox/Search"] != domain.KindMail || kinds["Tasks"] != domain.KindTasks {
		t.Fatalf("folders: %+v", kinds)
	}
	if k, err := src.kind("a@x", "C"); err != nil || k != domain.KindCalendar {
		t.Fatalf("the source does not route the calendar: %q %v", k, err)
	}

	// A new run (a new source): the stored deltaLink is the only request,
	// and its mailbox id serves exportItems.
	calls := map[string]int{}
	_, next := serve(t, map[string]recorded{
		base: jsonReply(`{"value":[{"id":"T","@removed":{"reason":"deleted"}}],"@odata.deltaLink":"BASE` + base + `?$deltatoken=t2"}`),
	})
	next.c.http.Transport = countingTransport{base: next.c.http.Transport, calls: calls}
	stored := domain.FolderTree{Token: full.Token, Nodes: tree.Nodes}
	stored.Token = "https://" + next.c.base.Host + base + "?$deltatoken=t1"
	ch, err := next.FolderChanges(ctx, "a@x", stored)
	if err != nil || ch.Full || ch.From != domain.TokenDigest(stored.Token) || len(ch.Removed) != 1 || calls[base] != 1 || len(calls) != 1 {
		t.Fatalf("change round: %+v %v, requests %v", ch, err, calls)
	}
	if id, err := next.exchangeID(ctx, "a@x"); err != nil || id != "MBX:1@2" {
		t.Fatalf("mailbox id from the deltaLink: %q %v", id, err)
	}
	if k, err := next.kind("a@x", "I"); err != nil || k != domain.KindMail {
		t.Fatalf("a folder of the stored tree is not routed: %q %v", k, err)
	}

	// The server forgot the state: the hierarchy is listed again in full.
	_, forgot := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange": jsonReply(`{"primaryMailboxId":"MBX:1@2"}`),
		"/v1.0/gone":                        {status: 410, header: map[string]string{"Content-Type": jsonCT}, body: `{"error":{"code":"SyncStateNotFound","message":"gone"}}`},
		base:                                jsonReply(`{"value":[{"id":"I","displayName":"Inbox","parentFolderId":"R","type":"IPF.Note"}],"@odata.deltaLink":"BASE` + base + `?$deltatoken=t3"}`),
	})
	ch, err = forgot.FolderChanges(ctx, "a@x", domain.FolderTree{Token: "https://" + forgot.c.base.Host + "/v1.0/gone?$deltatoken=x", Nodes: tree.Nodes})
	if err != nil || !ch.Full || len(ch.Changed) != 1 {
		t.Fatalf("after a forgotten state: %+v %v", ch, err)
	}

	// No MailboxFolder.Read.All: discovery walks the folder lists.
	_, denied := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange": jsonReply(`{"primaryMailboxId":"MBX:1@2"}`),
		base:                                {status: 403, header: map[string]string{"Content-Type": jsonCT}, body: `{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}`},
	})
	for range 2 {
		if _, err := denied.FolderChanges(ctx, "a@x", domain.FolderTree{}); !errors.Is(err, pipeline.ErrFolderTrackingUnavailable) {
			t.Fatalf("denied: %v", err)
		}
	}

	// A nextLink to another host is refused.
	_, hostile := serve(t, map[string]recorded{
		"/beta/users/a@x/settings/exchange": jsonReply(`{"primaryMailboxId":"MBX:1@2"}`),
		base:                                jsonReply(`{"value":[],"@odata.nextLink":"https://graph.evil.test/v1.0/x"}`),
	})
	if _, err := hostile.FolderChanges(ctx, "a@x", domain.FolderTree{}); failureOf(t, err).Code != "ForeignLink" {
		t.Fatalf("foreign nextLink: %v", err)
	}
}

// countingTransport counts the requests per path.
type countingTransport struct {
	base  http.RoundTripper
	calls map[string]int
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls[r.URL.Path]++
	return c.base.RoundTrip(r)
}
