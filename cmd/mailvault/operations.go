package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/internal/daemon"
)

// An operation is a command that works on a storage or a server for the
// data directory: backup, restore, export, ls, find, verify, prune,
// repair, storage stats|passwd|retention, connection test, alerts test,
// and the read queries (runs, report, replay, quarantine).
// Its input is a typed value that holds all it needs: absolute paths,
// secrets read by the caller from its files and its environment. It runs
// in this process, or, when a daemon holds the data directory, in the
// daemon at POST /v1/operations/{name} with the same input: no command
// line travels and no path is rewritten. The wire (what the daemon streams
// back, and the exit code) is internal/daemon's; which operations there
// are, and what an error's exit code is, are the command line's.
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

// serveOperations runs operations in the daemon for the command line.
func serveOperations(mux *http.ServeMux, ctx context.Context, g *globalFlags) {
	daemon.ServeOperations(mux, ctx, func(name string) (daemon.Operation, bool) {
		run, ok := operations[name]
		if !ok {
			return nil, false
		}
		return func(ctx context.Context, raw []byte, out, errOut io.Writer) daemon.Outcome {
			return outcomeOf(run(ctx, g, raw, out, errOut))
		}, true
	})
}

// outcomeOf is an operation's error as the caller's exit code and what
// main prints for it.
func outcomeOf(err error) daemon.Outcome {
	var ee *exitError
	switch {
	case err == nil:
		return daemon.Outcome{Code: exitOK}
	case errors.As(err, &ee) && ee.err == nil:
		return daemon.Outcome{Code: ee.code}
	case errors.As(err, &ee):
		return daemon.Outcome{Code: ee.code, Message: ee.err.Error(), Hint: advice(ee.err)}
	}
	return daemon.Outcome{Code: exitErrors, Message: err.Error(), Hint: advice(err)}
}

// remoteError is an operation's error as the daemon reported it.
type remoteError struct{ message, hint string }

func (e remoteError) Error() string { return e.message }
func (e remoteError) Hint() string  { return e.hint }

// runInDaemon runs an operation in the daemon and prints what it prints.
func runInDaemon(ctx context.Context, dh *daemonHolds, name string, in any, stdout, stderr io.Writer) error {
	// Ctrl-C (or SIGTERM) on the caller ends the request, which stops the
	// operation in the daemon at a checkpoint, as it would stop here.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := daemon.Client{Addr: dh.ep.Addr, Token: dh.token, TLSPin: dh.ep.TLSPin}.Operation(sigCtx, name, in, stdout, stderr)
	switch {
	case err != nil && sigCtx.Err() != nil && ctx.Err() == nil:
		return &exitError{code: exitErrors, err: fmt.Errorf("%s interrupted: the daemon stops it at a checkpoint; run the same command again to continue", name)}
	case errors.Is(err, daemon.ErrUnreachable):
		return &exitError{code: exitErrors, err: fmt.Errorf("the data directory is held by the daemon (pid %d): %v", dh.ep.PID, err)}
	case err != nil:
		return &exitError{code: exitErrors, err: err}
	case o.Code == exitOK:
		return nil
	case o.Message == "":
		return &exitError{code: o.Code}
	}
	return &exitError{code: o.Code, err: remoteError{message: o.Message, hint: o.Hint}}
}
