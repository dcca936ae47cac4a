package ews

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// Auth methods.
const (
	AuthBasic = "basic"
	AuthNTLM  = "ntlm"
	AuthOAuth = "oauth"
)

// DefaultMaxReply caps one reply: an ExportItems of 100 items.
const DefaultMaxReply = 512 << 20

// transport sends SOAP requests to one EWS endpoint with one account.
type transport struct {
	url      *url.URL
	http     *http.Client
	auth     string
	username string
	secret   credential.Secret // password, or the OAuth token
	maxReply int64
	now      func() time.Time
}

func newTransport(rawURL string, hc *http.Client, auth, username string, secret credential.Secret, maxReply int64) (*transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("EWS URL %q is not an http(s) URL (for example https://mail.contoso.com/EWS/Exchange.asmx)", rawURL)
	}
	switch auth {
	case AuthBasic, AuthNTLM, AuthOAuth:
	default:
		return nil, fmt.Errorf("auth %q: use basic, ntlm or oauth", auth)
	}
	if auth != AuthOAuth && username == "" {
		return nil, errors.New("a username is required for basic and NTLM authentication")
	}
	if secret.Empty() {
		return nil, errors.New("no password (or token) given")
	}
	c := *hc
	if auth == AuthNTLM {
		base, ok := hc.Transport.(*http.Transport)
		if !ok {
			return nil, errors.New("NTLM needs an *http.Transport to pin connections")
		}
		c.Transport = newNTLMPool(base, 32)
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		// A redirect would resend the credentials; EWS does not redirect.
		return fmt.Errorf("refusing a redirect to %s://%s: EWS answers on its own URL", req.URL.Scheme, req.URL.Host)
	}
	return &transport{url: u, http: &c, auth: auth, username: username, secret: secret, maxReply: maxReply, now: time.Now}, nil
}

// call posts one SOAP request and returns the inner XML of the reply body,
// or a *domain.Failure.
// call sends one request, as the impersonated mailbox when impersonate is
// set. A throttle says whose budget it was charged to: with application
// impersonation Exchange charges (a copy of) the target mailbox's budget,
// without it the service account's.
func (t *transport) call(ctx context.Context, impersonate, body string) ([]byte, error) {
	b, err := t.send(ctx, impersonate, body)
	if f := (*domain.Failure)(nil); errors.As(err, &f) && f.Class == domain.ClassThrottled {
		f.Budget = domain.BudgetApp
		if impersonate != "" {
			f.Budget = domain.BudgetMailbox
		}
	}
	return b, err
}

func (t *transport) send(ctx context.Context, impersonate, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url.String(), bytes.NewReader(envelope(impersonate, body)))
	if err != nil {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "BadRequest", Message: err.Error()}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("Accept", "text/xml")
	req.Header.Set("User-Agent", "mailvault/1")
	switch t.auth {
	case AuthOAuth:
		req.Header.Set("Authorization", "Bearer "+t.secret.Reveal())
	default:
		req.SetBasicAuth(t.username, t.secret.Reveal())
	}
	resp, err := t.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // keeps the URL (and nothing secret) out of the message
		}
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: "TransportError", Message: err.Error()}
	}
	pipeline.SpendBudget(ctx, 1)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, t.maxReply+1))
	if err != nil {
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: "TruncatedReply",
			Message: fmt.Sprintf("the connection broke while reading the reply (HTTP %d): %v", resp.StatusCode, err)}
	}
	if int64(len(b)) > t.maxReply {
		return nil, &domain.Failure{Class: domain.ClassDirty, Code: "ReplyTooLarge", Message: fmt.Sprintf("reply exceeds %d bytes", t.maxReply)}
	}
	return t.reply(resp, b)
}

// reply classifies an HTTP reply and returns the SOAP body's inner XML.
func (t *transport) reply(resp *http.Response, b []byte) ([]byte, error) {
	status := resp.StatusCode
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case status == http.StatusUnauthorized && t.auth == AuthOAuth:
		// Exchange Online says why in x-ms-diagnostics ("The token has
		// expired.", "The audience claim value is invalid...").
		why := "HTTP 401"
		if d := resp.Header.Get("x-ms-diagnostics"); d != "" {
			why += ": " + domain.ShortMessage(d)
		}
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "Unauthorized", Message: "the server refused the OAuth token (" + why +
			"); it must be an app token for https://outlook.office365.com/.default (or the server's own URL, on premises), not expired"}
	case status == http.StatusUnauthorized:
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "Unauthorized", Message: fmt.Sprintf(
			"the server refused the %s credentials of %s (it offers: %s)", t.auth, t.username, strings.Join(resp.Header.Values("WWW-Authenticate"), ", "))}
	case status == http.StatusForbidden:
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "Forbidden", Message: "HTTP 403: the account may not use EWS (check EWS access policies)"}
	case status == http.StatusServiceUnavailable:
		// IIS's request queue is full: throttling without a SOAP answer.
		f := &domain.Failure{Class: domain.ClassThrottled, Code: "HTTP503", Message: "HTTP 503 Service Unavailable (the server's request queue is full)"}
		if d, err := time.ParseDuration(strings.TrimSpace(resp.Header.Get("Retry-After")) + "s"); err == nil {
			f.RetryAfter = domain.ClampRetryAfter(d)
		}
		return nil, f
	case ct == "text/html":
		msg := fmt.Sprintf("HTTP %d with an HTML page instead of SOAP", status)
		if status == http.StatusOK {
			// Forms-based authentication or a reverse proxy's login page.
			return nil, &domain.Failure{Class: domain.ClassFatal, Code: "HTMLReply", Message: msg +
				": a login page? EWS needs Basic, NTLM or OAuth on this URL, not forms-based authentication"}
		}
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: fmt.Sprintf("HTTP%d", status), Message: msg}
	}
	var env envelopeReply
	if err := xml.Unmarshal(b, &env); err != nil {
		code, msg := "MalformedReply", "malformed XML: "+err.Error()
		if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF") {
			code, msg = "TruncatedReply", fmt.Sprintf("truncated XML reply (%d bytes)", len(b))
		}
		if status >= 500 && len(bytes.TrimSpace(b)) == 0 {
			code, msg = fmt.Sprintf("HTTP%d", status), fmt.Sprintf("HTTP %d with an empty body", status)
		}
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: code, Message: domain.ShortMessage(msg)}
	}
	if f := env.Body.Fault; f != nil {
		code := f.Detail.ResponseCode
		if code == "" {
			code = f.Code
			if i := strings.LastIndexByte(code, ':'); i >= 0 {
				code = code[i+1:]
			}
		}
		text := f.Detail.Message
		if text == "" {
			text = f.String
		}
		return nil, classifyCode(code, text, f.Detail.MessageXML)
	}
	if status != http.StatusOK {
		return nil, &domain.Failure{Class: domain.ClassTransient, Code: fmt.Sprintf("HTTP%d", status), Message: fmt.Sprintf("HTTP %d without a SOAP fault", status)}
	}
	return env.Body.Inner, nil
}

// ntlmPool runs NTLM over connections of its own. NTLM authenticates a
// connection, not a request: the three legs of a handshake must travel on
// one connection, which a shared connection pool does not promise when
// requests run concurrently. Each request borrows a transport of its own
// until its reply body is closed. The transport holds two connections: the
// negotiator keeps its first, anonymous 401 open while it handshakes, so the
// negotiate and authenticate legs share the other one. A connection once
// authenticated stays so, and later requests on it need no handshake.
type ntlmPool struct {
	free chan *http.Transport
	all  []*http.Transport
}

func newNTLMPool(base *http.Transport, n int) *ntlmPool {
	p := &ntlmPool{free: make(chan *http.Transport, n)}
	for range n {
		t := base.Clone()
		t.MaxConnsPerHost, t.MaxIdleConnsPerHost = 2, 2
		p.free <- t
		p.all = append(p.all, t)
	}
	return p
}

// CloseIdleConnections closes every pooled transport's idle connections.
func (p *ntlmPool) CloseIdleConnections() {
	for _, t := range p.all {
		t.CloseIdleConnections()
	}
}

func (p *ntlmPool) RoundTrip(req *http.Request) (*http.Response, error) {
	var t *http.Transport
	select {
	case t = <-p.free:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	// The negotiator turns the request's credentials into an NTLM
	// handshake and never sends them as Basic.
	resp, err := ntlmssp.Negotiator{RoundTripper: t}.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && req.GetBody != nil {
		// The negotiator answers a handshake broken by the network (a
		// dropped connection) with the first 401 it got; try the whole
		// handshake once more before calling the credentials wrong.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		retry := req.Clone(req.Context())
		if retry.Body, err = req.GetBody(); err == nil {
			resp, err = ntlmssp.Negotiator{RoundTripper: t}.RoundTrip(retry)
		}
	}
	if err != nil {
		p.free <- t
		return nil, err
	}
	resp.Body = &returnOnClose{ReadCloser: resp.Body, give: func() { p.free <- t }}
	return resp, nil
}

type returnOnClose struct {
	io.ReadCloser
	give func()
	done bool
}

func (r *returnOnClose) Close() error {
	err := r.ReadCloser.Close()
	if !r.done {
		r.done = true
		r.give()
	}
	return err
}
