package ews

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
)

type canned struct {
	status   int
	ct       string
	body     string
	truncate bool
}

func cannedSource(t *testing.T, rep canned) *Source {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rep.ct != "" {
			w.Header().Set("Content-Type", rep.ct)
		}
		if rep.truncate {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(rep.status)
			w.Write([]byte(rep.body))
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(rep.status)
		w.Write([]byte(rep.body))
	}))
	t.Cleanup(srv.Close)
	src, err := NewSource(Config{URL: srv.URL + "/EWS/Exchange.asmx", Auth: AuthBasic, Username: "svc", Secret: credential.New("pw-123"),
		Mailboxes: []string{"a@x"}, HTTP: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	src.remember("a@x", "F1", domain.KindMail)
	return src
}

const soapOK = `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>%s</s:Body></s:Envelope>`

func fault(code, text, extra string) string {
	return strings.Replace(soapOK, "%s", `<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:`+code+`</faultcode><faultstring>`+text+
		`</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">`+code+`</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">`+text+`</e:Message>`+extra+`</detail></s:Fault>`, 1)
}

// Every bad reply ends in a classified failure with a clear message.
func TestBadRepliesAreClassified(t *testing.T) {
	busy := `<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>`
	internal := strings.Replace(soapOK, "%s", `<m:SyncFolderItemsResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>`+
		`<m:SyncFolderItemsResponseMessage ResponseClass="Error"><m:MessageText>An internal server error occurred.</m:MessageText><m:ResponseCode>ErrorInternalServerError</m:ResponseCode>`+
		`<m:MessageXml><t:Value Name="InnerErrorResponseCode">ErrorServerBusy</t:Value><t:Value Name="BackOffMilliseconds">300000</t:Value></m:MessageXml></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse>`, 1)
	cases := []struct {
		name  string
		rep   canned
		class domain.FailureClass
		code  string
		wait  time.Duration
		msg   string
	}{
		{"server busy fault", canned{500, "text/xml", fault("ErrorServerBusy", "The server cannot service this request right now.", busy), false}, domain.ClassThrottled, "ErrorServerBusy", 297749 * time.Millisecond, ""},
		{"internal error wrapping server busy", canned{200, "text/xml", internal, false}, domain.ClassThrottled, "ErrorServerBusy", 300 * time.Second, ""},
		{"503 from IIS", canned{503, "text/html", "<html>Service Unavailable</html>", false}, domain.ClassThrottled, "HTTP503", 0, "queue is full"},
		{"connection count", canned{500, "text/xml", fault("ErrorExceededConnectionCount", "You have exceeded the available concurrent connections.", ""), false}, domain.ClassThrottled, "ErrorExceededConnectionCount", 0, ""},
		{"unknown fault code", canned{500, "text/xml", fault("ErrorSomethingNew", "Something new broke.", ""), false}, domain.ClassFatal, "ErrorSomethingNew", 0, "unknown EWS error ErrorSomethingNew"},
		{"invalid sync state", canned{500, "text/xml", fault("ErrorInvalidSyncStateData", "Synchronization state data is corrupt.", ""), false}, domain.ClassResync, "ErrorInvalidSyncStateData", 0, ""},
		{"malformed XML", canned{200, "text/xml", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:X></s:Body>`, false}, domain.ClassTransient, "MalformedReply", 0, "malformed XML"},
		{"truncated body", canned{200, "text/xml", `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Bo`, true}, domain.ClassTransient, "TruncatedReply", 0, "connection broke"},
		{"HTML login page", canned{200, "text/html", `<html><head><title>Outlook</title></head><body><form action="/owa/auth.owa">sign in</form></body></html>`, false}, domain.ClassFatal, "HTMLReply", 0, "login page"},
		{"HTML error page", canned{502, "text/html", `<html>Bad gateway</html>`, false}, domain.ClassTransient, "HTTP502", 0, "HTML page"},
		{"401", canned{401, "text/html", "denied", false}, domain.ClassFatal, "Unauthorized", 0, "refused the basic credentials of svc"},
		{"500 without fault", canned{500, "text/xml", strings.Replace(soapOK, "%s", "", 1), false}, domain.ClassTransient, "HTTP500", 0, "without a SOAP fault"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := cannedSource(t, c.rep)
			_, err := src.List(context.Background(), "a@x", "F1", "")
			fl, ok := err.(*domain.Failure)
			if !ok {
				t.Fatalf("error %v (%T) is not a classified failure", err, err)
			}
			if fl.Class != c.class || fl.Code != c.code || fl.RetryAfter != c.wait || !strings.Contains(fl.Message, c.msg) {
				t.Fatalf("got %v (retry %s), want %s %s %s %q", fl, fl.RetryAfter, c.class, c.code, c.wait, c.msg)
			}
			if strings.Contains(fl.Error(), "pw-123") {
				t.Fatal("the password is in the error")
			}
		})
	}
}

// Per-item results of ExportItems: success, dirty, gone, truncated data.
func TestExportPerItemResults(t *testing.T) {
	msg := func(class, code, data string) string {
		s := `<m:ExportItemsResponseMessage ResponseClass="` + class + `">`
		if code != "NoError" {
			s += `<m:MessageText>x</m:MessageText>`
		}
		s += `<m:ResponseCode>` + code + `</m:ResponseCode>`
		if data != "" {
			s += `<m:ItemId Id="i"/><m:Data>` + data + `</m:Data>`
		}
		return s + `</m:ExportItemsResponseMessage>`
	}
	body := `<m:ExportItemsResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>` +
		msg("Success", "NoError", "QUJD") + msg("Error", "ErrorCorruptData", "") + msg("Error", "ErrorItemNotFound", "") +
		msg("Success", "NoError", "QUJDPT09IFRydW5jYXRlZCBEYXRhID09PQ==") + `</m:ResponseMessages></m:ExportItemsResponse>`
	src := cannedSource(t, canned{200, "text/xml", strings.Replace(soapOK, "%s", body, 1), false})
	var got []domain.Item
	items := []domain.ItemRef{{Position: 1, ID: "a"}, {Position: 2, ID: "b"}, {Position: 3, ID: "c"}, {Position: 4, ID: "d"}, {Position: 5, ID: "e"}}
	if err := src.Fetch(context.Background(), "a@x", "F1", items, func(it domain.Item) error { got = append(got, it); return nil }); err != nil {
		t.Fatal(err)
	}
	classes := []domain.FailureClass{"", domain.ClassDirty, domain.ClassGone, domain.ClassTransient, domain.ClassTransient}
	for i, want := range classes {
		var c domain.FailureClass
		if got[i].Failure != nil {
			c = got[i].Failure.Class
		}
		if c != want {
			t.Fatalf("item %d: %v, want %s", i+1, got[i].Failure, want)
		}
	}
	if string(got[0].Content) != "ABC" {
		t.Fatalf("content %q", got[0].Content)
	}
}

// The schema validation is not a formality: a request broken on purpose
// fails it.
func TestSchemaValidationCatchesABrokenRequest(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not installed (apt-get install libxml2-utils); .ci/run installs it")
	}
	dir := t.TempDir()
	good := syncFolderItemsRequest("F1", "", true)
	// MaxChangesReturned is required and must come last; drop it.
	broken := strings.Replace(good, "<m:MaxChangesReturned>512</m:MaxChangesReturned>", "", 1)
	os.WriteFile(filepath.Join(dir, "good.xml"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.xml"), []byte(broken), 0o644)
	schema := filepath.Join(schemaDir, "messages.xsd")
	if out, err := exec.Command(xmllint, "--noout", "--schema", schema, filepath.Join(dir, "good.xml")).CombinedOutput(); err != nil {
		t.Fatalf("the good request fails: %s", out)
	}
	out, err := exec.Command(xmllint, "--noout", "--schema", schema, filepath.Join(dir, "broken.xml")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MaxChangesReturned") {
		t.Fatalf("the broken request passed validation: %s", out)
	}
}

// OAuth sends the token as a bearer and nothing else; Basic never goes out
// with NTLM (the negotiator starts anonymous).
func TestAuthHeaders(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	for _, auth := range []string{AuthOAuth, AuthNTLM} {
		got = nil
		src, err := NewSource(Config{URL: srv.URL + "/EWS/Exchange.asmx", Auth: auth, Username: "svc@x", Secret: credential.New("tok-or-pw"), Mailboxes: []string{"a@x"}})
		if err != nil {
			t.Fatal(err)
		}
		src.remember("a@x", "F1", domain.KindMail)
		_, err = src.List(context.Background(), "a@x", "F1", "")
		if fl, ok := err.(*domain.Failure); !ok || fl.Code != "Unauthorized" {
			t.Fatalf("%s: %v", auth, err)
		}
		for _, h := range got {
			if auth == AuthOAuth && h != "Bearer tok-or-pw" || auth == AuthNTLM && strings.HasPrefix(h, "Basic ") {
				t.Fatalf("%s sent Authorization %q", auth, h)
			}
		}
	}
}
