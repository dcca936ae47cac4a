package daemon

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// IsLoopback tells whether a listen host is reachable from this machine
// only: localhost, or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrPlainBeyondLoopback: the daemon's API and dashboard (the token, the
// session cookies) never cross a network in clear text.
var ErrPlainBeyondLoopback = errors.New("the daemon serves its API and dashboard beyond loopback only over TLS")

// CheckListen refuses an address other machines can reach unless the
// listener serves TLS.
func CheckListen(addr string, tls bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !IsLoopback(host) && !tls {
		where := host
		if where == "" {
			where = "every interface"
		}
		return fmt.Errorf("%w: %s is not loopback; give --tls-cert and --tls-key, or listen on 127.0.0.1", ErrPlainBeyondLoopback, where)
	}
	return nil
}

// LocalAddr is where this machine's commands reach a listener: its own
// address, or loopback for a listener on every interface.
func LocalAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// AllowedHosts are the names a request's Host header may give: loopback's,
// the listen host when it is a specific one, the names the certificate is
// for, and the names given (--host).
func AllowedHosts(listen string, cert *tls.Certificate, extra []string) map[string]bool {
	allowed := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			allowed[strings.ToLower(host)] = true
		}
	}
	if cert != nil && len(cert.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			for _, n := range leaf.DNSNames {
				allowed[strings.ToLower(n)] = true
			}
			for _, ip := range leaf.IPAddresses {
				allowed[ip.String()] = true
			}
		}
	}
	for _, h := range extra {
		allowed[strings.ToLower(strings.TrimSpace(h))] = true
	}
	return allowed
}

// HostGuard refuses a request whose Host header names none of allowed, so
// that a web page whose name an attacker points at this machine (DNS
// rebinding) cannot use a browser's session with the daemon.
func HostGuard(allowed map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if !allowed[host] {
			http.Error(w, fmt.Sprintf("the daemon does not answer to the name %q (the daemon's --host adds one)", r.Host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CertPin is the SHA-256 of a certificate's DER, as local commands pin the
// daemon's certificate (DATA/daemon.json).
func CertPin(cert *tls.Certificate) string {
	if cert == nil || len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// pinned is a TLS configuration that accepts exactly the certificate pin
// names: local commands trust the daemon's own certificate, whatever
// names it carries and whoever issued it.
func pinned(pin string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the daemon sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(pin)) != 1 {
				return errors.New("the daemon's certificate is not the one in daemon.json")
			}
			return nil
		},
	}
}
