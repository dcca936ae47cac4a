package ewssim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mailvault/mailvault/adapters/selfsigned"
	"github.com/mailvault/mailvault/adapters/simtenant"
)

// Endpoint is what a client needs to reach a running simulator. Its JSON
// form is the line `mailvault sim ews` prints: a contract for other tools.
type Endpoint struct {
	EWSURL   string `json:"ews_url"`
	Username string `json:"username"`
	Password string `json:"password"`
	CACert   string `json:"ca_cert"`
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
	http     *http.Server
	done     chan error
}

// Start serves tenant t until Close.
func Start(t *simtenant.Tenant, o StartOptions) (*Running, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	srv := New(t, o.Options)
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	scheme, caPath := "http", ""
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ConnContext: ConnContext}
	if o.TLS {
		dir := o.Dir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "mailvault-ewssim-"); err != nil {
				ln.Close()
				return nil, err
			}
		}
		cert, path, err := selfsigned.Write(dir, ln.Addr().(*net.TCPAddr).IP)
		if err != nil {
			ln.Close()
			return nil, err
		}
		caPath = path
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	user, pass := srv.Account()
	r := &Running{Server: srv, http: hs, done: make(chan error, 1), Endpoint: Endpoint{
		EWSURL: scheme + "://" + ln.Addr().String() + "/EWS/Exchange.asmx", Username: user, Password: pass, CACert: caPath}}
	go func() { r.done <- hs.Serve(ln) }()
	return r, nil
}

// Close stops serving.
func (r *Running) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.http.Shutdown(ctx)
	if serveErr := <-r.done; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
