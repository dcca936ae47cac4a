package ews

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ewssim"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/internal/fuzzscript"
)

const fuzzHost = "ews.fuzz.test"

// recordedSession is a backup's conversation with the EWS simulator, as a
// script.
func recordedSession(t testing.TB, content string) []byte {
	tn, err := simtenant.Parse([]byte(`seed: 4
mailboxes:
  - address: fuzz@contoso.test
    folders:
      - path: Inbox
        items: 4
        dirty: [2]
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
	sim := ewssim.New(tn, ewssim.Options{})
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ConnContext = ewssim.ConnContext
	srv.Start()
	defer srv.Close()
	user, pass := sim.Account()
	rec := &fuzzscript.Recorder{Base: srv.Client().Transport}
	src, err := NewSource(Config{URL: srv.URL + "/EWS/Exchange.asmx", Auth: AuthBasic, Username: user, Secret: credential.New(pass),
		Impersonate: true, Mailboxes: []string{"fuzz@contoso.test"}, Content: content, HTTP: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	fuzzscript.Drive(t, context.Background(), src, nil)
	u, _ := url.Parse(srv.URL)
	return bytes.ReplaceAll(rec.Script(), []byte(u.Host), []byte(fuzzHost))
}

// Whatever SOAP (or anything else) a server answers, the EWS source returns
// errors or data: it never panics, never sends the account's password to
// another host, and never delivers an item it was not asked for.
// BackOffMilliseconds of any size is read as a bounded wait. Seeded with
// recorded conversations with the simulator.
func FuzzEWSSource(f *testing.F) {
	contents := []string{ModeExport, ModeMIME}
	for i, c := range contents {
		f.Add(recordedSession(f, c), uint8(i))
	}
	f.Fuzz(func(t *testing.T, script []byte, content uint8) {
		server := fuzzscript.New(script, fuzzHost, "text/xml; charset=utf-8")
		src, err := NewSource(Config{URL: "https://" + fuzzHost + "/EWS/Exchange.asmx", Auth: AuthBasic, Username: "svc", Secret: credential.New("pw"),
			Impersonate: true, Mailboxes: []string{"fuzz@contoso.test"}, Content: contents[int(content)%len(contents)],
			HTTP: &http.Client{Transport: server}, MaxReply: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fuzzscript.Drive(t, ctx, src, nil)
		if len(server.Foreign) > 0 {
			t.Fatalf("requests went to %v", server.Foreign)
		}
	})
}
