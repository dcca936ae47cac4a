package tests

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/adapters/selfsigned"
)

// The daemon's listener: loopback by default; an address beyond loopback
// is refused without TLS, before anything is opened; every request must
// name the daemon in its Host header (no DNS rebinding); with TLS on every
// interface, local commands reach it through its pinned certificate, the
// session cookie is Secure, and plain HTTP gets nothing.
func TestDaemonListensSafely(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	res := mailvault(t, "daemon", "--data", data, "--listen", "0.0.0.0:0")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "beyond loopback only over TLS") && strings.Contains(res.stderr, "--tls-cert"),
		"a plain listener on every interface: exit %d %s", res.code, res.stderr)
	res = mailvault(t, "daemon", "--data", data, "--listen", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "none.pem"))
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "go together"), "a certificate without its key: exit %d %s", res.code, res.stderr)

	d := startDaemon(t, data)
	get := func(client *http.Client, rawURL, host string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		mustf(t, err == nil, "GET %s (Host %s): %v", rawURL, host, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	code, _ := get(http.DefaultClient, "http://"+d.addr+"/login", "")
	mustf(t, code == http.StatusOK, "the login page on loopback: %d", code)
	code, _ = get(http.DefaultClient, "http://"+d.addr+"/login", "attacker.example:80")
	mustf(t, code == http.StatusMisdirectedRequest, "a foreign Host header: %d", code)
	code, _ = get(http.DefaultClient, "http://"+d.addr+"/metrics", "rebind.attacker.example")
	mustf(t, code == http.StatusMisdirectedRequest, "a foreign Host header on the API: %d", code)
	d.cmd.Process.Signal(os.Interrupt)
	d.cmd.Wait()

	cert, _, err := selfsigned.Write(dir, nil)
	mustf(t, err == nil, "certificate: %v", err)
	certFile, keyFile := filepath.Join(dir, "daemon.pem"), filepath.Join(dir, "daemon.key")
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	os.WriteFile(certFile, chain, 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	d = startDaemon(t, data, "--listen", "0.0.0.0:0", "--tls-cert", certFile, "--tls-key", keyFile, "--host", "backup.contoso.test")
	_, port, _ := net.SplitHostPort(d.addr)
	res = mailvault(t, "job", "list", "--data", data)
	mustf(t, res.code == 0, "a local command through the daemon's TLS listener: exit %d %s", res.code, res.stderr)
	code, _ = get(http.DefaultClient, "http://127.0.0.1:"+port+"/login", "")
	mustf(t, code == http.StatusBadRequest, "plain HTTP to the TLS listener: %d", code)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, host := range []string{"localhost", "backup.contoso.test:" + port} {
		code, _ = get(insecure, "https://127.0.0.1:"+port+"/login", host)
		mustf(t, code == http.StatusOK, "the login page as %s: %d", host, code)
	}
	code, _ = get(insecure, "https://127.0.0.1:"+port+"/login", "attacker.example")
	mustf(t, code == http.StatusMisdirectedRequest, "a foreign Host header over TLS: %d", code)
	tok, _ := os.ReadFile(filepath.Join(data, "daemon.token"))
	resp, err := insecure.PostForm("https://127.0.0.1:"+port+"/login", url.Values{"token": {strings.TrimSpace(string(tok))}})
	mustf(t, err == nil && resp.StatusCode == http.StatusSeeOther, "login over TLS: %v", err)
	ck := resp.Header.Get("Set-Cookie")
	mustf(t, strings.Contains(ck, "Secure") && strings.Contains(ck, "HttpOnly"), "the session cookie over TLS: %q", ck)
}
