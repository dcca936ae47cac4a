package simentra

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A token is good for the resource it was issued for, until it expires.
func TestTokensAreForOneResourceAndExpire(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	e := New(Credentials{}, time.Hour, func() time.Time { return now }, []string{"contoso.test"})
	c := e.Credentials()
	srv := httptest.NewServer(e)
	defer srv.Close()
	resp, err := http.PostForm(srv.URL+"/contoso.test/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID},
		"client_secret": {c.ClientSecret}, "scope": {"https://outlook.office365.com/.default openid profile offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.ExpiresIn != 3600 || !strings.HasPrefix(tok.AccessToken, "eyJ") {
		t.Fatalf("token: %d %+v", resp.StatusCode, tok)
	}
	for _, c := range []struct {
		tok, resource string
		after         time.Duration
		want          TokenProblem
	}{
		{tok.AccessToken, "https://outlook.office365.com", 0, TokenValid},
		{tok.AccessToken, "https://graph.microsoft.com", 0, TokenWrongAudience},
		{"eyJmade.up.token", "https://outlook.office365.com", 0, TokenUnknown},
		{tok.AccessToken, "https://outlook.office365.com", time.Hour, TokenExpired},
	} {
		now = now.Add(c.after)
		if got := e.Check(c.tok, c.resource); got != c.want {
			t.Errorf("%s after %v: %v, want %v", c.resource, c.after, got, c.want)
		}
	}
	if e.Issued() != 1 {
		t.Errorf("issued %d", e.Issued())
	}
}
