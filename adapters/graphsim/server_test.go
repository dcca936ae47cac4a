package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const tenantYAML = `seed: 3
limits: {concurrency: 4, requests: 30, window: 10s}
mailboxes:
  - address: lee@contoso.test
    folders:
      - path: Inbox
        items: 25
        dirty: [3]
        dirty_mode: item
        size: {min: 1KB, max: 1KB}
      - path: Calendar
        kind: calendar
        items: 2
`

type harness struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	clock *fakeClock
	token string
}

func newHarness(t *testing.T, yaml string) *harness {
	tn, err := simtenant.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	s := New(tn, Options{Now: clock.Now, TokenTTL: time.Hour})
	h := &harness{t: t, srv: s, http: httptest.NewServer(s), clock: clock}
	t.Cleanup(h.http.Close)
	c := s.Credentials()
	resp, body := h.postForm("/"+c.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID},
		"client_secret": {c.ClientSecret}, "scope": {"https://graph.microsoft.com/.default"}})
	var tok struct {
		Type      string `json:"token_type"`
		ExpiresIn int    `json:"expires_in"`
		Token     string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &tok) != nil || tok.Type != "Bearer" || tok.ExpiresIn != 3600 || tok.Token == "" {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	h.token = tok.Token
	return h
}

func (h *harness) postForm(path string, form url.Values) (*http.Response, []byte) {
	resp, err := http.PostForm(h.http.URL+path, form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (h *harness) do(method, path string, body []byte, header ...string) (*http.Response, []byte) {
	req, _ := http.NewRequest(method, h.http.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func errorCode(b []byte) string {
	var e graphError
	json.Unmarshal(b, &e)
	return e.Error.Code
}

func TestTokenEndpointRejectsAsEntra(t *testing.T) {
	h := newHarness(t, tenantYAML)
	c := h.srv.Credentials()
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		code   string
		aadsts string
	}{
		{"wrong secret", "/" + c.TenantID + "/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {"nope"}, "scope": {"https://graph.microsoft.com/.default"}}, 401, "invalid_client", "AADSTS7000215"},
		{"unknown client", "/" + c.TenantID + "/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"x"}, "client_secret": {c.ClientSecret}, "scope": {"https://graph.microsoft.com/.default"}}, 400, "unauthorized_client", "AADSTS700016"},
		{"unknown tenant", "/other/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}}, 400, "invalid_request", "AADSTS90002"},
		{"bad scope", "/" + c.TenantID + "/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "scope": {"Mail.Read"}}, 400, "invalid_scope", "AADSTS1002012"},
		{"two resources", "/" + c.TenantID + "/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "scope": {"https://graph.microsoft.com/.default https://outlook.office365.com/.default"}}, 400, "invalid_scope", "AADSTS1002012"},
		{"grant type", "/" + c.TenantID + "/oauth2/v2.0/token", url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type", "AADSTS70003"},
	} {
		resp, body := h.postForm(tc.path, tc.form)
		var e struct {
			Error string `json:"error"`
			Desc  string `json:"error_description"`
			Codes []int  `json:"error_codes"`
		}
		json.Unmarshal(body, &e)
		if resp.StatusCode != tc.status || e.Error != tc.code || !strings.HasPrefix(e.Desc, tc.aadsts+":") || len(e.Codes) != 1 {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	// Graph itself: no token, a bad one, an expired one.
	h.token = ""
	if resp, b := h.do("GET", "/v1.0/users", nil); resp.StatusCode != 401 || errorCode(b) != "InvalidAuthenticationToken" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %s", resp.StatusCode, b)
	}
}

// What MSAL and azidentity do before and for a client-credentials token:
// the authority's instance discovery, the tenant's OpenID configuration
// (by id or by a domain of the tenant), and a token request whose scope
// carries the OpenID scopes beside the resource's /.default.
func TestEntraDiscoveryAndMSALScopes(t *testing.T) {
	h := newHarness(t, tenantYAML)
	c := h.srv.Credentials()
	host := strings.TrimPrefix(h.http.URL, "http://")
	get := func(path string) (int, map[string]any) {
		resp, b := h.do("GET", path, nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return resp.StatusCode, m
	}
	for _, tenant := range []string{c.TenantID, "contoso.test"} {
		status, m := get("/" + tenant + "/v2.0/.well-known/openid-configuration")
		base := "https://" + host + "/" + c.TenantID
		if status != 200 || m["token_endpoint"] != base+"/oauth2/v2.0/token" || m["issuer"] != base+"/v2.0" || m["authorization_endpoint"] != base+"/oauth2/v2.0/authorize" {
			t.Fatalf("openid-configuration of %s: %d %v", tenant, status, m)
		}
	}
	if status, m := get("/fabrikam.test/v2.0/.well-known/openid-configuration"); status != 400 || m["error"] != "invalid_tenant" {
		t.Fatalf("an unknown tenant's configuration: %d %v", status, m)
	}
	status, m := get("/common/discovery/instance?api-version=1.1&authorization_endpoint=" + url.QueryEscape("https://"+host+"/"+c.TenantID+"/oauth2/v2.0/authorize"))
	if status != 200 || m["tenant_discovery_endpoint"] != "https://"+host+"/"+c.TenantID+"/v2.0/.well-known/openid-configuration" || len(m["metadata"].([]any)) != 1 {
		t.Fatalf("instance discovery: %d %v", status, m)
	}
	for _, scope := range []string{"https://graph.microsoft.com/.default offline_access openid profile", "openid https://graph.microsoft.com/.default"} {
		resp, body := h.postForm("/contoso.test/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID},
			"client_secret": {c.ClientSecret}, "scope": {scope}, "client_info": {"1"}})
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"access_token"`) {
			t.Fatalf("scope %q: %d %s", scope, resp.StatusCode, body)
		}
	}
}

func TestLimitsAnswer429WithRetryAfter(t *testing.T) {
	h := newHarness(t, tenantYAML)
	for i := 0; i < 30; i++ {
		if resp, b := h.do("GET", "/v1.0/users/lee@contoso.test/mailFolders/inbox", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		h.clock.add(100 * time.Millisecond)
	}
	// 30 requests in 3 s: the window of 10 s is full until the first leaves
	// it, 7 s from now.
	resp, b := h.do("GET", "/v1.0/users/lee@contoso.test/mailFolders/inbox", nil)
	if resp.StatusCode != 429 || errorCode(b) != "ApplicationThrottled" || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("over the window: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	h.clock.add(7 * time.Second)
	if resp, _ := h.do("GET", "/v1.0/users/lee@contoso.test/mailFolders/inbox", nil); resp.StatusCode != 200 {
		t.Fatalf("after the Retry-After: %d", resp.StatusCode)
	}
	st := h.srv.Stats()
	if st.Throttled != 1 || st.Mailboxes["lee@contoso.test"].Units != 31 {
		t.Fatalf("stats %+v", st)
	}
}

// With graph.throttle_push, a client that sends before its Retry-After has
// passed is refused and waits longer; one that waits it out is served.
func TestThrottlePushLengthensTheWait(t *testing.T) {
	h := newHarness(t, strings.Replace(tenantYAML, "limits:", "graph: {throttle_push: 2s}\nlimits:", 1))
	for i := 0; i < 30; i++ {
		h.do("GET", "/v1.0/users/lee@contoso.test/mailFolders/inbox", nil)
		h.clock.add(100 * time.Millisecond)
	}
	for _, c := range []struct {
		after      time.Duration
		status     int
		retryAfter string
	}{
		{0, 429, "7"},               // the window is full for 7 s
		{time.Second, 429, "8"},     // 6 s were left; pushing adds 2
		{3 * time.Second, 429, "7"}, // 5 left, and 2 more
		{7 * time.Second, 200, ""},  // waited out
	} {
		h.clock.add(c.after)
		resp, b := h.do("GET", "/v1.0/users/lee@contoso.test/mailFolders/inbox", nil)
		if resp.StatusCode != c.status || resp.Header.Get("Retry-After") != c.retryAfter {
			t.Fatalf("after %v more: %d Retry-After %q, want %d %q: %s", c.after, resp.StatusCode, resp.Header.Get("Retry-After"), c.status, c.retryAfter, b)
		}
	}
}

func TestBatchSubrequestsCountAndFailAlone(t *testing.T) {
	h := newHarness(t, tenantYAML)
	// List the Inbox ids through delta, 10 per page.
	var ids []string
	link := "/v1.0/users/lee@contoso.test/mailFolders/inbox/messages/delta?$select=id,changeKey"
	for link != "" {
		resp, b := h.do("GET", link, nil, "Prefer", "odata.maxpagesize=10")
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
			Next  string `json:"@odata.nextLink"`
			Delta string `json:"@odata.deltaLink"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || resp.Header.Get("Preference-Applied") != "odata.maxpagesize=10" {
			t.Fatalf("delta: %d %s", resp.StatusCode, b)
		}
		for _, v := range page.Value {
			ids = append(ids, v.ID)
		}
		link = strings.TrimPrefix(page.Next, h.http.URL)
	}
	if len(ids) != 25 {
		t.Fatalf("%d ids", len(ids))
	}
	var reqs []map[string]any
	for i, id := range ids[:4] {
		reqs = append(reqs, map[string]any{"id": string(rune('a' + i)), "method": "GET", "url": "/users/lee@contoso.test/messages/" + id + "/$value"})
	}
	body, _ := json.Marshal(map[string]any{"requests": reqs})
	before := h.srv.Stats().Units
	resp, b := h.do("POST", "/v1.0/$batch", body, "Content-Type", "application/json")
	var out struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Responses) != 4 {
		t.Fatalf("batch: %d %s", resp.StatusCode, b)
	}
	for _, r := range out.Responses {
		switch r.ID {
		case "c": // position 3 is dirty, failing alone
			if r.Status != 500 || errorCode(r.Body) != "ErrorCorruptData" {
				t.Fatalf("dirty sub-request: %d %s", r.Status, r.Body)
			}
		default:
			var enc string
			json.Unmarshal(r.Body, &enc)
			mime, err := base64.StdEncoding.DecodeString(enc)
			if r.Status != 200 || err != nil || !bytes.Contains(mime, []byte("MIME-Version: 1.0")) || r.Headers["Content-Type"] != "text/plain" {
				t.Fatalf("sub-request %s: %d %v", r.ID, r.Status, err)
			}
		}
	}
	if got := h.srv.Stats().Units - before; got != 4 {
		t.Fatalf("a batch of 4 counted %d against the budget", got)
	}
	// 21 requests, and duplicate ids, are refused whole.
	many := make([]map[string]any, 21)
	for i := range many {
		many[i] = map[string]any{"id": string(rune('A' + i)), "method": "GET", "url": "/users/lee@contoso.test"}
	}
	body, _ = json.Marshal(map[string]any{"requests": many})
	if resp, b := h.do("POST", "/v1.0/$batch", body); resp.StatusCode != 400 || !strings.Contains(string(b), "limit of 20") {
		t.Fatalf("21 requests: %d %s", resp.StatusCode, b)
	}
	body, _ = json.Marshal(map[string]any{"requests": []map[string]any{{"id": "1", "method": "GET", "url": "/users/x"}, {"id": "1", "method": "GET", "url": "/users/y"}}})
	if resp, _ := h.do("POST", "/v1.0/$batch", body); resp.StatusCode != 400 {
		t.Fatalf("duplicate ids: %d", resp.StatusCode)
	}
}

func TestDeltaTokensExpireAndChangesShowUp(t *testing.T) {
	h := newHarness(t, tenantYAML)
	resp, b := h.do("GET", "/beta/users/lee@contoso.test/calendars/"+h.srv.mailboxes[0].Folders[len(h.srv.mailboxes[0].Folders)-1].ID+"/events/delta", nil)
	var page struct {
		Value []map[string]any `json:"value"`
		Delta string           `json:"@odata.deltaLink"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || len(page.Value) != 2 || page.Delta == "" {
		t.Fatalf("event delta: %d %s", resp.StatusCode, b)
	}
	if err := h.srv.Mutate(MutateRequest{Mailbox: "lee@contoso.test", Folder: "Calendar", Modify: 1, Delete: 1, Add: 1}); err != nil {
		t.Fatal(err)
	}
	resp, b = h.do("GET", strings.TrimPrefix(page.Delta, h.http.URL), nil)
	page.Value = nil
	if resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil || len(page.Value) != 3 {
		t.Fatalf("change round: %d %s", resp.StatusCode, b)
	}
	removed := 0
	for _, v := range page.Value {
		if _, ok := v["@removed"]; ok {
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("change round has %d removals: %s", removed, b)
	}
	h.srv.ExpireDeltas()
	resp, b = h.do("GET", strings.TrimPrefix(page.Delta, h.http.URL), nil)
	if resp.StatusCode != 410 || errorCode(b) != "SyncStateNotFound" {
		t.Fatalf("expired token: %d %s", resp.StatusCode, b)
	}
}

func TestCreateMessageFromMIMEIsADraft(t *testing.T) {
	h := newHarness(t, tenantYAML)
	mime := base64.StdEncoding.EncodeToString([]byte("From: a@x\r\nSubject: hi\r\n\r\nbody"))
	resp, b := h.do("POST", "/v1.0/users/lee@contoso.test/messages", []byte(mime), "Content-Type", "text/plain")
	var m map[string]any
	if resp.StatusCode != 201 || json.Unmarshal(b, &m) != nil || m["isDraft"] != true || m["id"] == "" {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	resp, b = h.do("GET", "/v1.0/users/lee@contoso.test/messages/"+m["id"].(string)+"/$value", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "Subject: hi") {
		t.Fatalf("read back: %d %s", resp.StatusCode, b)
	}
	if resp, _ := h.do("POST", "/v1.0/users/lee@contoso.test/messages", []byte("%%%"), "Content-Type", "text/plain"); resp.StatusCode != 400 {
		t.Fatalf("bad base64 accepted: %d", resp.StatusCode)
	}
}

func TestUtilisationCountsWholeWindowsOnly(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var at []time.Time
	for i := 0; i < 10; i++ {
		at = append(at, t0.Add(time.Duration(i)*100*time.Millisecond)) // 10 in the first second
	}
	at = append(at, t0.Add(1500*time.Millisecond)) // the work ran out in the second window
	if u := (&Server{t: &simtenant.Tenant{}}).utilisation(at, 10, time.Second); u != 1 {
		t.Fatalf("utilisation %v, want 1", u)
	}
	if u := (&Server{t: &simtenant.Tenant{}}).utilisation(at[:5], 10, time.Second); u != -1 {
		t.Fatalf("within one window: %v, want -1", u)
	}
}

func TestFolderHierarchyDelta(t *testing.T) {
	h := newHarness(t, tenantYAML)
	m := h.srv.mailboxes[0]
	type folderPage struct {
		Value []map[string]any `json:"value"`
		Next  string           `json:"@odata.nextLink"`
		Delta string           `json:"@odata.deltaLink"`
	}
	round := func(link string, header ...string) (folders []map[string]any, delta string) {
		t.Helper()
		for pages := 0; link != ""; pages++ {
			resp, b := h.do("GET", strings.TrimPrefix(link, h.http.URL), nil, header...)
			var p folderPage
			if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil || pages > 10 {
				t.Fatalf("folder delta: %d %s", resp.StatusCode, b)
			}
			folders = append(folders, p.Value...)
			link, delta = p.Next, p.Delta
		}
		return folders, delta
	}
	first, delta := round("/v1.0/admin/exchange/mailboxes/"+m.exchangeID+"/folders/delta", "Prefer", "odata.maxpagesize=1")
	if len(first) != 2 || delta == "" {
		t.Fatalf("first round: %d folders, deltaLink %q", len(first), delta)
	}
	byName := map[string]map[string]any{}
	for _, f := range first {
		byName[f["displayName"].(string)] = f
	}
	inbox, cal := byName["Inbox"], byName["Calendar"]
	if inbox == nil || cal == nil || inbox["type"] != "IPF.Note" || cal["type"] != "IPF.Appointment" || inbox["wellKnownName"] != "inbox" ||
		inbox["parentFolderId"] != m.Root.ID || inbox["@odata.type"] != "#microsoft.graph.mailboxFolder" ||
		!strings.HasSuffix(inbox["parentMailboxUrl"].(string), "/v1.0/admin/exchange/mailboxes/"+m.exchangeID) {
		t.Fatalf("folders: %+v", first)
	}
	if again, next := round(delta); len(again) != 0 || next == "" {
		t.Fatalf("an unchanged hierarchy reported %+v", again)
	}
	if err := h.srv.Mutate(MutateRequest{Mailbox: "lee@contoso.test", Folder: "Inbox/Receipts/2026", Create: true}); err != nil {
		t.Fatal(err)
	}
	changed, _ := round(delta)
	if len(changed) != 2 || changed[0]["displayName"] != "Receipts" || changed[1]["displayName"] != "2026" ||
		changed[0]["parentFolderId"] != inbox["id"] || changed[1]["parentFolderId"] != changed[0]["id"] || changed[1]["wellKnownName"] != nil {
		t.Fatalf("created folders: %+v", changed)
	}
	h.srv.ExpireDeltas()
	if resp, b := h.do("GET", strings.TrimPrefix(delta, h.http.URL), nil); resp.StatusCode != 410 || errorCode(b) != "SyncStateNotFound" {
		t.Fatalf("expired token: %d %s", resp.StatusCode, b)
	}
	h.srv.mailboxFolders = false
	if resp, b := h.do("GET", "/v1.0/admin/exchange/mailboxes/"+m.exchangeID+"/folders/delta", nil); resp.StatusCode != 403 || errorCode(b) != "ErrorAccessDenied" {
		t.Fatalf("without MailboxFolder.Read.All: %d %s", resp.StatusCode, b)
	}
}

// Graph's JSON carries what the item's MIME says, as Exchange's renderings
// of one item agree: sender, recipients, subject, Message-ID and date of a
// message (each its own), an event's organizer, attendees and time zones,
// a contact's names, addresses and phone; nothing modified before it was
// created.
func TestJSONAgreesWithTheMIME(t *testing.T) {
	h := newHarness(t, tenantYAML+`  - address: kim@contoso.test
    folders:
      - path: Contacts
        kind: contacts
        items: 2
`)
	resp, b := h.do("GET", "/v1.0/users/lee@contoso.test/mailFolders/inbox/messages?$top=2", nil)
	var list struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(b, &list); err != nil || resp.StatusCode != 200 || len(list.Value) != 2 {
		t.Fatalf("messages: %d %s", resp.StatusCode, b)
	}
	for _, m := range list.Value {
		_, raw := h.do("GET", "/v1.0/users/lee@contoso.test/messages/"+m["id"].(string)+"/$value", nil)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		from, _ := mail.ParseAddress(msg.Header.Get("From"))
		subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		date, _ := msg.Header.Date()
		jf := m["from"].(map[string]any)["emailAddress"].(map[string]any)
		to := m["toRecipients"].([]any)[0].(map[string]any)["emailAddress"].(map[string]any)
		if jf["address"] != from.Address || jf["name"] != from.Name || to["address"] != msg.Header.Get("To") || m["subject"] != subject ||
			m["internetMessageId"] != msg.Header.Get("Message-ID") || m["receivedDateTime"] != date.UTC().Format(time.RFC3339) ||
			m["createdDateTime"].(string) > m["lastModifiedDateTime"].(string) {
			t.Errorf("JSON %v does not agree with the MIME %v", m, msg.Header)
		}
	}
	if list.Value[0]["receivedDateTime"] == list.Value[1]["receivedDateTime"] {
		t.Error("two messages received at the same instant")
	}
	list.Value = nil
	resp, b = h.do("GET", "/v1.0/users/lee@contoso.test/events?$top=1", nil)
	if json.Unmarshal(b, &list); resp.StatusCode != 200 || len(list.Value) != 1 {
		t.Fatalf("the default calendar's events: %d %s", resp.StatusCode, b)
	}
	ev := list.Value[0]
	if ev["organizer"] == nil || len(ev["attendees"].([]any)) != 1 || ev["start"].(map[string]any)["timeZone"] != "UTC" || ev["createdDateTime"].(string) > ev["lastModifiedDateTime"].(string) {
		t.Errorf("event %v", ev)
	}
	list.Value = nil
	resp, b = h.do("GET", "/v1.0/users/kim@contoso.test/contacts?$top=1", nil)
	if json.Unmarshal(b, &list); resp.StatusCode != 200 || len(list.Value) != 1 {
		t.Fatalf("the default contacts folder's contacts: %d %s", resp.StatusCode, b)
	}
	c := list.Value[0]
	if c["givenName"] == "" || c["givenName"] != c["displayName"] || len(c["emailAddresses"].([]any)) != 1 || len(c["businessPhones"].([]any)) != 1 {
		t.Errorf("contact %v", c)
	}
	if resp, b := h.do("GET", "/v1.0/users/kim@contoso.test/contactFolders/contacts", nil); resp.StatusCode != 200 {
		t.Fatalf("contactFolders/contacts: %d %s", resp.StatusCode, b)
	}
	if resp, b := h.do("GET", "/v1.0/users/lee@contoso.test/calendar/events?$top=1", nil); resp.StatusCode != 200 {
		t.Fatalf("calendar/events: %d %s", resp.StatusCode, b)
	}
	if resp, b := h.do("GET", "/v1.0/users/lee@contoso.test/mailboxSettings", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"timeZone":"UTC"`) {
		t.Fatalf("mailboxSettings: %d %s", resp.StatusCode, b)
	}
}

// A folder's items are listed page by page (nextLink), counted ($count) and
// ordered ($orderby), as clients list a folder newest first.
func TestListItemsPagesCountsAndOrders(t *testing.T) {
	h := newHarness(t, tenantYAML)
	path := "/v1.0/users/lee@contoso.test/mailFolders/inbox/messages?$top=10&$count=true&$orderby=receivedDateTime%20desc&$select=receivedDateTime"
	var times []string
	for page := 0; path != ""; page++ {
		resp, b := h.do("GET", path, nil)
		var p struct {
			Count int              `json:"@odata.count"`
			Next  string           `json:"@odata.nextLink"`
			Value []map[string]any `json:"value"`
		}
		if json.Unmarshal(b, &p) != nil || resp.StatusCode != 200 || p.Count != 25 || page > 3 {
			t.Fatalf("page %d: %d %s", page, resp.StatusCode, b)
		}
		for _, v := range p.Value {
			times = append(times, v["receivedDateTime"].(string))
		}
		path = strings.TrimPrefix(p.Next, h.http.URL)
		if p.Next != "" && path == p.Next {
			path = p.Next[strings.Index(p.Next, "/v1.0/"):]
		}
	}
	if len(times) != 25 || !sort.SliceIsSorted(times, func(a, b int) bool { return times[a] > times[b] }) {
		t.Fatalf("listed %d, newest first %v: %v", len(times), sort.SliceIsSorted(times, func(a, b int) bool { return times[a] > times[b] }), times)
	}
}

// An event or a contact created from Graph's JSON is exported as a
// FastTransfer stream made from what the JSON says, as Exchange would.
func TestItemsCreatedFromJSONExportAsStreams(t *testing.T) {
	for _, tc := range []struct{ route, json, want string }{
		{"events", `{"subject":"Budget review","start":{"dateTime":"2026-12-07T09:00:00","timeZone":"UTC"},"end":{"dateTime":"2026-12-07T10:00:00","timeZone":"UTC"}}`,
			"SUMMARY:Budget review"},
		{"contacts", `{"displayName":"Ann Lee","givenName":"Ann","surname":"Lee","emailAddresses":[{"address":"ann@contoso.test"}]}`, "FN:Ann Lee"},
	} {
		exportedFromJSON(t, tc.route, tc.json, tc.want)
	}
}

func exportedFromJSON(t *testing.T, route, item, want string) {
	t.Helper()
	h := newHarness(t, tenantYAML)
	resp, b := h.do("POST", "/v1.0/users/lee@contoso.test/"+route, []byte(item), "Content-Type", "application/json")
	var made map[string]any
	if resp.StatusCode != 201 || json.Unmarshal(b, &made) != nil || made["id"] == nil {
		t.Fatalf("create %s: %d %s", route, resp.StatusCode, b)
	}
	_, b = h.do("GET", "/beta/users/lee@contoso.test/settings/exchange", nil)
	var settings struct {
		PrimaryMailboxID string `json:"primaryMailboxId"`
	}
	if json.Unmarshal(b, &settings) != nil || settings.PrimaryMailboxID == "" {
		t.Fatalf("settings/exchange: %s", b)
	}
	body, _ := json.Marshal(map[string]any{"itemIds": []string{made["id"].(string)}})
	resp, b = h.do("POST", "/v1.0/admin/exchange/mailboxes/"+settings.PrimaryMailboxID+"/exportItems", body, "Content-Type", "application/json")
	var out struct {
		Value []struct {
			Data  *string         `json:"data"`
			Error json.RawMessage `json:"error"`
		} `json:"value"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Value) != 1 || out.Value[0].Data == nil {
		t.Fatalf("export: %d %s", resp.StatusCode, b)
	}
	data, _ := base64.StdEncoding.DecodeString(*out.Value[0].Data)
	ics, err := itemformat.MIME(domain.FormatGraphExport, data)
	if err != nil || !strings.Contains(string(ics), want) {
		t.Fatalf("%s: the stream says: %v\n%s", route, err, ics)
	}
}

// With graph.streams_ahead every generated item's stream is made at start,
// and exportItems answers with the same bytes it would have made when
// asked.
func TestStreamsAheadAreTheSameStreams(t *testing.T) {
	plain := newHarness(t, tenantYAML)
	ahead := newHarness(t, strings.Replace(tenantYAML, "limits:", "graph: {streams_ahead: true}\nlimits:", 1))
	if len(plain.srv.streamsAhead) != 0 || len(ahead.srv.streamsAhead) != 25+2 {
		t.Fatalf("streams made ahead: %d without the option, %d with it", len(plain.srv.streamsAhead), len(ahead.srv.streamsAhead))
	}
	for i, m := range ahead.srv.mailboxes {
		for j, f := range m.Folders {
			for pos := 1; pos <= len(f.Items); pos++ {
				got, err := ahead.srv.exportStream(f, pos)()
				want, werr := plain.srv.exportStream(plain.srv.mailboxes[i].Folders[j], pos)()
				if err != nil || werr != nil || string(got) != string(want) {
					t.Fatalf("%s #%d: the stream made ahead differs (%v, %v)", f.Path, pos, err, werr)
				}
				if made := ahead.srv.streamsAhead[streamKey{f, pos, ahead.srv.store.ChangeKey(f, pos)}]; len(made) == 0 || &made[0] != &got[0] {
					t.Fatalf("%s #%d: exportItems made the stream again", f.Path, pos)
				}
			}
		}
	}
}
