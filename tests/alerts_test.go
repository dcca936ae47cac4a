package tests

import (
	"crypto/tls"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvault/adapters/selfsigned"
)

// smtpSink is a local SMTP server for the tests: STARTTLS with a
// self-signed certificate, AUTH PLAIN required, every message kept.
type smtpSink struct {
	mu       sync.Mutex
	messages []sinkMessage
	addr     string
	caCert   string
	tlsUsed  bool
}

type sinkMessage struct {
	from string
	to   []string
	data string
}

const smtpUser, smtpPassword = "alerts@contoso.test", "smtp-S3cret-pw"

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	cert, caFile, err := selfsigned.Write(t.TempDir(), net.ParseIP("127.0.0.1"))
	mustf(t, err == nil, "certificate: %v", err)
	sink := &smtpSink{caCert: caFile}
	srv := smtp.NewServer(sinkBackend{sink})
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(t, err == nil, "listen: %v", err)
	sink.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sink
}

func (s *smtpSink) wait(t *testing.T, n int) []sinkMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		got := append([]sinkMessage(nil), s.messages...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		mustf(t, time.Now().Before(deadline), "%d mails arrived, want %d", len(got), n)
		time.Sleep(20 * time.Millisecond)
	}
}

type sinkBackend struct{ s *smtpSink }

func (b sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{s: b.s, conn: c}, nil
}

type sinkSession struct {
	s      *smtpSink
	conn   *smtp.Conn
	authed bool
	msg    sinkMessage
}

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != smtpUser || pass != smtpPassword {
			return errors.New("invalid credentials")
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	ss.msg.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.msg.to = append(ss.msg.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.msg.data = string(b)
	_, tlsOK := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, ss.msg)
	ss.s.tlsUsed = ss.s.tlsUsed || tlsOK
	ss.s.mu.Unlock()
	ss.msg = sinkMessage{}
	return nil
}

func (ss *sinkSession) Reset()        {}
func (ss *sinkSession) Logout() error { return nil }

// A run that ends with quarantined items sends an alert mail over
// STARTTLS with authentication; a clean run sends none (bad news only);
// the SMTP password is nowhere in the data directory or the output.
func TestAlertMailForQuarantinedItems(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sink := startSMTPSink(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pw := filepath.Join(dir, "smtp-pw")
	os.WriteFile(pw, []byte(smtpPassword), 0o600)
	host, port, _ := net.SplitHostPort(sink.addr)
	set := mailvault(t, "alerts", "set", "--data", data, "--smtp-host", host, "--smtp-port", port, "--from", "mailvault@contoso.test",
		"--to", "admin@contoso.test,backup-team@contoso.test", "--username", smtpUser, "--password-file", pw, "--ca-cert", sink.caCert)
	mustf(t, set.code == 0, "alerts set: %d %s", set.code, set.stderr)
	bad := mailvault(t, "alerts", "set", "--data", data, "--smtp-host", host, "--from", "nope", "--to", "x", "--starttls", "maybe")
	mustf(t, bad.code == 2 && strings.Contains(bad.stderr, "starttls") && strings.Contains(bad.stderr, "from"), "bad settings: %d %s", bad.code, bad.stderr)

	clean := writeTenant(t, dir, "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 30\n")
	_, res := backup(t, data, clean)
	mustf(t, res.code == 0, "clean backup: %s", res.stderr)
	os.Remove(filepath.Join(dir, "tenant.yaml"))
	dirty := writeTenant(t, dir, "mailboxes:\n  - address: b@contoso.test\n    folders:\n      - path: Inbox\n        items: 30\n        dirty: [4]\n")
	r, res := backup(t, data, dirty)
	mustf(t, res.code == 3 && r.ItemsQuarantined == 1, "dirty backup: %d %+v", res.code, r)
	msgs := sink.wait(t, 1)
	time.Sleep(200 * time.Millisecond) // a mail about the clean run would have come first; none may
	mustf(t, len(sink.wait(t, 1)) == 1, "the clean run sent a mail too")
	m := msgs[0]
	sink.mu.Lock()
	tlsUsed := sink.tlsUsed
	sink.mu.Unlock()
	mustf(t, tlsUsed, "the alert was not sent over STARTTLS")
	mustf(t, m.from == "mailvault@contoso.test" && len(m.to) == 2, "envelope %q -> %v", m.from, m.to)
	parsed, err := mail.ReadMessage(strings.NewReader(m.data))
	mustf(t, err == nil, "the alert is not a mail: %v", err)
	mustf(t, parsed.Header.Get("Subject") == "mailvault: run "+r.RunID+" finished with warnings, 1 items quarantined", "subject %q", parsed.Header.Get("Subject"))
	var body io.Reader = parsed.Body
	if strings.EqualFold(parsed.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, _ := io.ReadAll(body)
	mustf(t, strings.Contains(string(text), "b@contoso.test / Inbox #4") && strings.Contains(string(text), "ErrorCorruptData"), "body does not name the item:\n%s", text)
	mustNotContain(t, data, smtpPassword)
	mustf(t, !strings.Contains(res.stdout+res.stderr+set.stdout+set.stderr, smtpPassword), "the password was printed")
	test := mailvault(t, "alerts", "test", "--data", data)
	mustf(t, test.code == 0 && len(sink.wait(t, 2)) == 2, "alerts test: %d %s", test.code, test.stderr)
}
