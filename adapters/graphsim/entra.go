package graphsim

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Entra's discovery documents, as MSAL and azidentity read them before
// they ask for a token: the instance discovery of an authority host
// (/common/discovery/instance) and the tenant's OpenID configuration
// ({authority}/v2.0/.well-known/openid-configuration), whose token_endpoint
// they then use.

// entraRoute says whether a path is one of Entra's discovery documents,
// and answers it.
func (s *Server) entraRoute(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/v2.0/.well-known/openid-configuration"):
		s.openIDConfiguration(w, r, strings.Trim(strings.TrimSuffix(p, "/v2.0/.well-known/openid-configuration"), "/"))
	case p == "/common/discovery/instance" || p == "/organizations/discovery/instance":
		s.instanceDiscovery(w, r)
	case strings.HasSuffix(p, "/discovery/v2.0/keys"):
		entraJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
	default:
		return false
	}
	return true
}

// knownTenant says whether Entra would know the tenant by this name: its
// id, or a domain of its mailboxes.
func (s *Server) knownTenant(name string) bool {
	if strings.EqualFold(name, s.creds.TenantID) {
		return true
	}
	for _, m := range s.mailboxes {
		if at := strings.LastIndexByte(m.Address, '@'); at >= 0 && strings.EqualFold(m.Address[at+1:], name) {
			return true
		}
	}
	return false
}

func (s *Server) authorityHost(r *http.Request) string { return "https://" + r.Host }

func (s *Server) openIDConfiguration(w http.ResponseWriter, r *http.Request, tenant string) {
	if !s.knownTenant(tenant) && tenant != "organizations" && tenant != "common" {
		entraJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + tenant + "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
			"error_codes":       []int{90002}})
		return
	}
	// Entra names the tenant by its id in the document, whatever name it
	// was asked by; the multi-tenant names keep their placeholder.
	id := s.creds.TenantID
	if tenant == "organizations" || tenant == "common" {
		id = "{tenantid}"
	}
	base := s.authorityHost(r) + "/" + id
	entraJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     s.authorityHost(r) + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host",
			"aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":   base + "/kerberos",
		"tenant_region_scope": "EU",
		"cloud_instance_name": "microsoftonline.com",
		"msgraph_host":        r.Host,
	})
}

// instanceDiscovery answers as Entra does for an authority it knows: the
// tenant discovery endpoint, and this host as its own only alias.
func (s *Server) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	auth := r.URL.Query().Get("authorization_endpoint")
	host := r.Host
	tenant := "common"
	if rest, ok := strings.CutPrefix(auth, "https://"+host+"/"); ok {
		tenant, _, _ = strings.Cut(rest, "/")
	}
	entraJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.authorityHost(r) + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []any{map[string]any{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

func entraJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=86400, private")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// clientCredentialsScope checks a client-credentials request's scope as
// Entra does: one resource's /.default, beside which the OpenID scopes
// MSAL adds (openid, profile, offline_access, email) are ignored. It
// returns the resource scope, or "" when there is not exactly one.
func clientCredentialsScope(scope string) string {
	var resource []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "profile", "offline_access", "email":
		default:
			resource = append(resource, sc)
		}
	}
	if len(resource) != 1 || !strings.HasSuffix(resource[0], "/.default") {
		return ""
	}
	return resource[0]
}
