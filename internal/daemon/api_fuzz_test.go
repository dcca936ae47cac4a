package daemon_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/daemon"
)

var apiMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

// Any request to the local API (a mistaken script, a hostile local
// process holding the token) gets an answer: a refusal with a JSON error
// and an error kind, never a panic and never a 500 for what was sent.
func FuzzLocalAPI(f *testing.F) {
	for _, s := range []struct {
		method uint8
		path   string
		body   string
	}{
		{1, "/v1/connections", `{"name":"exch","spec":{"type":"ews","ews_url":"https://mail.contoso.test/EWS/Exchange.asmx","username":"svc"},"secret":"pw"}`},
		{1, "/v1/connections", `{"name":"g","spec":{"type":"graph","tenant_id":"T","client_id":"C"},"secret":"s"}`},
		{1, "/v1/storages", `{"name":"tape","path":"/tape","retention":{"keep_versions":3}}`},
		{1, "/v1/jobs", `{"name":"nightly","connection":"contoso","storage":"nas","mailboxes":["a@contoso.test"],"idle":"00:05:00"}`},
		{2, "/v1/jobs/nightly", `{"name":"nightly","connection":"contoso","storage":"nas","all_mailboxes":true,"schedule":{"pattern":"daily","from":"22:00","to":"06:00"}}`},
		{0, "/v1/jobs/nightly", ``},
		{3, "/v1/jobs/nightly", ``},
		{1, "/v1/jobs/nightly/start", ``},
		{2, "/v1/alerts", `{"settings":{"smtp":"smtp.contoso.test:587","from":"a@b.test","to":["c@d.test"]},"password":"x"}`},
		{3, "/v1/storages/nas", ``},
		{0, "/v1/connections", ``},
	} {
		f.Add(s.method, s.path, []byte(s.body))
	}
	fx := newFixture(f)
	mux := http.NewServeMux()
	daemon.RegisterAPI(mux, fx.svc)
	f.Fuzz(func(t *testing.T, method uint8, path string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(apiMethods[int(method)%len(apiMethods)], "http://127.0.0.1"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable { // 503: no daemon runs the jobs here
			t.Fatalf("%s %s %q: %d %s", req.Method, path, body, w.Code, w.Body.String())
		}
		if w.Code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("a refusal without an error: %d %s", w.Code, w.Body.String())
			}
		}
	})
}
