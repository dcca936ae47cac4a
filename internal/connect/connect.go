// Package connect opens servers from connection settings: the registry of
// server types (Microsoft Graph, EWS). Every entry point opens its server
// here (backup flags, daemon jobs, restore, connection test), so a
// connection's settings (content mode, page and batch sizes, EWS max
// concurrency) mean the same everywhere.
package connect

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/pipeline"
)

// Connector is the application's Connector over the registry.
type Connector struct{ Log zerolog.Logger }

var _ app.Connector = Connector{}

// Open opens the connection's server as a client.
func (c Connector) Open(ctx context.Context, name string, spec app.ConnectionSpec, secret credential.Secret, scope app.Scope) (app.Server, error) {
	open, ok := types[spec.Type]
	if !ok {
		names := make([]string, 0, len(types))
		for t := range types {
			names = append(names, t)
		}
		sort.Strings(names)
		return nil, app.Invalid("connection %s has type %q: use %s", name, spec.Type, strings.Join(names, " or "))
	}
	return open(ctx, c.Log, spec, secret, scope)
}

// types is the registry of server types: a new one is added here and
// nowhere else.
var types = map[string]func(ctx context.Context, log zerolog.Logger, spec app.ConnectionSpec, secret credential.Secret, scope app.Scope) (app.Server, error){
	"graph": func(ctx context.Context, log zerolog.Logger, c app.ConnectionSpec, secret credential.Secret, scope app.Scope) (app.Server, error) {
		content, err := ParseContent(c.Content)
		if err != nil {
			return nil, app.Invalid("%v", err)
		}
		src, err := GraphSource(ctx, log, GraphSettings{TenantID: c.TenantID, ClientID: c.ClientID, Secret: secret,
			Mailboxes: scope.Mailboxes, Archives: scope.Archives, GraphURL: c.GraphURL, BetaURL: c.BetaURL, TokenURL: c.TokenURL, CACert: c.CACert,
			Content: content, PageSize: c.PageSize})
		if err != nil {
			return nil, err
		}
		return graphServer{src}, nil
	},
	"ews": func(_ context.Context, log zerolog.Logger, c app.ConnectionSpec, secret credential.Secret, scope app.Scope) (app.Server, error) {
		if c.Auth == "" {
			c.Auth = ews.AuthNTLM
		}
		hc, err := graph.HTTPClient(c.CACert, graph.DefaultTimeout)
		if err != nil {
			return nil, app.Invalid("%v", err)
		}
		src, err := ews.NewSource(ews.Config{URL: c.EWSURL, Auth: c.Auth, Username: c.Username, Secret: secret, Impersonate: c.Impersonate,
			Mailboxes: scope.Mailboxes, PublicFolders: scope.PublicFolders, Archives: scope.Archives, Content: c.Content, BatchSize: c.Batch, Log: log, HTTP: hc})
		if err != nil {
			return nil, app.Invalid("%v", err)
		}
		limit := c.MaxConcurrency
		if limit == 0 {
			limit = ews.DefaultMaxConcurrency
		}
		return ewsServer{src: src, maxConcurrency: limit}, nil
	},
}

// ParseContent reads a Graph content mode: MODE for every kind, or
// KIND=MODE,KIND=MODE.
func ParseContent(v string) (map[string]string, error) {
	out := map[string]string{}
	v = strings.TrimSpace(v)
	if v == "" {
		return out, nil
	}
	if !strings.Contains(v, "=") {
		for _, k := range []string{domain.KindMail, domain.KindCalendar, domain.KindContacts} {
			out[k] = v
		}
		return out, nil
	}
	for _, part := range strings.Split(v, ",") {
		k, m, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--graph-content %q: use MODE or KIND=MODE,KIND=MODE", v)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(m)
	}
	return out, nil
}

// GraphSettings are what a Graph client needs.
type GraphSettings struct {
	TenantID, ClientID string
	Secret             credential.Secret
	Mailboxes          []string
	Archives           bool
	GraphURL, BetaURL  string
	TokenURL, CACert   string
	Content            map[string]string
	PageSize           int
}

// GraphSource builds a Graph client: HTTPS with the extra CA, tokens from
// the tenant's token endpoint.
func GraphSource(ctx context.Context, log zerolog.Logger, s GraphSettings) (*graph.Source, error) {
	hc, err := graph.HTTPClient(s.CACert, graph.DefaultTimeout)
	if err != nil {
		return nil, app.Invalid("%v", err)
	}
	tokens, err := graph.NewTokens(ctx, graph.AuthConfig{TenantID: s.TenantID, ClientID: s.ClientID, Secret: s.Secret, TokenURL: s.TokenURL, HTTP: hc})
	if err != nil {
		return nil, app.Invalid("%v", err)
	}
	src, err := graph.NewSource(graph.Config{GraphURL: s.GraphURL, BetaURL: s.BetaURL, HTTP: hc, Tokens: tokens,
		Mailboxes: s.Mailboxes, Archives: s.Archives, Content: s.Content, PageSize: s.PageSize, Log: log})
	if err != nil {
		return nil, app.Invalid("%v", err)
	}
	return src, nil
}

type graphServer struct{ src *graph.Source }

func (s graphServer) Source() pipeline.Source        { return s.src }
func (s graphServer) Target() pipeline.RestoreTarget { return s.src }
func (s graphServer) Limit(*pipeline.Config)         {}
func (s graphServer) Close()                         { s.src.Close() }

// Probe tests one mailbox: the one named, or the first the app can list.
func (s graphServer) Probe(ctx context.Context, mailbox string, _ bool) ([]app.Check, error) {
	if mailbox == "" {
		mbxs, err := s.src.Mailboxes(ctx)
		if err != nil || len(mbxs) == 0 {
			return []app.Check{{What: "list users", Permission: "User.Read.All", Err: fmt.Errorf("%v (name a mailbox with --mailbox to test the rest)", err)}}, nil
		}
		mailbox = mbxs[0]
	}
	var out []app.Check
	for _, c := range s.src.Probe(ctx, mailbox) {
		// The export and folder permissions are the best routes, not the
		// only ones.
		optional := c.Permission == "MailboxItem.Export.All" || c.Permission == "MailboxFolder.Read.All"
		out = append(out, app.Check{What: c.What, Permission: c.Permission, Err: c.Err, Optional: optional})
	}
	return out, nil
}

type ewsServer struct {
	src            *ews.Source
	maxConcurrency int
}

func (s ewsServer) Source() pipeline.Source        { return s.src }
func (s ewsServer) Target() pipeline.RestoreTarget { return s.src }
func (s ewsServer) Close()                         { s.src.Close() }

// Limit applies what the server allows the whole app: EWS counts an
// account's requests in flight across all its mailboxes (EWSMaxConcurrency).
func (s ewsServer) Limit(cfg *pipeline.Config) {
	if s.maxConcurrency > 0 && (cfg.Limits.AppMaxInFlight == 0 || cfg.Limits.AppMaxInFlight > s.maxConcurrency) {
		cfg.Limits.AppMaxInFlight = s.maxConcurrency
	}
}

// Probe logs on and opens the mailbox (and the public folders when asked).
func (s ewsServer) Probe(ctx context.Context, mailbox string, publicFolders bool) ([]app.Check, error) {
	if mailbox == "" && !publicFolders {
		return nil, app.Invalid("name a mailbox to open with --mailbox (and --public-folders to test those)")
	}
	var out []app.Check
	for _, c := range s.src.Probe(ctx, mailbox, publicFolders) {
		out = append(out, app.Check{What: c.What, Err: c.Err})
	}
	return out, nil
}
