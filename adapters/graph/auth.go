package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
)

// Secret is a client secret (see package credential).
type Secret = credential.Secret

// NewSecret wraps a secret held in memory (the in-process simulator's).
func NewSecret(v string) Secret { return credential.New(v) }

// LoadSecret reads the client secret from a file or an environment
// variable, never from a command-line value. Exactly one source must be
// given.
func LoadSecret(file, envVar string) (Secret, error) {
	return credential.Load("client secret", file, envVar)
}

// Defaults for Exchange Online in the global cloud.
const (
	DefaultScope        = "https://graph.microsoft.com/.default"
	defaultTokenURLFmt  = "https://login.microsoftonline.com/%s/oauth2/v2.0/token"
	DefaultEarlyRefresh = 5 * time.Minute
)

// AuthConfig is an Entra app registration using client credentials.
type AuthConfig struct {
	TenantID string
	ClientID string
	Secret   Secret
	// TokenURL overrides the token endpoint (simulator, sovereign clouds).
	TokenURL string
	Scope    string
	// EarlyRefresh renews a token this long before it expires.
	EarlyRefresh time.Duration
	// HTTP is the client for token requests (for a custom CA).
	HTTP *http.Client
}

// Tokens hands out client-credentials tokens, renewing them before they
// expire, and can be told that the server refused the current one.
type Tokens struct {
	// fetch asks the endpoint for a new token every time; the caching is
	// ours, so that early refresh and invalidation after a 401 work.
	fetch func() (*oauth2.Token, error)
	early time.Duration
	url   string
	now   func() time.Time

	mu     sync.Mutex
	tok    *oauth2.Token
	margin time.Duration // how early the current token is renewed
}

// NewTokens prepares a token source; no request is made until the first use.
func NewTokens(ctx context.Context, cfg AuthConfig) (*Tokens, error) {
	if cfg.TenantID == "" || cfg.ClientID == "" || cfg.Secret.Empty() {
		return nil, errors.New("tenant id, client id and client secret are all required")
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = fmt.Sprintf(defaultTokenURLFmt, url.PathEscape(cfg.TenantID))
	}
	if cfg.Scope == "" {
		cfg.Scope = DefaultScope
	}
	if cfg.EarlyRefresh <= 0 {
		cfg.EarlyRefresh = DefaultEarlyRefresh
	}
	if cfg.HTTP != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTP)
	}
	cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.Secret.Reveal(), TokenURL: cfg.TokenURL,
		Scopes: []string{cfg.Scope}, AuthStyle: oauth2.AuthStyleInParams}
	fetch := func() (*oauth2.Token, error) { return cc.Token(ctx) }
	return &Tokens{fetch: fetch, early: cfg.EarlyRefresh, url: cfg.TokenURL, now: time.Now}, nil
}

// Token returns a token valid for at least EarlyRefresh more (or, for a
// token that lives shorter than twice that, for half its lifetime: renewing
// a 10-minute token 5 minutes early is right, renewing a 2-minute one on
// every request is not).
func (t *Tokens) Token() (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && (t.tok.Expiry.IsZero() || t.now().Add(t.margin).Before(t.tok.Expiry)) {
		return t.tok, nil
	}
	issued := t.now()
	tok, err := t.fetch()
	if err != nil {
		return nil, &TokenError{t.explain(err)}
	}
	t.tok = tok
	t.margin = t.early
	if life := tok.Expiry.Sub(issued); !tok.Expiry.IsZero() && life < 2*t.early {
		t.margin = life / 2
	}
	return tok, nil
}

// TokenError is a failure to get a token: retrying the Graph request will
// not help until the credentials or the app registration are fixed.
type TokenError struct{ err error }

func (e *TokenError) Error() string { return e.err.Error() }
func (e *TokenError) Unwrap() error { return e.err }

// Invalidate drops the current token: the next Token fetches a new one.
func (t *Tokens) Invalidate(refused *oauth2.Token) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == refused {
		t.tok = nil
	}
}

// explain turns a token endpoint failure into a message an administrator can
// act on, carrying Entra's error code and description but never the secret.
func (t *Tokens) explain(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		desc := re.ErrorDescription
		if i := strings.Index(desc, "\r\n"); i >= 0 {
			desc = desc[:i] // Entra appends trace and correlation ids
		}
		code := re.ErrorCode
		if code == "" && re.Response != nil {
			code = re.Response.Status
		}
		return fmt.Errorf("get a token from %s: %s: %s", t.url, code, domain.ShortMessage(desc))
	}
	return fmt.Errorf("get a token from %s: %w", t.url, err)
}

// Transport adds the bearer token to requests for the Graph host only, and
// when the server answers 401 it fetches a new token and retries once.
type Transport struct {
	Base   http.RoundTripper
	Tokens *Tokens
	// Host is the only host (host:port) the token may be sent to.
	Host string
}

// CloseIdleConnections closes the base transport's idle connections (what
// http.Client.CloseIdleConnections asks of it).
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Host, t.Host) || req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return nil, fmt.Errorf("%w: refusing to send the token to %s://%s", ErrForeignHost, req.URL.Scheme, req.URL.Host)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tok, err := t.Tokens.Token()
	if err != nil {
		return nil, err
	}
	resp, err := base.RoundTrip(withToken(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	t.Tokens.Invalidate(tok)
	if tok, err = t.Tokens.Token(); err != nil {
		return nil, err
	}
	retry := req
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		retry = req.Clone(req.Context())
		retry.Body = body
	}
	return base.RoundTrip(withToken(retry, tok))
}

func withToken(req *http.Request, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return r
}
