package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Unknown subcommands at any depth are a usage error (exit 2) with
// suggestions; a group named alone still prints its help and succeeds.
func TestUnknownSubcommandsAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"job", "lst"}, exitUsage, "Did you mean this?\n\tlist"},
		{[]string{"storage", "ad"}, exitUsage, "\tadd"},
		{[]string{"connection", "zzz"}, exitUsage, `unknown command "zzz" for "mailvault connection"`},
		{[]string{"job"}, exitOK, "Available Commands"},
		{[]string{"version"}, exitOK, "mailvault "},
		{[]string{"version", "--format", "json"}, exitOK, `"go":"go`},
		{[]string{"version", "--format", "yaml"}, exitUsage, `--format "yaml": use text, json`},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(c.args)
		err := root.Execute()
		code := exitOK
		var ee *exitError
		switch {
		case errors.As(err, &ee):
			code = ee.code
		case err != nil:
			code = exitUsage
		}
		text := out.String()
		if err != nil {
			text += err.Error()
		}
		if code != c.wantCode || !strings.Contains(text, c.want) {
			t.Errorf("%q: exit %d, want %d; output %q lacks %q", c.args, code, c.wantCode, text, c.want)
		}
	}
}
