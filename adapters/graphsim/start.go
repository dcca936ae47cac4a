package graphsim

import (
	"github.com/mailvault/mailvault/adapters/simlisten"
	"github.com/mailvault/mailvault/adapters/simtenant"
)

// Endpoint is what a client needs to reach a running simulator. Its JSON
// form is the line `mailvault sim graph` prints: a contract for other tools.
type Endpoint struct {
	GraphURL     string `json:"graph_url"`
	BetaURL      string `json:"beta_url"`
	TokenURL     string `json:"token_url"`
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	CACert       string `json:"ca_cert"`
}

// StartOptions configure a listening simulator.
type StartOptions struct {
	Options
	Listen string // default 127.0.0.1:0
	TLS    bool
	// Dir receives ca.pem; default a new temporary directory.
	Dir string
}

// Running is a simulator serving on a socket.
type Running struct {
	Endpoint Endpoint
	Server   *Server
	listener *simlisten.Server
}

// Close stops serving.
func (r *Running) Close() error { return r.listener.Close() }

// Start serves tenant t until Close.
func Start(t *simtenant.Tenant, o StartOptions) (*Running, error) {
	srv := New(t, o.Options)
	l, err := simlisten.Serve(srv, simlisten.Options{Listen: o.Listen, TLS: o.TLS, Dir: o.Dir})
	if err != nil {
		return nil, err
	}
	c := srv.Credentials()
	return &Running{Server: srv, listener: l, Endpoint: Endpoint{
		GraphURL: l.Base + "/v1.0", BetaURL: l.Base + "/beta", TokenURL: l.Base + "/" + c.TenantID + "/oauth2/v2.0/token",
		TenantID: c.TenantID, ClientID: c.ClientID, ClientSecret: c.ClientSecret, CACert: l.CACert}}, nil
}
