package app

import (
	"context"
	"fmt"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// Scope is what a connection is opened for: the mailboxes (none: every
// mailbox the connection sees) and, for EWS, public folders.
type Scope struct {
	Mailboxes     []string `json:"mailboxes,omitempty"`
	PublicFolders []string `json:"public_folders,omitempty"`
	Archives      bool     `json:"archives,omitempty"` // each mailbox's archive too
}

// Check is one thing a connection test tried.
type Check struct {
	What string
	// Permission is the application permission it needs ("" when the
	// server has no such notion).
	Permission string
	// Err is nil when it worked.
	Err error
	// Optional: a backup works without it, by a slower route.
	Optional bool
}

// Server is a connection opened as a client.
type Server interface {
	Source() pipeline.Source
	Target() pipeline.RestoreTarget
	// Limit applies what the server allows the whole app to a run's
	// settings (EWS: the account's max concurrency caps requests in flight).
	Limit(cfg *pipeline.Config)
	// Probe tries, once each, the things a backup needs.
	Probe(ctx context.Context, mailbox string, publicFolders bool) ([]Check, error)
	// Close releases the connections the server's client keeps open.
	Close()
}

// Connector opens servers from connection settings. Every entry point
// opens its server through it, so a setting means the same everywhere.
type Connector interface {
	Open(ctx context.Context, name string, spec ConnectionSpec, secret credential.Secret, scope Scope) (Server, error)
}

// Invalid is an input that does not make sense: the caller's mistake,
// matched with ErrInvalid.
func Invalid(format string, a ...any) error {
	return &domain.ConfigError{Kind: "input", Err: ErrInvalid, Msg: fmt.Sprintf(format, a...)}
}

// openServer opens a configured connection's server.
func (s *Service) openServer(ctx context.Context, name string, scope Scope) (Server, ConnectionSpec, error) {
	spec, secret, err := s.OpenConnection(name)
	if err != nil {
		return nil, spec, err
	}
	srv, err := s.Connector.Open(ctx, name, spec, secret, scope)
	return srv, spec, err
}

// TestConnection tries what a backup through the connection needs, on one
// mailbox (Graph: the first listed when none is named) or the public
// folders.
func (s *Service) TestConnection(ctx context.Context, name, mailbox string, publicFolders bool) ([]Check, error) {
	var scope Scope
	if mailbox != "" {
		scope.Mailboxes = []string{mailbox}
	}
	srv, _, err := s.openServer(ctx, name, scope)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	return srv.Probe(ctx, mailbox, publicFolders)
}
