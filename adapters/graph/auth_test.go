package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const secretValue = "s3cr3t~value.that.must.never.leak"

// entra is a token endpoint that checks the client-credentials form as
// Entra ID does and issues numbered tokens.
func entra(t *testing.T, issued *atomic.Int32, expiresIn int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("scope") != DefaultScope || r.Form.Get("client_id") != "app" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"invalid_request","error_description":"AADSTS900144: The request body must contain the following parameter: 'grant_type'.\r\nTrace ID: x"}`)
			return
		}
		if r.Form.Get("client_secret") != secretValue {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 1\r\nCorrelation ID: 2"}`)
			return
		}
		n := issued.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": expiresIn, "access_token": fmt.Sprintf("tok-%d", n)})
	}))
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	os.WriteFile(f, []byte(secretValue+"\n"), 0o600)
	s, err := LoadSecret(f, "")
	if err != nil || s.Reveal() != secretValue {
		t.Fatalf("from file: %v", err)
	}
	if out := fmt.Sprintf("%v %s %+v %#v", s, s, s, s); strings.Contains(out, secretValue) {
		t.Fatalf("secret printed: %s", out)
	}
	t.Setenv("MV_TEST_SECRET", secretValue)
	if s, err := LoadSecret("", "MV_TEST_SECRET"); err != nil || s.Reveal() != secretValue {
		t.Fatalf("from env: %v", err)
	}
	for _, c := range [][2]string{{"", ""}, {f, "MV_TEST_SECRET"}, {filepath.Join(dir, "none"), ""}, {"", "MV_TEST_UNSET"}} {
		if _, err := LoadSecret(c[0], c[1]); err == nil {
			t.Errorf("LoadSecret(%q, %q) accepted", c[0], c[1])
		}
	}
}

func TestTokensRefreshEarlyAndExplainFailures(t *testing.T) {
	var issued atomic.Int32
	srv := entra(t, &issued, 3599)
	defer srv.Close()
	tk, err := NewTokens(context.Background(), AuthConfig{TenantID: "t", ClientID: "app", Secret: NewSecret(secretValue), TokenURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tk.now = func() time.Time { return now }
	a, _ := tk.Token()
	b, _ := tk.Token()
	if a.AccessToken != "tok-1" || b != a {
		t.Fatalf("token not reused: %s %s", a.AccessToken, b.AccessToken)
	}
	now = now.Add(3599*time.Second - DefaultEarlyRefresh + time.Second) // inside the early-refresh margin
	if c, _ := tk.Token(); c.AccessToken != "tok-2" {
		t.Fatalf("not refreshed before expiry: %s", c.AccessToken)
	}

	// A token living 2 minutes is renewed after half its life, not on
	// every request.
	var shortIssued atomic.Int32
	short := entra(t, &shortIssued, 120)
	defer short.Close()
	st, _ := NewTokens(context.Background(), AuthConfig{TenantID: "t", ClientID: "app", Secret: NewSecret(secretValue), TokenURL: short.URL})
	now2 := time.Now()
	st.now = func() time.Time { return now2 }
	st.Token()
	now2 = now2.Add(50 * time.Second)
	st.Token()
	if n := shortIssued.Load(); n != 1 {
		t.Fatalf("a 2-minute token was fetched %d times in 50 s", n)
	}
	now2 = now2.Add(15 * time.Second)
	st.Token()
	if n := shortIssued.Load(); n != 2 {
		t.Fatalf("a 2-minute token was not renewed after half its life: %d fetches", n)
	}

	bad, _ := NewTokens(context.Background(), AuthConfig{TenantID: "t", ClientID: "app", Secret: NewSecret("wrong"), TokenURL: srv.URL})
	_, err = bad.Token()
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "AADSTS7000215") ||
		strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "Trace ID") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestTransportRetries401OnceAndGuardsTheHost(t *testing.T) {
	var issued atomic.Int32
	tokSrv := entra(t, &issued, 3599)
	defer tokSrv.Close()
	var refuseAll atomic.Bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first token is revoked server-side; later ones work unless refuseAll.
		if refuseAll.Load() || r.Header.Get("Authorization") == "Bearer tok-1" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}`)
			return
		}
		fmt.Fprint(w, `{"value":[]}`)
	}))
	defer api.Close()
	u, _ := url.Parse(api.URL)
	tk, _ := NewTokens(context.Background(), AuthConfig{TenantID: "t", ClientID: "app", Secret: NewSecret(secretValue), TokenURL: tokSrv.URL})
	client := &http.Client{Transport: &Transport{Tokens: tk, Host: u.Host}}

	resp, err := client.Get(api.URL + "/v1.0/users")
	if err != nil || resp.StatusCode != 200 || issued.Load() != 2 {
		t.Fatalf("after one refresh: %v %v, tokens issued %d", err, resp, issued.Load())
	}
	resp.Body.Close()

	refuseAll.Store(true)
	resp, err = client.Get(api.URL + "/v1.0/users")
	if err != nil || resp.StatusCode != 401 || issued.Load() != 3 {
		t.Fatalf("a second 401 must be returned, not retried again: %v status %d issued %d", err, resp.StatusCode, issued.Load())
	}
	f := Classify(resp.StatusCode, resp.Header, []byte(`{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}`), time.Now())
	resp.Body.Close()
	if f.Code != "InvalidAuthenticationToken" || f.Class != "fatal" {
		t.Fatalf("401 classified as %+v", f)
	}

	_, err = client.Get("https://evil.example/v1.0/users")
	if !errors.Is(err, ErrForeignHost) {
		t.Fatalf("token sent to a foreign host: %v", err)
	}
}
