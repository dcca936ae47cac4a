package main

import (
	"context"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/pipeline"
)

// connectionClient is a connection opened as a client. Every entry point
// opens its server through openConnection: backup flags, daemon jobs,
// restore and connection test, so a connection's settings (content mode,
// page and batch sizes, EWS max concurrency) mean the same everywhere.
type connectionClient struct {
	graph *graph.Source
	ews   *ews.Source
	// appMaxInFlight is what the server allows the whole app in flight
	// (0: no such limit).
	appMaxInFlight int
}

// connectionScope is what a connection is opened for: the mailboxes (none:
// every mailbox the connection sees) and, for EWS, public folders.
type connectionScope struct {
	mailboxes     []string
	publicFolders []string
}

// connectionType opens one type of server.
type connectionType func(ctx context.Context, log zerolog.Logger, spec connectionSpec, secret credential.Secret, scope connectionScope) (connectionClient, error)

// connectionTypes is the registry of server types: a new one is added here
// and nowhere else.
var connectionTypes = map[string]connectionType{
	"graph": func(ctx context.Context, log zerolog.Logger, c connectionSpec, secret credential.Secret, scope connectionScope) (connectionClient, error) {
		content, err := parseContent(c.Content)
		if err != nil {
			return connectionClient{}, usageErr("%v", err)
		}
		src, err := newGraphSource(ctx, log, graphSettings{tenantID: c.TenantID, clientID: c.ClientID, secret: secret,
			mailboxes: scope.mailboxes, graphURL: c.GraphURL, betaURL: c.BetaURL, tokenURL: c.TokenURL, caCert: c.CACert,
			content: content, pageSize: c.PageSize})
		return connectionClient{graph: src}, err
	},
	"ews": func(_ context.Context, log zerolog.Logger, c connectionSpec, secret credential.Secret, scope connectionScope) (connectionClient, error) {
		if c.Auth == "" {
			c.Auth = ews.AuthNTLM
		}
		src, err := newEWSSource(ews.Config{URL: c.EWSURL, Auth: c.Auth, Username: c.Username, Secret: secret, Impersonate: c.Impersonate,
			Mailboxes: scope.mailboxes, PublicFolders: scope.publicFolders, Content: c.Content, BatchSize: c.Batch, Log: log}, c.CACert)
		limit := c.MaxConcurrency
		if limit == 0 {
			limit = ews.DefaultMaxConcurrency
		}
		return connectionClient{ews: src, appMaxInFlight: limit}, err
	},
}

func openConnection(ctx context.Context, log zerolog.Logger, name string, conn connectionSpec, secret credential.Secret, scope connectionScope) (connectionClient, error) {
	open, ok := connectionTypes[conn.Type]
	if !ok {
		types := make([]string, 0, len(connectionTypes))
		for t := range connectionTypes {
			types = append(types, t)
		}
		sort.Strings(types)
		return connectionClient{}, usageErr("connection %s has type %q: use %s", name, conn.Type, strings.Join(types, " or "))
	}
	return open(ctx, log, conn, secret, scope)
}

// source is the client as the backup pipeline's source.
func (c connectionClient) source() pipeline.Source {
	if c.graph != nil {
		return c.graph
	}
	return c.ews
}

// target is the client as a restore target.
func (c connectionClient) target() pipeline.RestoreTarget {
	if c.graph != nil {
		return c.graph
	}
	return c.ews
}

// limit applies what the server allows the whole app: EWS counts an
// account's requests in flight across all its mailboxes (EWSMaxConcurrency).
func (c connectionClient) limit(cfg *pipeline.Config) {
	if c.appMaxInFlight > 0 && (cfg.Limits.AppMaxInFlight == 0 || cfg.Limits.AppMaxInFlight > c.appMaxInFlight) {
		cfg.Limits.AppMaxInFlight = c.appMaxInFlight
	}
}
