package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/pipeline"
)

// connectionClient is a stored connection opened as a client. Backup
// jobs, restore and connection test all open connections through
// openConnection, so a connection's settings mean the same at every entry
// point and a new connection type is added in one place.
type connectionClient struct {
	graph *graph.Source
	ews   *ews.Source
}

// connectionScope is what a connection is opened for: the mailboxes (none:
// every mailbox the connection sees) and, for EWS, public folders.
type connectionScope struct {
	mailboxes     []string
	publicFolders []string
}

func openConnection(ctx context.Context, log zerolog.Logger, name string, conn connectionSpec, secret credential.Secret, scope connectionScope) (connectionClient, error) {
	switch conn.Type {
	case "graph":
		src, err := newGraphSource(ctx, log, graphSettings{tenantID: conn.TenantID, clientID: conn.ClientID, secret: secret,
			mailboxes: scope.mailboxes, graphURL: conn.GraphURL, betaURL: conn.BetaURL, tokenURL: conn.TokenURL, caCert: conn.CACert})
		return connectionClient{graph: src}, err
	case "ews":
		src, err := newEWSSource(ews.Config{URL: conn.EWSURL, Auth: conn.Auth, Username: conn.Username, Secret: secret,
			Impersonate: conn.Impersonate, Mailboxes: scope.mailboxes, PublicFolders: scope.publicFolders, Log: log}, conn.CACert)
		return connectionClient{ews: src}, err
	}
	return connectionClient{}, usageErr("connection %s has type %q: use graph or ews", name, conn.Type)
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

// limit applies what the server type allows the whole app: EWS counts an
// account's requests in flight across all its mailboxes (EWSMaxConcurrency).
func (c connectionClient) limit(cfg *pipeline.Config) {
	if c.ews != nil && (cfg.Limits.AppMaxInFlight == 0 || cfg.Limits.AppMaxInFlight > ews.DefaultMaxConcurrency) {
		cfg.Limits.AppMaxInFlight = ews.DefaultMaxConcurrency
	}
}
