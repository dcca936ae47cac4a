package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The operations' wire: POST /v1/operations/{name} with the operation's
// typed input as the body; the answer is JSON lines, each a frame of what
// the operation printed (as it printed it), the last one its outcome. Both
// sides are here; what the operations are is the command line's.

// Outcome is how an operation ended: the caller's exit code, and the error
// and its advice to print.
type Outcome struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// Operation runs one operation from its raw input, printing to out and
// errOut.
type Operation func(ctx context.Context, input []byte, out, errOut io.Writer) Outcome

// frame is one line of an operation's answer.
type frame struct {
	// Out and Err are bytes as printed (base64 in JSON): a subject that is
	// not UTF-8 arrives as it is.
	Out []byte `json:"out,omitempty"`
	Err []byte `json:"err,omitempty"`
	End bool   `json:"end,omitempty"`
	Outcome
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

// ServeOperations runs operations for the command line: lookup names
// them. An operation stops when its caller goes (Ctrl-C) or when stop
// ends (the daemon stops).
func ServeOperations(mux *http.ServeMux, stop context.Context, lookup func(name string) (Operation, bool)) {
	mux.HandleFunc("POST /v1/operations/{name}", func(w http.ResponseWriter, r *http.Request) {
		run, ok := lookup(r.PathValue("name"))
		if !ok {
			http.Error(w, "no operation "+r.PathValue("name"), http.StatusNotFound)
			return
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
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
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flush()
		enc := json.NewEncoder(bw)
		outcome := run(ctx, raw, frameWriter{mu: &mu, enc: enc, flush: flush}, frameWriter{mu: &mu, enc: enc, flush: flush, stderr: true})
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(frame{End: true, Outcome: outcome})
		flush()
	})
}

// Operation runs an operation in the daemon, printing what it prints, and
// returns how it ended.
func (c Client) Operation(ctx context.Context, name string, in any, stdout, stderr io.Writer) (Outcome, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return Outcome{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/operations/"+url.PathEscape(name)), bytes.NewReader(body))
	if err != nil {
		return Outcome{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		// No overall timeout: a backup runs as long as it runs; the
		// connection's own failures end it.
		t := c.transport()
		t.ResponseHeaderTimeout = time.Minute
		hc = &http.Client{Transport: t}
	}
	resp, err := c.do(hc, req)
	if err != nil {
		return Outcome{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return Outcome{}, fmt.Errorf("the daemon refused %s (HTTP %d): %s", name, resp.StatusCode, bytes.TrimSpace(msg))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			return Outcome{}, fmt.Errorf("the daemon's answer to %s ended early: %v", name, err)
		}
		if f.End {
			return f.Outcome, nil
		}
		stdout.Write(f.Out)
		stderr.Write(f.Err)
	}
}
