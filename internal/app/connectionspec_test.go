package app_test

import (
	"errors"
	"testing"

	"github.com/mailvault/mailvault/internal/app"
)

// A connection's numbers are bounded: they size requests and concurrency.
func TestConnectionSpecBounds(t *testing.T) {
	ews := func(batch, conc int) app.ConnectionSpec {
		return app.ConnectionSpec{Type: "ews", EWSURL: "https://mail.contoso.test/EWS/Exchange.asmx", Username: "svc", Batch: batch, MaxConcurrency: conc}
	}
	graph := func(page int) app.ConnectionSpec {
		return app.ConnectionSpec{Type: "graph", TenantID: "T", ClientID: "C", PageSize: page}
	}
	for _, c := range []struct {
		spec app.ConnectionSpec
		ok   bool
	}{
		{ews(0, 0), true}, {ews(1000, 1024), true}, {ews(1001, 1), false}, {ews(1, 1025), false}, {ews(-1, 1), false}, {ews(1<<40, 1), false},
		{graph(500), true}, {graph(501), false}, {graph(-1), false},
	} {
		err := c.spec.Validate("c")
		if c.ok != (err == nil) || err != nil && !errors.Is(err, app.ErrInvalid) {
			t.Errorf("%+v: %v", c.spec, err)
		}
	}
}
