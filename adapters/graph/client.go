package graph

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// Defaults of the global cloud.
const (
	DefaultGraphURL = "https://graph.microsoft.com/v1.0"
	// DefaultMaxReply caps one reply: a $batch of 20 messages or an
	// exportItems call. A larger reply is isolated like a dirty item.
	DefaultMaxReply = 256 << 20
	// DefaultTimeout bounds one request.
	DefaultTimeout = 5 * time.Minute
)

// BetaURL derives the beta endpoint from a v1.0 endpoint: the version
// segment, the last of the path, becomes "beta".
func BetaURL(graphURL string) string {
	u := strings.TrimRight(graphURL, "/")
	if i := strings.LastIndexByte(u, '/'); i > len("https://") {
		return u[:i] + "/beta"
	}
	return u + "/beta"
}

// HTTPClient builds the client for Graph and token requests: an extra CA
// (the simulator's, or a TLS-inspecting proxy's) on top of the system pool,
// and no redirect to another host.
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: sameHostRedirects}, nil
}

// sameHostRedirects follows a few redirects on the host of the first
// request and refuses any other: a redirect must not carry the token away.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) > 0 && (!strings.EqualFold(req.URL.Host, via[0].URL.Host) || req.URL.Scheme != via[0].URL.Scheme) {
		return fmt.Errorf("%w: redirect to %s://%s", ErrForeignHost, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	return nil
}

// client sends Graph requests and classifies their replies.
type client struct {
	http     *http.Client
	plain    *http.Client // no bearer: for pre-authenticated upload and import URLs
	base     *url.URL     // v1.0
	beta     *url.URL
	maxReply int64
	now      func() time.Time
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and returns the reply, or a *domain.Failure for
// anything but a 2xx.
func (c *client) do(ctx context.Context, method, rawURL string, header http.Header, body []byte) (*response, error) {
	u, err := CheckLink(c.base, rawURL)
	if errors.Is(err, ErrForeignHost) && c.beta.Host != c.base.Host {
		u, err = CheckLink(c.beta, rawURL)
	}
	if err != nil {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: err.Error()}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "BadRequest", Message: err.Error()}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "mailvault/1 (ISV|mailvault|mailvault/1)")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportFailure(ctx, err)
	}
	pipeline.SpendBudget(ctx, 1)
	defer resp.Body.Close()
	b, err := ReadCapped(resp.Body, c.maxReply)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, &domain.Failure{Class: domain.ClassDirty, Code: "ReplyTooLarge", Message: err.Error()}
		}
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: "TruncatedReply",
			Message: fmt.Sprintf("the connection broke while reading the reply (HTTP %d): %v", resp.StatusCode, err)}
	}
	if fl := Classify(resp.StatusCode, resp.Header, b, c.now()); fl != nil {
		return nil, fl
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// transportFailure classifies an error without a reply.
func transportFailure(ctx context.Context, err error) error {
	var te *TokenError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &te):
		return &domain.Failure{Class: domain.ClassFatal, Code: "TokenRequestFailed", Message: te.Error()}
	case errors.Is(err, ErrForeignHost):
		return &domain.Failure{Class: domain.ClassFatal, Code: "ForeignLink", Message: err.Error()}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is not worth repeating in every message
	}
	return &domain.Failure{Class: domain.ClassTransient, Code: "TransportError", Message: err.Error()}
}

// path joins escaped segments under the v1.0 (or beta) base.
func (c *client) url(beta bool, segments ...string) string {
	base := c.base
	if beta {
		base = c.beta
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(base.String(), "/"))
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
