package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
)

// The local API's error kinds: the typed errors of the application, as
// they travel over HTTP and are turned back into the same errors by the
// Client, so errors.Is works on both sides of the wire.
var errorKinds = []struct {
	kind   string
	err    error
	status int
}{
	{"not_found", app.ErrNotFound, http.StatusNotFound},
	{"exists", app.ErrExists, http.StatusConflict},
	{"in_use", app.ErrInUse, http.StatusConflict},
	{"running", app.ErrRunning, http.StatusConflict},
	{"invalid", app.ErrInvalid, http.StatusBadRequest},
	{"no_daemon", app.ErrNoDaemon, http.StatusServiceUnavailable},
}

// apiError is the body of every refused request.
type apiError struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// StartStop is the answer to job start and job stop.
type StartStop struct {
	Job   string `json:"job"`
	State string `json:"state"` // started | stopped
}

// Request bodies that carry a secret: the secret travels in the body (on
// loopback, with the API token), never in a URL, and goes straight to the
// secret store.
type (
	AddConnectionRequest struct {
		Name   string             `json:"name"`
		Spec   app.ConnectionSpec `json:"spec"`
		Secret string             `json:"secret"`
	}
	AddStorageRequest struct {
		Name          string              `json:"name"`
		Path          string              `json:"path"`
		Password      []byte              `json:"password,omitempty"`
		NoCompression bool                `json:"no_compression,omitempty"`
		Retention     domain.Retention    `json:"retention"`
		Remote        *vault.RemoteConfig `json:"remote,omitempty"`
	}
	AddStorageResponse struct {
		RecoveryKey string `json:"recovery_key,omitempty"`
	}
	SetAlertsRequest struct {
		Settings domain.AlertSettings `json:"settings"`
		Password string               `json:"password,omitempty"`
	}
	AlertsResponse struct {
		On       bool                 `json:"on"`
		Settings domain.AlertSettings `json:"settings"`
	}
)

// RegisterAPI adds the typed endpoints of the application to mux;
// authentication is the caller's (the daemon puts its API token in front of
// every /v1/ path). Refusals carry the application's error kind.
//
//	GET    /v1/connections          []app.Connection
//	POST   /v1/connections          AddConnectionRequest
//	PUT    /v1/connections/{name}   AddConnectionRequest (edit; an empty secret keeps it)
//	DELETE /v1/connections/{name}
//	GET    /v1/storages             []app.Storage
//	POST   /v1/storages             AddStorageRequest -> AddStorageResponse
//	DELETE /v1/storages/{name}
//	GET    /v1/jobs                 the job list, live ([]app.Job)
//	POST   /v1/jobs                 jobspec.Spec (job create)
//	GET    /v1/jobs/{name}          jobspec.Spec
//	PUT    /v1/jobs/{name}          jobspec.Spec (job edit)
//	DELETE /v1/jobs/{name}
//	POST   /v1/jobs/{name}/start    StartStop
//	POST   /v1/jobs/{name}/stop     StartStop
//	GET    /v1/alerts               AlertsResponse (never the password)
//	PUT    /v1/alerts               SetAlertsRequest
//	DELETE /v1/alerts
func RegisterAPI(mux *http.ServeMux, svc *app.Service) {
	list := func(path string, fn func(context.Context) (any, error)) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			v, err := fn(r.Context())
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	do := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			v, err := fn(r)
			if err != nil {
				writeError(w, err)
				return
			}
			if v == nil {
				v = struct{}{}
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	list("/v1/connections", func(ctx context.Context) (any, error) { return nonNil(svc.Connections(ctx)) })
	list("/v1/storages", func(ctx context.Context) (any, error) { return nonNil(svc.ListStorages(ctx)) })
	list("/v1/jobs", func(ctx context.Context) (any, error) { return nonNil(svc.ListJobs(ctx)) })
	list("/v1/alerts", func(ctx context.Context) (any, error) {
		s, on, err := svc.AlertSettings(ctx)
		return AlertsResponse{On: on, Settings: s}, err
	})
	do("POST /v1/connections", func(r *http.Request) (any, error) {
		var in AddConnectionRequest
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, svc.AddConnection(r.Context(), in.Name, in.Spec, credential.New(in.Secret))
	})
	do("PUT /v1/connections/{name}", func(r *http.Request) (any, error) {
		var in AddConnectionRequest
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, svc.EditConnection(r.Context(), r.PathValue("name"), in.Spec, credential.New(in.Secret))
	})
	do("DELETE /v1/connections/{name}", func(r *http.Request) (any, error) {
		return nil, svc.RemoveConnection(r.Context(), r.PathValue("name"))
	})
	do("POST /v1/storages", func(r *http.Request) (any, error) {
		var in AddStorageRequest
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		key, err := svc.AddStorage(r.Context(), app.AddStorage{Name: in.Name, Path: in.Path, Password: in.Password,
			Options: app.StorageOptions{NoCompression: in.NoCompression, Retention: in.Retention, Remote: in.Remote}})
		return AddStorageResponse{RecoveryKey: key}, err
	})
	do("DELETE /v1/storages/{name}", func(r *http.Request) (any, error) {
		return nil, svc.RemoveStorage(r.Context(), r.PathValue("name"))
	})
	do("POST /v1/jobs", func(r *http.Request) (any, error) {
		var spec jobspec.Spec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return nil, svc.CreateJob(r.Context(), spec)
	})
	do("GET /v1/jobs/{name}", func(r *http.Request) (any, error) { return svc.JobSpec(r.Context(), r.PathValue("name")) })
	do("PUT /v1/jobs/{name}", func(r *http.Request) (any, error) {
		var spec jobspec.Spec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		if spec.Name != r.PathValue("name") {
			return nil, &domain.ConfigError{Kind: "job", Name: spec.Name, Err: app.ErrInvalid,
				Msg: fmt.Sprintf("the definition is of job %q, not %q (a job is renamed by delete and create)", spec.Name, r.PathValue("name"))}
		}
		return nil, svc.EditJob(r.Context(), spec)
	})
	do("DELETE /v1/jobs/{name}", func(r *http.Request) (any, error) { return nil, svc.DeleteJob(r.Context(), r.PathValue("name")) })
	for verb, fn := range map[string]func(context.Context, string) error{"start": svc.StartJob, "stop": svc.StopJob} {
		done := map[string]string{"start": "started", "stop": "stopped"}[verb]
		do("POST /v1/jobs/{name}/"+verb, func(r *http.Request) (any, error) {
			name := r.PathValue("name")
			return StartStop{Job: name, State: done}, fn(r.Context(), name)
		})
	}
	do("PUT /v1/alerts", func(r *http.Request) (any, error) {
		var in SetAlertsRequest
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, svc.SetAlerts(r.Context(), in.Settings, credential.New(in.Password))
	})
	do("DELETE /v1/alerts", func(r *http.Request) (any, error) { return nil, svc.AlertsOff(r.Context()) })
}

// nonNil makes an empty list [] in JSON, not null.
func nonNil[T any](v []T, err error) (any, error) {
	if v == nil {
		v = []T{}
	}
	return v, err
}

// decode reads a request body of at most 1 MiB.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &domain.ConfigError{Err: app.ErrInvalid, Msg: "the request body does not read: " + err.Error()}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			writeJSON(w, k.status, apiError{Error: err.Error(), Kind: k.kind})
			return
		}
	}
	writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
}

// Client calls a running daemon's local API.
type Client struct {
	// Addr is host:port of the daemon's listener (DATA/daemon.json).
	Addr  string
	Token string
	// TLSPin, when the daemon serves TLS, is its certificate's SHA-256
	// (DATA/daemon.json): the only certificate the client accepts.
	TLSPin string
	// HTTP, if set, sends the requests (default: a minute per call, and
	// no limit on an operation's whole answer).
	HTTP *http.Client
}

// url is the daemon's address for path.
func (c Client) url(path string) string {
	if c.TLSPin != "" {
		return "https://" + c.Addr + path
	}
	return "http://" + c.Addr + path
}

// transport is a transport of the call's own (no connection kept after
// it: a command makes few calls), pinned to the daemon's certificate when
// it serves TLS.
func (c Client) transport() *http.Transport {
	t := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if c.TLSPin != "" {
		t.TLSClientConfig = pinned(c.TLSPin)
	}
	return t
}

// ErrUnreachable: no daemon answers at the address it left.
var ErrUnreachable = errors.New("the daemon does not answer")

// The Client has the application's methods, so a port can hold either.

func (c Client) Connections(ctx context.Context) ([]app.Connection, error) {
	var out []app.Connection
	return out, c.call(ctx, http.MethodGet, "/v1/connections", nil, &out)
}

func (c Client) AddConnection(ctx context.Context, name string, spec app.ConnectionSpec, secret credential.Secret) error {
	return c.call(ctx, http.MethodPost, "/v1/connections", AddConnectionRequest{Name: name, Spec: spec, Secret: secret.Reveal()}, nil)
}

func (c Client) EditConnection(ctx context.Context, name string, spec app.ConnectionSpec, secret credential.Secret) error {
	return c.call(ctx, http.MethodPut, "/v1/connections/"+url.PathEscape(name), AddConnectionRequest{Name: name, Spec: spec, Secret: secret.Reveal()}, nil)
}

func (c Client) RemoveConnection(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/connections/"+url.PathEscape(name), nil, nil)
}

func (c Client) ListStorages(ctx context.Context) ([]app.Storage, error) {
	var out []app.Storage
	return out, c.call(ctx, http.MethodGet, "/v1/storages", nil, &out)
}

func (c Client) AddStorage(ctx context.Context, in app.AddStorage) (string, error) {
	var out AddStorageResponse
	err := c.call(ctx, http.MethodPost, "/v1/storages", AddStorageRequest{Name: in.Name, Path: in.Path, Password: in.Password,
		NoCompression: in.Options.NoCompression, Retention: in.Options.Retention, Remote: in.Options.Remote}, &out)
	return out.RecoveryKey, err
}

func (c Client) RemoveStorage(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/storages/"+url.PathEscape(name), nil, nil)
}

func (c Client) ListJobs(ctx context.Context) ([]app.Job, error) {
	var out []app.Job
	return out, c.call(ctx, http.MethodGet, "/v1/jobs", nil, &out)
}

func (c Client) CreateJob(ctx context.Context, spec jobspec.Spec) error {
	return c.call(ctx, http.MethodPost, "/v1/jobs", spec, nil)
}

func (c Client) EditJob(ctx context.Context, spec jobspec.Spec) error {
	return c.call(ctx, http.MethodPut, "/v1/jobs/"+url.PathEscape(spec.Name), spec, nil)
}

func (c Client) DeleteJob(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(name), nil, nil)
}

func (c Client) JobSpec(ctx context.Context, name string) (jobspec.Spec, error) {
	var out jobspec.Spec
	return out, c.call(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name), nil, &out)
}

func (c Client) StartJob(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/start", nil, &StartStop{})
}

func (c Client) StopJob(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/stop", nil, &StartStop{})
}

func (c Client) SetAlerts(ctx context.Context, settings domain.AlertSettings, password credential.Secret) error {
	return c.call(ctx, http.MethodPut, "/v1/alerts", SetAlertsRequest{Settings: settings, Password: password.Reveal()}, nil)
}

func (c Client) AlertsOff(ctx context.Context) error {
	return c.call(ctx, http.MethodDelete, "/v1/alerts", nil, nil)
}

func (c Client) AlertSettings(ctx context.Context) (domain.AlertSettings, bool, error) {
	var out AlertsResponse
	err := c.call(ctx, http.MethodGet, "/v1/alerts", nil, &out)
	return out.Settings, out.On, err
}

// do sends a request with the API token through hc.
func (c Client) do(hc *http.Client, req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Addr, err)
	}
	return resp, nil
}

// refusal turns a refused request's answer back into the application's
// typed error.
func refusal(status int, method, path string, body []byte) error {
	var ae apiError
	if json.Unmarshal(body, &ae) != nil || ae.Error == "" {
		return fmt.Errorf("the daemon refused %s %s: HTTP %d %s", method, path, status, strings.TrimSpace(string(body)))
	}
	for _, k := range errorKinds {
		if k.kind == ae.Kind {
			if k.err == app.ErrNoDaemon {
				return k.err
			}
			return &domain.ConfigError{Err: k.err, Msg: ae.Error}
		}
	}
	return errors.New(ae.Error)
}

func (c Client) call(ctx context.Context, method, path string, in, out any) error {
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), reqBody)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
		if c.TLSPin != "" {
			hc.Transport = c.transport()
		}
	}
	resp, err := c.do(hc, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return refusal(resp.StatusCode, method, path, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("the daemon's answer to %s %s does not read: %w", method, path, err)
	}
	return nil
}
