// Package simentra is the Microsoft identity platform (Entra ID) as the
// wire simulators need it: the v2 token endpoint for client credentials,
// with Entra's errors; the discovery documents MSAL and azidentity read
// before they ask for a token; and the tokens it issued, each for one
// resource, for the simulated service to check.
package simentra

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/adapters/simtenant"
)

// Credentials are the app registration the identity platform accepts.
type Credentials struct {
	TenantID     string
	ClientID     string
	ClientSecret string
}

// Entra issues and checks tokens for one tenant and one app registration.
type Entra struct {
	creds   Credentials
	ttl     time.Duration
	now     func() time.Time
	domains []string // the tenant's domains: it is known by these too

	mu     sync.Mutex
	tokens map[string]issued
	count  int
}

type issued struct {
	expires  time.Time
	resource string // the /.default scope's resource, e.g. https://graph.microsoft.com
}

// New returns an identity platform for creds (empty fields are generated)
// whose tokens live ttl, known by the tenant id and by domains.
func New(creds Credentials, ttl time.Duration, now func() time.Time, domains []string) *Entra {
	if creds.TenantID == "" {
		creds.TenantID = simtenant.GUID("tenant", RandomHex(8))
	}
	if creds.ClientID == "" {
		creds.ClientID = simtenant.GUID("client", RandomHex(8))
	}
	if creds.ClientSecret == "" {
		creds.ClientSecret = RandomHex(4) + "~" + RandomHex(18)
	}
	if ttl <= 0 {
		ttl = 3599 * time.Second
	}
	return &Entra{creds: creds, ttl: ttl, now: now, domains: domains, tokens: map[string]issued{}}
}

// RandomHex is n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Credentials returns the app registration accepted.
func (e *Entra) Credentials() Credentials { return e.creds }

// Issued counts the tokens issued.
func (e *Entra) Issued() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count
}

// TokenProblem is why a token is refused.
type TokenProblem int

// Token problems.
const (
	TokenValid TokenProblem = iota
	TokenUnknown
	TokenWrongAudience
	TokenExpired
)

// Check says whether tok was issued for resource and is still valid.
func (e *Entra) Check(tok, resource string) TokenProblem {
	e.mu.Lock()
	is, known := e.tokens[tok]
	e.mu.Unlock()
	switch {
	case !known:
		return TokenUnknown
	case !strings.EqualFold(is.resource, resource):
		return TokenWrongAudience
	case !e.now().Before(is.expires):
		return TokenExpired
	}
	return TokenValid
}

// Expire makes every issued token expired.
func (e *Entra) Expire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.tokens {
		v.expires = time.Time{}
		e.tokens[k] = v
	}
}

// ServeHTTP answers the token endpoint and the discovery documents; Route
// says whether a request is for them.
func (e *Entra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !e.Route(w, r) {
		http.NotFound(w, r)
	}
}

// Route answers r when it is for the identity platform and says whether
// it was.
func (e *Entra) Route(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		e.token(w, r)
	case r.Method != http.MethodGet:
		return false
	case strings.HasSuffix(p, "/v2.0/.well-known/openid-configuration"):
		e.openIDConfiguration(w, r, strings.Trim(strings.TrimSuffix(p, "/v2.0/.well-known/openid-configuration"), "/"))
	case p == "/common/discovery/instance" || p == "/organizations/discovery/instance":
		e.instanceDiscovery(w, r)
	case strings.HasSuffix(p, "/discovery/v2.0/keys"):
		writeJSON(w, http.StatusOK, "max-age=86400, private", map[string]any{"keys": []any{}})
	default:
		return false
	}
	return true
}

// knownTenant says whether Entra would know the tenant by this name: its
// id, or one of its domains.
func (e *Entra) knownTenant(name string) bool {
	if strings.EqualFold(name, e.creds.TenantID) {
		return true
	}
	for _, d := range e.domains {
		if strings.EqualFold(d, name) {
			return true
		}
	}
	return false
}

// fail answers as Entra does: an AADSTS error with its trace ids.
func fail(w http.ResponseWriter, status int, code string, num int, desc string) {
	now := time.Now().UTC()
	trace := simtenant.GUID("trace", RandomHex(4))
	full := fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", num, desc, trace, simtenant.GUID("corr", RandomHex(4)), now.Format("2006-01-02 15:04:05Z"))
	writeJSON(w, status, "no-store, no-cache", map[string]any{"error": code, "error_description": full, "error_codes": []int{num},
		"timestamp": now.Format("2006-01-02 15:04:05Z"), "trace_id": trace, "correlation_id": simtenant.GUID("corr", RandomHex(4)),
		"error_uri": fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", num)})
}

// token is the v2 token endpoint for client credentials.
func (e *Entra) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(w, http.StatusBadRequest, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return
	}
	tenant := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	resource := clientCredentialsScope(r.PostForm.Get("scope"))
	switch {
	case !e.knownTenant(tenant):
		fail(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	case r.PostForm.Get("grant_type") != "client_credentials":
		fail(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
	case id != e.creds.ClientID:
		fail(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", id, e.creds.TenantID))
	case secret != e.creds.ClientSecret:
		fail(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", e.creds.ClientID))
	case resource == "":
		fail(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", r.PostForm.Get("scope")))
	default:
		b := make([]byte, 48)
		_, _ = rand.Read(b)
		tok := "eyJ0eXAiOiJKV1QiLCJzaW0iOnRydWV9." + base64.RawURLEncoding.EncodeToString(b) + ".sim"
		e.mu.Lock()
		e.tokens[tok] = issued{expires: e.now().Add(e.ttl), resource: strings.TrimSuffix(resource, "/.default")}
		e.count++
		e.mu.Unlock()
		secs := int(e.ttl.Seconds())
		writeJSON(w, http.StatusOK, "no-store, no-cache", map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok})
	}
}

func authorityHost(r *http.Request) string { return "https://" + r.Host }

func (e *Entra) openIDConfiguration(w http.ResponseWriter, r *http.Request, tenant string) {
	if !e.knownTenant(tenant) && tenant != "organizations" && tenant != "common" {
		writeJSON(w, http.StatusBadRequest, "no-store", map[string]any{"error": "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + tenant + "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
			"error_codes":       []int{90002}})
		return
	}
	// Entra names the tenant by its id in the document, whatever name it
	// was asked by; the multi-tenant names keep their placeholder.
	id := e.creds.TenantID
	if tenant == "organizations" || tenant == "common" {
		id = "{tenantid}"
	}
	base := authorityHost(r) + "/" + id
	writeJSON(w, http.StatusOK, "max-age=86400, private", map[string]any{
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
		"userinfo_endpoint":                     authorityHost(r) + "/oidc/userinfo",
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
func (e *Entra) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	auth := r.URL.Query().Get("authorization_endpoint")
	tenant := "common"
	if rest, ok := strings.CutPrefix(auth, authorityHost(r)+"/"); ok {
		tenant, _, _ = strings.Cut(rest, "/")
	}
	writeJSON(w, http.StatusOK, "max-age=86400, private", map[string]any{
		"tenant_discovery_endpoint": authorityHost(r) + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []any{map[string]any{"preferred_network": r.Host, "preferred_cache": r.Host, "aliases": []string{r.Host}}},
	})
}

func writeJSON(w http.ResponseWriter, status int, cache string, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", cache)
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
