package daemon

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr    string
		tls, ok bool
	}{
		{"127.0.0.1:7070", false, true},
		{"[::1]:7070", false, true},
		{"localhost:7070", false, true},
		{"127.0.0.2:7070", false, true},
		{"0.0.0.0:7070", false, false},
		{":7070", false, false},
		{"[::]:7070", false, false},
		{"192.0.2.10:7070", false, false},
		{"backup.contoso.test:7070", false, false},
		{"0.0.0.0:7070", true, true},
		{"192.0.2.10:7070", true, true},
	} {
		err := CheckListen(c.addr, c.tls)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrPlainBeyondLoopback) {
			t.Errorf("%s tls=%v: %v", c.addr, c.tls, err)
		}
	}
	if err := CheckListen("no port", false); err == nil {
		t.Error("an address without a port was taken")
	}
}

func TestHostGuard(t *testing.T) {
	allowed := AllowedHosts("0.0.0.0:7070", nil, []string{"Backup.Contoso.test"})
	h := HostGuard(allowed, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for host, want := range map[string]int{
		"127.0.0.1:7070":          http.StatusOK,
		"localhost":               http.StatusOK,
		"[::1]:7070":              http.StatusOK,
		"backup.contoso.test":     http.StatusOK,
		"BACKUP.contoso.test:443": http.StatusOK,
		"0.0.0.0:7070":            http.StatusMisdirectedRequest,
		"attacker.example":        http.StatusMisdirectedRequest,
		"":                        http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	if !AllowedHosts("192.0.2.10:7070", nil, nil)["192.0.2.10"] {
		t.Error("the listen address itself is not accepted")
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:7070": "127.0.0.1:7070", "[::]:7070": "[::1]:7070", "127.0.0.1:9": "127.0.0.1:9"} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := LocalAddr(a); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
