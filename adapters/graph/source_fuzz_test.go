package graph

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailvault/mailvault/adapters/graphsim"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/fuzzscript"
)

const fuzzHost = "graph.fuzz.test"

// driveSource is fuzzscript.Drive, with the folder tree's changes asked
// too (the mailbox API's folder delta).
func driveSource(t testing.TB, ctx context.Context, src *Source) {
	fuzzscript.Drive(t, ctx, src, func(mailbox string) { _, _ = src.FolderChanges(ctx, mailbox, domain.FolderTree{}) })
}

// staticTokens hands out one token without asking anyone.
func staticTokens() *Tokens {
	return &Tokens{fetch: func() (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "fuzz-token", Expiry: time.Now().Add(time.Hour)}, nil
	}, early: time.Minute, now: time.Now}
}

// recordedSession is a backup's conversation with the Graph simulator, in
// one content mode, as a script whose links name the fuzz host.
func recordedSession(t testing.TB, mode string) []byte {
	tn, err := simtenant.Parse([]byte(`seed: 3
mailboxes:
  - address: fuzz@contoso.test
    folders:
      - path: Inbox
        items: 4
        dirty: [2]
        size: {min: 300B, max: 600B}
      - path: Inbox/Sub
        items: 2
        size: {min: 300B, max: 600B}
      - path: Calendar
        kind: calendar
        items: 2
        size: {min: 300B, max: 900B}
      - path: Contacts
        kind: contacts
        items: 2
        size: {min: 300B, max: 600B}
`))
	if err != nil {
		t.Fatal(err)
	}
	sim := graphsim.New(tn, graphsim.Options{Credentials: graphsim.Credentials{TenantID: "t", ClientID: "c", ClientSecret: "s"}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	tokens, err := NewTokens(context.Background(), AuthConfig{TenantID: "t", ClientID: "c", Secret: NewSecret("s"),
		TokenURL: srv.URL + "/t/oauth2/v2.0/token", HTTP: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &fuzzscript.Recorder{Base: srv.Client().Transport}
	src, err := NewSource(Config{GraphURL: srv.URL + "/v1.0", HTTP: &http.Client{Transport: rec}, Tokens: tokens,
		Content: map[string]string{domain.KindMail: mode, domain.KindCalendar: mode, domain.KindContacts: mode}})
	if err != nil {
		t.Fatal(err)
	}
	driveSource(t, context.Background(), src)
	u, _ := url.Parse(srv.URL)
	return bytes.ReplaceAll(rec.Script(), []byte(u.Host), []byte(fuzzHost))
}

// Whatever a server answers (any status, any body, links anywhere) the
// Graph source returns errors or data, never panics, never sends a request
// (with its token) to another host, and never delivers an item it was not
// asked for. Seeded with recorded conversations with the simulator.
func FuzzGraphSource(f *testing.F) {
	modes := []string{ModeExport, ModeBatch, ModeGet}
	for i, m := range modes {
		f.Add(recordedSession(f, m), uint8(i))
	}
	f.Fuzz(func(t *testing.T, script []byte, mode uint8) {
		server := fuzzscript.New(script, fuzzHost, "application/json")
		m := modes[int(mode)%len(modes)]
		src, err := NewSource(Config{GraphURL: "https://" + fuzzHost + "/v1.0", HTTP: &http.Client{Transport: server}, Tokens: staticTokens(),
			Content: map[string]string{domain.KindMail: m, domain.KindCalendar: m, domain.KindContacts: m}, MaxReply: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		driveSource(t, ctx, src)
		if len(server.Foreign) > 0 {
			t.Fatalf("requests went to %v", server.Foreign)
		}
	})
}

// A server announcing child folders without end is walked to Exchange's
// depth limit and no further, with an error naming the limit.
func TestEndlessFolderTreeStops(t *testing.T) {
	reply := []byte("\x00" + `{"value":[{"id":"f","displayName":"Deeper","childFolderCount":1}]}`)
	var script [][]byte
	for range maxFolderDepth + 10 {
		script = append(script, reply)
	}
	server := fuzzscript.New(bytes.Join(script, []byte("\n\x00--\x00\n")), fuzzHost, "application/json")
	server.MaxRequests = maxFolderDepth + 10
	src, err := NewSource(Config{GraphURL: "https://" + fuzzHost + "/v1.0", HTTP: &http.Client{Transport: server}, Tokens: staticTokens(),
		Mailboxes: []string{"a@contoso.test"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Folders(context.Background(), "a@contoso.test")
	if fl := failureOf(t, err); fl.Code != "FolderTreeTooDeep" {
		t.Fatalf("failure %+v", fl)
	}
}
