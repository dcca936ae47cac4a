package ewssim

import (
	"github.com/mailvault/mailvault/adapters/simlisten"
	"github.com/mailvault/mailvault/adapters/simtenant"
)

// Endpoint is what a client needs to reach a running simulator. Its JSON
// form is the line `mailvault sim ews` prints: a contract for other tools.
type Endpoint struct {
	EWSURL   string `json:"ews_url"`
	Username string `json:"username"`
	Password string `json:"password"`
	CACert   string `json:"ca_cert"`
	// The app registration for OAuth (client credentials for
	// https://outlook.office365.com/.default, as Exchange Online's EWS
	// takes them), and its token endpoint.
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	TokenURL     string `json:"token_url"`
}

// StartOptions configure a listening simulator.
type StartOptions struct {
	Options
	Listen string // default 127.0.0.1:0
	TLS    bool
	Dir    string // receives ca.pem; default a new temporary directory
}

// Running is a simulator serving on a socket.
type Running struct {
	Endpoint Endpoint
	Server   *Server
	listener *simlisten.Server
}

// Start serves tenant t until Close.
func Start(t *simtenant.Tenant, o StartOptions) (*Running, error) {
	srv := New(t, o.Options)
	l, err := simlisten.Serve(srv, simlisten.Options{Listen: o.Listen, TLS: o.TLS, Dir: o.Dir, ConnContext: ConnContext})
	if err != nil {
		return nil, err
	}
	user, pass := srv.Account()
	app := srv.entra.Credentials()
	return &Running{Server: srv, listener: l, Endpoint: Endpoint{EWSURL: l.Base + "/EWS/Exchange.asmx", Username: user, Password: pass, CACert: l.CACert,
		TenantID: app.TenantID, ClientID: app.ClientID, ClientSecret: app.ClientSecret, TokenURL: l.Base + "/" + app.TenantID + "/oauth2/v2.0/token"}}, nil
}

// Close stops serving.
func (r *Running) Close() error { return r.listener.Close() }
