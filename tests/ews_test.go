package tests

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/go-ntlmssp"
)

// ewsSim is a `mailvault sim ews` process started through its JSON line.
type ewsSim struct {
	EWSURL       string `json:"ews_url"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	CACert       string `json:"ca_cert"`
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	TokenURL     string `json:"token_url"`

	passwordFile, record string
}

// startEWSSim starts the simulator recording its traffic for validation.
func startEWSSim(t testing.TB, tenantYAML string) *ewsSim { return startEWS(t, tenantYAML, true) }

func startEWS(t testing.TB, tenantYAML string, record bool) *ewsSim {
	t.Helper()
	dir := t.TempDir()
	tenant := writeTenant(t, dir, tenantYAML)
	rec := filepath.Join(dir, "record")
	os.Mkdir(rec, 0o755)
	args := []string{"sim", "ews", "--tenant", tenant, "--dir", dir}
	if record {
		args = append(args, "--record", rec)
	}
	line := startSimProcess(t, args...)
	var s ewsSim
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("sim ews line is not the JSON contract: %v: %q", err, line)
	}
	mustf(t, strings.HasPrefix(s.EWSURL, "https://127.0.0.1:") && strings.HasSuffix(s.EWSURL, "/EWS/Exchange.asmx") && s.Username != "" && s.Password != "" && s.CACert != "",
		"sim ews line: %s", line)
	s.passwordFile, s.record = filepath.Join(dir, "password"), rec
	os.WriteFile(s.passwordFile, []byte(s.Password), 0o600)
	return &s
}

func (s *ewsSim) backup(t testing.TB, data string, extra ...string) (graphReport, result) {
	t.Helper()
	args := append([]string{"backup", "--source", "ews", "--ews-url", s.EWSURL, "--username", s.Username, "--password-file", s.passwordFile,
		"--ca-cert", s.CACert, "--data", data, "--progress", "none", "--format", "json"}, extra...)
	res := mailvault(t, args...)
	var r graphReport
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("backup: exit %d, report is not JSON: %v\nstdout: %s\nstderr: %s", res.code, err, res.stdout, res.stderr)
	}
	mustf(t, !strings.Contains(res.stdout+res.stderr, s.Password), "the password appears in the output")
	return r, res
}

// control calls the simulator's control API (GET without a body).
func (s *ewsSim) control(t testing.TB, path string, body any) []byte {
	t.Helper()
	g := graphSim{GraphURL: strings.TrimSuffix(s.EWSURL, "/EWS/Exchange.asmx") + "/v1.0", ClientSecret: s.Password, CACert: s.CACert}
	return g.control(t, path, body)
}

// ewsStats are the simulator's counts.
type ewsStats struct {
	Requests  int                       `json:"requests"`
	Throttled int                       `json:"throttled"`
	Penalties int                       `json:"penalties"`
	ByCode    map[string]int            `json:"by_code"`
	Mailboxes map[string]ewsMailboxStat `json:"mailboxes"`
}

type ewsMailboxStat struct {
	Requests    int     `json:"requests"`
	Throttled   int     `json:"throttled"`
	Penalties   int     `json:"penalties"`
	Utilisation float64 `json:"utilisation"`
}

func (s *ewsSim) stats(t testing.TB) ewsStats {
	t.Helper()
	var st ewsStats
	if err := json.Unmarshal(s.control(t, "/_sim/stats", nil), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// validateRecorded runs every request and response the simulator saw
// through the EWS schemas; it returns xmllint's complaints.
func validateRecorded(t testing.TB, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
	mustf(t, len(files) > 0, "the simulator recorded nothing")
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not installed (apt-get install libxml2-utils); .ci/run installs it")
	}
	out, err := exec.Command(xmllint, append([]string{"--noout", "--schema", "testdata/ews-schema/messages.xsd"}, files...)...).CombinedOutput()
	if err == nil {
		return ""
	}
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasSuffix(l, " validates") && len(bad) < 10 {
			bad = append(bad, l)
		}
	}
	return strings.Join(bad, "\n")
}

const ewsTenant = `seed: 12
mailboxes:
  - address: olga@contoso.test
    folders:
      - path: Inbox
        items: 700
        size: {min: 1KB, max: 3KB}
      - path: Inbox/Travel
        items: 15
      - path: Calendar
        kind: calendar
        items: 40
      - path: Contacts
        kind: contacts
        items: 25
  - address: piet@contoso.test
    folders:
      - path: Inbox
        items: 120
public_folders:
  - path: Projects
    items: 40
  - path: Projects/2026
    items: 12
  - path: HR
    items: 9
`

// Mailboxes and public folders through the real EWS client (NTLM and
// impersonation); a second run is incremental; export blobs round-trip byte
// for byte through storage; every request and response is schema-valid.
func TestEWSBackupIncrementalAndSchemaValid(t *testing.T) {
	sim := startEWSSim(t, ewsTenant)
	data := filepath.Join(t.TempDir(), "data")
	common := []string{"--impersonate", "--mailbox", "olga@contoso.test", "--mailbox", "piet@contoso.test", "--public-folder", "Projects/**"}
	total := 700 + 15 + 40 + 25 + 120 + 40 + 12
	r1, res := sim.backup(t, data, common...)
	mustf(t, res.code == 0, "exit %d: %s", res.code, res.stderr)
	mustf(t, r1.ItemsStored == total && r1.FoldersSkipped == 0, "first run: %+v", r1)

	// Every stored file is exactly one blob the server exported.
	exported := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(sim.record, "*-response-ExportItemsResponse.xml"))
	dataRe := regexp.MustCompile(`<m:Data>([^<]*)</m:Data>`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range dataRe.FindAllSubmatch(b, -1) {
			blob, err := base64.StdEncoding.DecodeString(string(m[1]))
			mustf(t, err == nil, "bad base64 in %s", f)
			exported[string(blob)] = true
		}
	}
	stored := 0
	for _, v := range storedVersions(t, filepath.Join(data, "storage")) {
		mustf(t, exported[string(v.Content)] && v.Format == "ews-export", "%s/%s %s is not byte for byte a blob the server exported", v.Mailbox, v.FolderPath, v.ItemID)
		stored++
	}
	mustf(t, stored == total, "storage holds %d items, want %d", stored, total)

	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox", "add": 4, "modify": 3, "delete": 2})
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "", "folder": "Projects/2026", "add": 1})
	r2, res := sim.backup(t, data, common...)
	mustf(t, res.code == 0, "incremental exit %d: %s", res.code, res.stderr)
	mustf(t, r2.ItemsScanned == 4+3+1 && r2.ItemsStored == 8 && r2.ItemsRemoved == 2, "incremental: %+v", r2)

	// A new public folder under a /** selection is taken without changing
	// the job; HR was never selected.
	r3, res := sim.backup(t, data, append(common, "--public-folder", "HR")...)
	mustf(t, res.code == 0 && r3.ItemsStored == 9, "adding HR: stored %d: %s", r3.ItemsStored, res.stderr)

	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("schema validation failed:\n%s", msg)
	}
}

// One item failing alone in a 100-item ExportItems costs that one request
// and quarantines that item; failing the whole request, it is isolated by
// the split rule.
func TestEWSDirtyItemPerItemAndPerRequest(t *testing.T) {
	sim := startEWSSim(t, `seed: 13
mailboxes:
  - address: quinn@contoso.test
    folders:
      - path: Inbox
        items: 100
        dirty: [37]
        dirty_mode: item
      - path: Archive
        items: 100
        dirty: [37]
        dirty_mode: request
`)
	data := filepath.Join(t.TempDir(), "data")
	r, res := sim.backup(t, data, "--mailbox", "quinn@contoso.test")
	mustf(t, res.code == 3, "exit %d: %s", res.code, res.stderr)
	mustf(t, r.ItemsStored == 198 && r.ItemsQuarantined == 2, "stored %d quarantined %d", r.ItemsStored, r.ItemsQuarantined)
	replay := mailvault(t, "replay", "last", "--data", data).stdout
	inbox := fetchLines(t, replay, "quinn@contoso.test / Inbox")
	mustf(t, len(inbox) == 1 && strings.HasSuffix(inbox[0], "– success"), "per-item failure: %v", inbox)
	archive := fetchLines(t, replay, "quinn@contoso.test / Archive")
	mustf(t, len(archive) > 5 && strings.HasSuffix(archive[0], "– failed"), "per-request failure was not isolated: %v", archive)
	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("schema validation failed:\n%s", msg)
	}
}

// Wrong password over NTLM and over Basic: a clear error, exit 1, nothing
// stored, the password nowhere.
func TestEWSBadPassword(t *testing.T) {
	sim := startEWSSim(t, ewsTenant)
	for _, auth := range []string{"ntlm", "basic"} {
		os.WriteFile(sim.passwordFile, []byte("wrong-password-42"), 0o600)
		data := filepath.Join(t.TempDir(), "data")
		r, res := sim.backup(t, data, "--auth", auth, "--mailbox", "olga@contoso.test")
		mustf(t, res.code == 1 && r.ItemsStored == 0, "%s: exit %d", auth, res.code)
		mustf(t, strings.Contains(res.stderr, "refused the "+auth+" credentials"), "%s: unclear error: %s", auth, res.stderr)
		mustf(t, !strings.Contains(res.stdout+res.stderr, "wrong-password-42"), "%s: the password leaked", auth)
	}
	res := mailvault(t, "backup", "--source", "ews", "--ews-url", sim.EWSURL, "--username", "x", "--password", "y")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "--password-file"), "a password flag value was not refused: %d %s", res.code, res.stderr)
}

// Overload in each of Exchange's three shapes, and injected faults, end in
// a complete backup: the client honours each back-off and retries.
func TestEWSThrottleShapesAndFaults(t *testing.T) {
	for _, c := range []struct{ name, extra string }{
		{"server_busy", "ews: {throttle_shape: server_busy}\nlimits: {concurrency: 4, requests: 6, window: 10s}"},
		{"http503", "ews: {throttle_shape: http503}\nlimits: {concurrency: 4, requests: 6, window: 10s}"},
		{"internal_error", "ews: {throttle_shape: internal_error}\nlimits: {concurrency: 4, requests: 6, window: 10s}"},
		{"max_concurrency", "ews: {max_concurrency: 1}"},
		{"storm", "faults: {storm: {every: 5, length: 2, status: 503}}"},
		{"drop", "faults: {drop: {every: 7}}"},
		{"truncate", "faults: {truncate: {every: 4}}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sim := startEWSSim(t, "seed: 14\n"+c.extra+`
mailboxes:
  - address: sam@contoso.test
    folders:
      - path: Inbox
        items: 400
        size: {min: 1KB, max: 2KB}
      - path: Archive
        items: 200
        size: {min: 1KB, max: 2KB}
`)
			data := filepath.Join(t.TempDir(), "data")
			r, res := sim.backup(t, data, "--mailbox", "sam@contoso.test", "--ews-batch", "50", "--throttle-patience", "1m")
			mustf(t, res.code == 0 && r.ItemsStored == 600, "exit %d stored %d: %s %v", res.code, r.ItemsStored, res.stderr, r.Errors)
			if strings.HasPrefix(c.extra, "ews: {throttle") {
				mustf(t, r.ThrottledRequests > 0, "the server never throttled: %+v", r)
			}
		})
	}
}

// GetItem with MIME content instead of ExportItems.
func TestEWSMIMEContent(t *testing.T) {
	sim := startEWSSim(t, ewsTenant)
	data := filepath.Join(t.TempDir(), "data")
	r, res := sim.backup(t, data, "--mailbox", "piet@contoso.test", "--ews-content", "mime", "--auth", "basic")
	mustf(t, res.code == 0 && r.ItemsStored == 120, "exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
	n := 0
	for _, v := range storedVersions(t, filepath.Join(data, "storage")) {
		mustf(t, bytes.HasPrefix(v.Content, []byte("From: ")) && v.Format == "mime", "%s is not MIME", v.ItemID)
		n++
	}
	mustf(t, n == 120, "%d MIME files", n)
	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("schema validation failed:\n%s", msg)
	}
}

// The service account by each of its names (its user principal name, the
// down-level logon name the README uses, CONTOSO\svc-backup, and the same
// with the DNS domain), over NTLM and Basic; and an NTLM handshake carried
// by a GET, then a SOAP POST on the same connection, as some clients do.
func TestEWSAccountNamesAndGETHandshake(t *testing.T) {
	t.Parallel()
	sim := startEWSSim(t, ewsTenant)
	local, _, _ := strings.Cut(sim.Username, "@")
	for _, name := range []string{`CONTOSO\` + local, `contoso.test\` + local, sim.Username} {
		for _, auth := range []string{"ntlm", "basic"} {
			res := mailvault(t, "backup", "--source", "ews", "--ews-url", sim.EWSURL, "--username", name, "--password-file", sim.passwordFile,
				"--ca-cert", sim.CACert, "--data", filepath.Join(t.TempDir(), "data"), "--progress", "none", "--format", "json",
				"--auth", auth, "--mailbox", "olga@contoso.test")
			var r graphReport
			mustf(t, json.Unmarshal([]byte(res.stdout), &r) == nil && res.code != 1 && r.ItemsStored > 0, "%s over %s: exit %d: %s", name, auth, res.code, res.stderr)
		}
	}

	hc := (&graphSim{CACert: sim.CACert}).client(t)
	hc.Transport = ntlmssp.Negotiator{RoundTripper: hc.Transport}
	get, _ := http.NewRequest(http.MethodGet, sim.EWSURL, nil)
	get.SetBasicAuth(`CONTOSO\`+local, sim.Password) // the Negotiator turns these into NTLM
	resp, err := hc.Do(get)
	mustf(t, err == nil, "GET: %v", err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustf(t, resp.StatusCode == 200 && strings.Contains(string(page), "Services.wsdl"), "GET after NTLM: %d %s", resp.StatusCode, page)
	soap := `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">` +
		`<soap:Header><t:RequestServerVersion Version="Exchange2016"/></soap:Header><soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>` +
		`<m:FolderIds><t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>olga@contoso.test</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder></soap:Body></soap:Envelope>`
	post, _ := http.NewRequest(http.MethodPost, sim.EWSURL, strings.NewReader(soap))
	post.Header.Set("Content-Type", "text/xml; charset=utf-8")
	post.SetBasicAuth(`CONTOSO\`+local, sim.Password)
	resp, err = hc.Do(post)
	mustf(t, err == nil, "POST: %v", err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustf(t, resp.StatusCode == 200 && strings.Contains(string(body), `ResponseClass="Success"`), "POST after the GET: %d %s", resp.StatusCode, body)

	// An error reply is schema-valid too: GetItem of an id the store never
	// had answers ErrorItemNotFound with its (empty) Items.
	getItem := strings.Replace(strings.Replace(soap, `<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>`,
		`<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>`, 1),
		`<m:FolderIds><t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>olga@contoso.test</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>`,
		`<m:ItemIds><t:ItemId Id="AAMkAGnever00000000000000000000000001"/></m:ItemIds></m:GetItem>`, 1)
	post, _ = http.NewRequest(http.MethodPost, sim.EWSURL, strings.NewReader(getItem))
	post.Header.Set("Content-Type", "text/xml; charset=utf-8")
	post.SetBasicAuth(`CONTOSO\`+local, sim.Password)
	resp, err = hc.Do(post)
	mustf(t, err == nil, "GetItem: %v", err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	mustf(t, strings.Contains(string(body), `ResponseClass="Error"`) && strings.Contains(string(body), "<m:Items/>"), "GetItem of a missing id: %d %s", resp.StatusCode, body)
	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("schema validation failed:\n%s", msg)
	}
}

// OAuth, as Exchange Online's EWS takes it: a client-credentials token for
// https://outlook.office365.com/.default from the simulator's Entra, given
// to `--auth oauth` in the password file, backs up with impersonation; a
// token for another resource (Graph's) is refused with a clear error.
func TestEWSOAuthBearerTokens(t *testing.T) {
	t.Parallel()
	sim := startEWSSim(t, ewsTenant)
	hc := (&graphSim{CACert: sim.CACert}).client(t)
	token := func(scope string) string {
		resp, err := hc.PostForm(sim.TokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {sim.ClientID},
			"client_secret": {sim.ClientSecret}, "scope": {scope}})
		mustf(t, err == nil, "token: %v", err)
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		mustf(t, resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&tok) == nil && tok.AccessToken != "", "token for %s: %d", scope, resp.StatusCode)
		return tok.AccessToken
	}
	for _, c := range []struct {
		scope string
		ok    bool
	}{{"https://outlook.office365.com/.default", true}, {"https://graph.microsoft.com/.default", false}} {
		file, tok := filepath.Join(t.TempDir(), "token"), token(c.scope)
		os.WriteFile(file, []byte(tok), 0o600)
		res := mailvault(t, "backup", "--source", "ews", "--ews-url", sim.EWSURL, "--auth", "oauth", "--password-file", file,
			"--ca-cert", sim.CACert, "--data", filepath.Join(t.TempDir(), "data"), "--progress", "none", "--format", "json",
			"--impersonate", "--mailbox", "olga@contoso.test")
		var r graphReport
		json.Unmarshal([]byte(res.stdout), &r)
		mustf(t, !strings.Contains(res.stdout+res.stderr, tok), "the token was printed")
		if c.ok {
			mustf(t, res.code != 1 && r.ItemsStored > 0, "a token for EWS: exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
		} else {
			mustf(t, res.code == 1 && r.ItemsStored == 0 && strings.Contains(res.stderr, "refused the OAuth token (HTTP 401: 2000001;reason=\"The audience claim value is invalid"), "a token for Graph: exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
		}
	}
}
