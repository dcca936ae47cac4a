package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/adapters/vault"
)

type echoInput struct {
	Text string `json:"text"`
	Code int    `json:"code"`
}

// Registered for the daemon side of the test; the caller side is runInDaemon.
var _ = operation("test-echo", func(ctx context.Context, _ *globalFlags, in echoInput, out, errOut io.Writer) error {
	fmt.Fprintf(out, "out: %s\xff\n", in.Text) // not UTF-8: arrives as printed
	fmt.Fprintf(errOut, "progress 1/1\n")
	switch in.Code {
	case exitOK:
		return nil
	case exitWarnings:
		return &exitError{code: exitWarnings}
	}
	return &exitError{code: in.Code, err: fmt.Errorf("storage: %w", vault.ErrIndexDamaged)}
})

// An operation run in the daemon prints on the caller's side what it
// prints, and ends with its exit code, its error and the advice for it.
func TestOperationsRunInTheDaemon(t *testing.T) {
	mux := http.NewServeMux()
	serveOperations(mux, context.Background(), &globalFlags{data: t.TempDir(), vaults: &vault.Pool{}})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dh := &daemonHolds{ep: daemonEndpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), PID: 1}}
	for _, tc := range []struct {
		in       echoInput
		code     int
		message  string
		hasHints bool
	}{
		{echoInput{Text: "héllo\n\x1b[31m", Code: exitOK}, exitOK, "", false},
		{echoInput{Text: "warned", Code: exitWarnings}, exitWarnings, "", false},
		{echoInput{Text: "broken", Code: exitErrors}, exitErrors, "storage: " + vault.ErrIndexDamaged.Error(), true},
	} {
		var out, errOut bytes.Buffer
		err := runInDaemon(context.Background(), dh, "test-echo", tc.in, &out, &errOut)
		if out.String() != "out: "+tc.in.Text+"\xff\n" || errOut.String() != "progress 1/1\n" {
			t.Fatalf("printed %q / %q", out.String(), errOut.String())
		}
		var ee *exitError
		switch {
		case tc.code == exitOK && err != nil:
			t.Fatalf("ok: %v", err)
		case tc.code != exitOK && (!errors.As(err, &ee) || ee.code != tc.code):
			t.Fatalf("want exit %d, got %v", tc.code, err)
		case tc.message != "" && (ee.err == nil || ee.err.Error() != tc.message || advice(ee.err) == ""):
			t.Fatalf("error %v, advice %q", ee.err, advice(ee.err))
		}
	}
	var out, errOut bytes.Buffer
	err := runInDaemon(context.Background(), dh, "no-such-operation", struct{}{}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("unknown operation: %v", err)
	}
	// An input that does not read is a usage error, not a crash.
	resp, err := http.Post(srv.URL+"/v1/operations/test-echo", "application/json", strings.NewReader(`{"text": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"code":2`) || !strings.Contains(string(body), "does not read") {
		t.Fatalf("bad input: %s", body)
	}
}

var stoppedByCaller = make(chan struct{}, 1)

var _ = operation("test-wait", func(ctx context.Context, _ *globalFlags, _ struct{}, out, _ io.Writer) error {
	fmt.Fprintln(out, "waiting")
	<-ctx.Done()
	stoppedByCaller <- struct{}{}
	return ctx.Err()
})

// When the caller goes (Ctrl-C), the operation in the daemon sees its
// context end: a backup stops at a checkpoint instead of running on.
func TestAnOperationStopsWhenItsCallerGoes(t *testing.T) {
	mux := http.NewServeMux()
	serveOperations(mux, context.Background(), &globalFlags{data: t.TempDir(), vaults: &vault.Pool{}})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dh := &daemonHolds{ep: daemonEndpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), PID: 1}}
	ctx, cancel := context.WithCancel(context.Background())
	out := &notifyingBuffer{wrote: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- runInDaemon(ctx, dh, "test-wait", struct{}{}, out, io.Discard) }()
	<-out.wrote // the operation runs
	cancel()
	<-stoppedByCaller
	if err := <-done; err == nil {
		t.Fatal("the caller's cancel was reported as success")
	}
}

// notifyingBuffer says when something was written to it (and has no
// WriteString, so io.WriteString comes through Write).
type notifyingBuffer struct {
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *notifyingBuffer) Write(p []byte) (int, error) {
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}
