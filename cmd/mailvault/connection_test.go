package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/pipeline"
)

// A connection's settings reach the client the same way from every entry
// point: here, the EWS account's max concurrency becomes the app-wide
// in-flight limit, and an unknown type is refused by the registry.
func TestOpenConnectionAppliesTheConnectionsSettings(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		spec       connectionSpec
		configured int // --app-max-in-flight
		want       int
	}{
		{"the default EWSMaxConcurrency", connectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc"}, 0, ews.DefaultMaxConcurrency},
		{"the account's own", connectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", MaxConcurrency: 5}, 0, 5},
		{"a lower app limit stays", connectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", MaxConcurrency: 5}, 3, 3},
		{"a higher app limit is capped", connectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", MaxConcurrency: 5}, 40, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := openConnection(ctx, zerolog.Nop(), "c", tc.spec, credential.New("pw"), connectionScope{mailboxes: []string{"a@contoso.test"}})
			if err != nil {
				t.Fatal(err)
			}
			cfg := pipeline.DefaultConfig()
			cfg.Limits.AppMaxInFlight = tc.configured
			c.limit(&cfg)
			if cfg.Limits.AppMaxInFlight != tc.want || c.source() == nil || c.target() == nil {
				t.Fatalf("app in flight %d, want %d", cfg.Limits.AppMaxInFlight, tc.want)
			}
		})
	}
	_, err := openConnection(ctx, zerolog.Nop(), "old", connectionSpec{Type: "imap"}, credential.New("pw"), connectionScope{})
	if err == nil || !strings.Contains(err.Error(), `type "imap": use ews or graph`) {
		t.Fatalf("unknown type: %v", err)
	}
}
