// Package simlisten serves a simulator's handler on a socket, over HTTPS
// with a throwaway CA when asked, and stops it again: what `mailvault sim
// graph` and `mailvault sim ews` share.
package simlisten

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
)

// Options say where and how to serve.
type Options struct {
	Listen string // default 127.0.0.1:0
	TLS    bool
	// Dir receives ca.pem; default a new temporary directory.
	Dir string
	// ConnContext, when set, gives each connection its own context (EWS's
	// NTLM authenticates connections).
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

// Server is a handler being served.
type Server struct {
	// Base is scheme://host:port of the listener.
	Base string
	// CACert is the CA's PEM file to trust ("" without TLS).
	CACert string
	http   *http.Server
	done   chan error
}

// Serve starts serving h.
func Serve(h http.Handler, o Options) (*Server, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	s := &Server{http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnContext: o.ConnContext}, done: make(chan error, 1)}
	scheme := "http"
	if o.TLS {
		dir := o.Dir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "mailvault-sim-"); err != nil {
				ln.Close()
				return nil, err
			}
		}
		cert, path, err := selfsigned.Write(dir, ln.Addr().(*net.TCPAddr).IP)
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.CACert = path
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, s.http.TLSConfig)
		scheme = "https"
	}
	s.Base = scheme + "://" + ln.Addr().String()
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

// Close stops serving, letting requests in progress finish for a while.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
