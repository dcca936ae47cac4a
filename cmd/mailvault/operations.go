package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// An operation is a command that works on a storage or a server for the
// data directory: backup, restore, export, ls, find, verify, prune,
// repair, storage stats|passwd|retention, connection test, alerts test.
// Its input is a typed value that holds all it needs: absolute paths,
// secrets read by the caller from its files and its environment. It runs
// in this process, or, when a daemon holds the data directory, in the
// daemon at POST /v1/operations/{name} with the same input: no command
// line travels and no path is rewritten. The daemon streams back what the
// operation prints, as it prints it, and ends with the exit code.
type operationFunc func(ctx context.Context, g *globalFlags, raw json.RawMessage, out, errOut io.Writer) error

// operations are every operation by name, for the daemon.
var operations = map[string]operationFunc{}

// operation registers run under name and returns how a command starts it.
func operation[In any](name string, run func(ctx context.Context, g *globalFlags, in In, out, errOut io.Writer) error) func(cmd *cobra.Command, g *globalFlags, in In) error {
	if _, dup := operations[name]; dup {
		panic("operation " + name + " registered twice")
	}
	operations[name] = func(ctx context.Context, g *globalFlags, raw json.RawMessage, out, errOut io.Writer) error {
		var in In
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return usageErr("operation %s: the input does not read: %v", name, err)
		}
		return run(ctx, g, in, out, errOut)
	}
	return func(cmd *cobra.Command, g *globalFlags, in In) error {
		err := run(cmd.Context(), g, in, cmd.OutOrStdout(), cmd.ErrOrStderr())
		var dh *daemonHolds
		if !errors.As(err, &dh) {
			return err
		}
		// The daemon holds the data directory: it runs the operation.
		return runInDaemon(cmd.Context(), dh, name, in, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
}

// frame is one line of an operation's answer: output as it is printed,
// then the end.
type frame struct {
	// Out and Err are bytes as printed (base64 in JSON): a subject that is
	// not UTF-8 arrives as it is.
	Out  []byte `json:"out,omitempty"`
	Err  []byte `json:"err,omitempty"`
	End  bool   `json:"end,omitempty"`
	Code int    `json:"code,omitempty"`
	// Message and Hint are the error main prints, and its advice.
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// frameWriter writes one stream of an operation's output as frames.
type frameWriter struct {
	mu     *sync.Mutex
	enc    *json.Encoder
	flush  func()
	stderr bool
}

func (w frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := frame{Out: p}
	if w.stderr {
		f = frame{Err: p}
	}
	if err := w.enc.Encode(f); err != nil {
		return 0, err
	}
	w.flush()
	return len(p), nil
}

// serveOperations runs operations in the daemon for the command line.
func serveOperations(mux *http.ServeMux, ctx context.Context, g *globalFlags) {
	mux.HandleFunc("POST /v1/operations/{name}", func(w http.ResponseWriter, r *http.Request) {
		run, ok := operations[r.PathValue("name")]
		if !ok {
			http.Error(w, "no operation "+r.PathValue("name"), http.StatusNotFound)
			return
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		// The operation stops when the caller goes (Ctrl-C) or the daemon
		// stops.
		opCtx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		w.Header().Set("Content-Type", "application/x-ndjson")
		var mu sync.Mutex
		bw := bufio.NewWriter(w)
		flusher, _ := w.(http.Flusher)
		flush := func() {
			bw.Flush()
			if flusher != nil {
				flusher.Flush()
			}
		}
		// The answer starts now, so a caller waiting for its headers does
		// not give up on an operation that prints nothing for a while.
		w.WriteHeader(http.StatusOK)
		flush()
		enc := json.NewEncoder(bw)
		out := frameWriter{mu: &mu, enc: enc, flush: flush}
		errOut := frameWriter{mu: &mu, enc: enc, flush: flush, stderr: true}
		err = run(opCtx, g, raw, out, errOut)
		end := frame{End: true, Code: exitOK}
		if err != nil {
			end.Code = exitErrors
			var ee *exitError
			switch {
			case errors.As(err, &ee):
				end.Code = ee.code
				if ee.err != nil {
					end.Message, end.Hint = ee.err.Error(), advice(ee.err)
				}
			default:
				end.Message, end.Hint = err.Error(), advice(err)
			}
		}
		mu.Lock()
		enc.Encode(end)
		flush()
		mu.Unlock()
	})
}

// remoteError is an operation's error as the daemon reported it.
type remoteError struct{ message, hint string }

func (e remoteError) Error() string { return e.message }
func (e remoteError) Hint() string  { return e.hint }

// runInDaemon runs an operation in the daemon and prints what it prints.
func runInDaemon(ctx context.Context, dh *daemonHolds, name string, in any, stdout, stderr io.Writer) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+dh.ep.Addr+"/v1/operations/"+url.PathEscape(name), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+dh.token)
	req.Header.Set("Content-Type", "application/json")
	// No overall timeout: a backup runs as long as it runs; the
	// connection's own failures end it.
	resp, err := (&http.Client{Transport: &http.Transport{ResponseHeaderTimeout: time.Minute}}).Do(req)
	if err != nil {
		return &exitError{code: exitErrors, err: fmt.Errorf("the data directory is held by the daemon (pid %d), which does not answer at %s: %v", dh.ep.PID, dh.ep.Addr, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &exitError{code: exitErrors, err: fmt.Errorf("the daemon refused %s (HTTP %d): %s", name, resp.StatusCode, bytes.TrimSpace(msg))}
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			return &exitError{code: exitErrors, err: fmt.Errorf("the daemon's answer to %s ended early: %v", name, err)}
		}
		switch {
		case f.End && f.Code == exitOK:
			return nil
		case f.End && f.Message == "":
			return &exitError{code: f.Code}
		case f.End:
			return &exitError{code: f.Code, err: remoteError{message: f.Message, hint: f.Hint}}
		}
		stdout.Write(f.Out)
		stderr.Write(f.Err)
	}
}
