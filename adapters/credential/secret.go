// Package credential holds secrets (client secrets, passwords, tokens) so
// that they cannot leak by accident: a Secret prints as [redacted] in every
// format, and comes from a file or an environment variable, never from a
// command-line value that every local user can read in the process list.
package credential

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Secret is a secret value.
type Secret struct{ value string }

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// MarshalText keeps a Secret out of JSON and YAML too.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// New wraps a secret held in memory (an in-process simulator's). Values
// from the command line must go through Load.
func New(v string) Secret { return Secret{v} }

// Empty reports whether no secret was given.
func (s Secret) Empty() bool { return s.value == "" }

// Reveal returns the value, for the one place that sends it.
func (s Secret) Reveal() string { return s.value }

// Load reads a secret (what names it in messages: "client secret",
// "password") from a file or from an environment variable. Exactly one
// source must be given.
func Load(what, file, envVar string) (Secret, error) {
	switch {
	case file != "" && envVar != "":
		return Secret{}, fmt.Errorf("give the %s as a file or an environment variable, not both", what)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("read %s file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return Secret{}, fmt.Errorf("%s file %s is empty", what, file)
		}
		return Secret{v}, nil
	case envVar != "":
		v := strings.TrimSpace(os.Getenv(envVar))
		if v == "" {
			return Secret{}, fmt.Errorf("environment variable %s holds no %s", envVar, what)
		}
		return Secret{v}, nil
	}
	return Secret{}, errors.New("no " + what + ": give a file or an environment variable")
}
