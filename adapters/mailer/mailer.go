// Package mailer sends mailvault's alert mails over SMTP with go-mail:
// STARTTLS (mandatory by default), PLAIN/LOGIN authentication when a user
// is set, and the administrator's own CA for a private relay.
package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/domain"
)

// Mailer sends to the settings' recipients.
type Mailer struct {
	Settings domain.AlertSettings
	Password credential.Secret
}

// Send sends one plain-text mail. The error never holds the password.
func (m Mailer) Send(ctx context.Context, subject, body string) error {
	s := m.Settings
	msg := gomail.NewMsg()
	if err := msg.From(s.From); err != nil {
		return fmt.Errorf("alert mail: from %q: %w", s.From, err)
	}
	if err := msg.To(s.To...); err != nil {
		return fmt.Errorf("alert mail: recipients: %w", err)
	}
	msg.Subject(subject)
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, body)
	opts := []gomail.Option{gomail.WithPort(s.Port), gomail.WithTimeout(30 * time.Second)}
	switch s.TLS {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "opportunistic":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	tc := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	if s.CACert != "" {
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return fmt.Errorf("alert mail: read the CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("alert mail: %s holds no PEM certificate", s.CACert)
		}
		tc.RootCAs = pool
	}
	opts = append(opts, gomail.WithTLSConfig(tc))
	if s.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(s.Username), gomail.WithPassword(m.Password.Reveal()))
	}
	c, err := gomail.NewClient(s.Host, opts...)
	if err != nil {
		return fmt.Errorf("alert mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("alert mail to %s:%d: %w", s.Host, s.Port, err)
	}
	return nil
}
