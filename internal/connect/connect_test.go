package connect_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/internal/connect"
	"github.com/mailvault/mailvault/pipeline"
)

// A connection's settings reach the client the same way from every entry
// point: here, the EWS account's max concurrency becomes the app-wide
// in-flight limit, and an unknown type is refused by the registry.
func TestOpenConnectionAppliesTheConnectionsSettings(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		spec       app.ConnectionSpec
		configured int // --app-max-in-flight
		want       int
	}{
		{"the default EWSMaxConcurrency", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc"}, 0, ews.DefaultMaxConcurrency},
		{"the account's own", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", MaxConcurrency: 5}, 0, 5},
		{"a lower app limit stays", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", MaxConcurrency: 5}, 3, 3},
		{"a higher app limit is capped", app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", MaxConcurrency: 5}, 40, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect.Connector{Log: zerolog.Nop()}.Open(ctx, "c", tc.spec, credential.New("pw"), app.Scope{Mailboxes: []string{"a@contoso.test"}})
			if err != nil {
				t.Fatal(err)
			}
			cfg := pipeline.DefaultConfig()
			cfg.Limits.AppMaxInFlight = tc.configured
			c.Limit(&cfg)
			if cfg.Limits.AppMaxInFlight != tc.want || c.Source() == nil || c.Target() == nil {
				t.Fatalf("app in flight %d, want %d", cfg.Limits.AppMaxInFlight, tc.want)
			}
		})
	}
	_, err := connect.Connector{Log: zerolog.Nop()}.Open(ctx, "old", app.ConnectionSpec{Type: "imap"}, credential.New("pw"), app.Scope{})
	if !errors.Is(err, app.ErrInvalid) || !strings.Contains(err.Error(), `type "imap": use ews or graph`) {
		t.Fatalf("unknown type: %v", err)
	}
}
