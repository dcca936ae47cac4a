package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Microsoft's own token library, MSAL for Python, gets a client-credentials
// token from the Graph simulator as it would from Entra (the tenant named
// by id or by domain): it reads the authority's OpenID configuration, sends
// the scopes it adds, and the token then opens Graph.
func TestMSALGetsTokensFromTheSimulator(t *testing.T) {
	t.Parallel()
	needPythonModules(t, "msal", "requests")
	sim := startGraphSim(t, incrementalTenant)
	base := strings.TrimSuffix(sim.TokenURL, "/"+sim.TenantID+"/oauth2/v2.0/token")
	for _, tenant := range []string{sim.TenantID, "contoso.test"} {
		cmd := exec.Command(python3, filepath.Join("testdata", "msal_token.py"), base+"/"+tenant, sim.ClientID, sim.secretFile, sim.CACert, sim.GraphURL)
		// requests prefers these to the CA it is given; the last of a
		// repeated variable wins.
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+sim.CACert, "CURL_CA_BUNDLE="+sim.CACert)
		out, err := cmd.CombinedOutput()
		mustf(t, !strings.Contains(string(out), sim.ClientSecret), "the secret was printed")
		mustf(t, err == nil, "MSAL with the authority %s/%s: %v\n%s", base, tenant, err, out)
		var r struct {
			Status    int    `json:"status"`
			Users     int    `json:"users"`
			TokenType string `json:"token_type"`
		}
		mustf(t, json.Unmarshal(out, &r) == nil && r.Status == 200 && r.Users == 1 && r.TokenType == "Bearer", "MSAL (tenant %s): %s", tenant, out)
	}
}
