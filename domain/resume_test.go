package domain

import "testing"

func TestSourceIdentity(t *testing.T) {
	for _, c := range []struct{ typ, server, want string }{
		{"graph", "0C1D-ABCD", "graph:0c1d-abcd"},
		{"graph", " 0c1d-abcd ", "graph:0c1d-abcd"},
		{"ews", "https://Mail.Contoso.COM/EWS/Exchange.asmx", "ews:https://mail.contoso.com/EWS/Exchange.asmx"},
		{"ews", "HTTPS://mail.contoso.com/EWS/Exchange.asmx/", "ews:https://mail.contoso.com/EWS/Exchange.asmx"},
		{"ews", "https://user:pw@mail.contoso.com/EWS/Exchange.asmx?x=1", "ews:https://mail.contoso.com/EWS/Exchange.asmx"},
		{"sim", "/srv/tenant.yaml", "sim:/srv/tenant.yaml"},
	} {
		if got := SourceIdentity(c.typ, c.server); got != c.want {
			t.Errorf("SourceIdentity(%q, %q) = %q, want %q", c.typ, c.server, got, c.want)
		}
	}
}
