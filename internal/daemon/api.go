package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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

// RegisterAPI adds the typed job endpoints to mux; authentication is the
// caller's (the daemon puts its API token in front of every /v1/ path).
//
//	GET  /v1/jobs               the job list, live ([]app.Job)
//	POST /v1/jobs/{name}/start  job start (StartStop)
//	POST /v1/jobs/{name}/stop   job stop (StartStop)
func RegisterAPI(mux *http.ServeMux, svc *app.Service) {
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, _ *http.Request) {
		jobs, err := svc.ListJobs()
		if err != nil {
			writeError(w, err)
			return
		}
		if jobs == nil {
			jobs = []app.Job{}
		}
		writeJSON(w, http.StatusOK, jobs)
	})
	for verb, do := range map[string]func(context.Context, string) error{"start": svc.StartJob, "stop": svc.StopJob} {
		mux.HandleFunc("POST /v1/jobs/{name}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
			if err := do(r.Context(), name); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, StartStop{Job: name, State: verb + map[string]string{"start": "ed", "stop": "ped"}[verb]})
		})
	}
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
	HTTP  *http.Client
}

// ErrUnreachable: no daemon answers at the address it left.
var ErrUnreachable = errors.New("the daemon does not answer")

// Jobs is the daemon's job list.
func (c Client) Jobs(ctx context.Context) ([]app.Job, error) {
	var out []app.Job
	return out, c.call(ctx, http.MethodGet, "/v1/jobs", &out)
}

// StartJob starts a job in the daemon.
func (c Client) StartJob(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/start", &StartStop{})
}

// StopJob stops a job in the daemon.
func (c Client) StopJob(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/stop", &StartStop{})
}

func (c Client) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		if json.Unmarshal(body, &ae) != nil || ae.Error == "" {
			return fmt.Errorf("the daemon refused %s %s: HTTP %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(body)))
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
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("the daemon's answer to %s %s does not read: %w", method, path, err)
	}
	return nil
}
