package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigurationRules(t *testing.T) {
	c := Configuration{
		Connections: map[string]bool{"contoso": true, "spare": true},
		Storages:    map[string]bool{"nas": true, "tape": true},
		Jobs:        map[string]JobRefs{"nightly": {Connection: "contoso", Storage: "nas"}, "weekly": {Connection: "contoso", Storage: "nas"}},
	}
	cases := []struct {
		name string
		err  error
		want error
		text string
	}{
		{"new connection", c.AddConnection("fabrikam"), nil, ""},
		{"duplicate connection", c.AddConnection("contoso"), ErrExists, `a connection named "contoso" exists already`},
		{"connection name with a slash", c.AddConnection("a/b"), ErrInvalid, "without slashes"},
		{"connection name blank", c.AddConnection("  "), ErrInvalid, "1 to 100 characters"},
		{"connection name too long", c.AddConnection(strings.Repeat("x", 101)), ErrInvalid, "1 to 100 characters"},
		{"remove an unused connection", c.RemoveConnection("spare"), nil, ""},
		{"remove a connection in use", c.RemoveConnection("contoso"), ErrInUse, "used by jobs nightly, weekly"},
		{"remove an unknown connection", c.RemoveConnection("nope"), ErrNotFound, `no connection named "nope"`},
		{"look up a connection", c.HasConnection("contoso"), nil, ""},
		{"look up an unknown connection", c.HasConnection("nope"), ErrNotFound, "connection list"},
		{"new storage", c.AddStorage("s3"), nil, ""},
		{"duplicate storage", c.AddStorage("nas"), ErrExists, `a storage named "nas" exists already`},
		{"storage name with NUL", c.AddStorage("a\x00"), ErrInvalid, "without slashes"},
		{"remove an unused storage", c.RemoveStorage("tape"), nil, ""},
		{"remove a storage in use", c.RemoveStorage("nas"), ErrInUse, `storage "nas" is used by jobs nightly, weekly`},
		{"remove an unknown storage", c.RemoveStorage("nope"), ErrNotFound, `no storage named "nope"`},
		{"new job", c.CreateJob("hourly", JobRefs{"contoso", "tape"}), nil, ""},
		{"duplicate job", c.CreateJob("nightly", JobRefs{"contoso", "nas"}), ErrExists, "use job edit"},
		{"job with a bad name", c.CreateJob(`a\b`, JobRefs{"contoso", "nas"}), ErrInvalid, "without slashes"},
		{"job on an unknown connection", c.CreateJob("x", JobRefs{"nope", "nas"}), ErrNotFound, `job "x": no connection named "nope"`},
		{"job into an unknown storage", c.CreateJob("x", JobRefs{"contoso", "nope"}), ErrNotFound, `job "x": no storage named "nope"`},
		{"edit an idle job", c.EditJob("nightly", JobRefs{"spare", "tape"}, false), nil, ""},
		{"edit a busy job", c.EditJob("nightly", JobRefs{"contoso", "nas"}, true), ErrRunning, "stop it (mailvault job stop nightly) before editing it"},
		{"edit an unknown job", c.EditJob("nope", JobRefs{"contoso", "nas"}, false), ErrNotFound, `no job named "nope"`},
		{"edit to an unknown storage", c.EditJob("nightly", JobRefs{"contoso", "nope"}, false), ErrNotFound, `no storage named "nope"`},
		{"delete an idle job", c.DeleteJob("weekly", false), nil, ""},
		{"delete a busy job", c.DeleteJob("weekly", true), ErrRunning, "before deleting it"},
		{"delete an unknown job", c.DeleteJob("nope", false), ErrNotFound, `no job named "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				if tc.err != nil {
					t.Fatalf("refused: %v", tc.err)
				}
				return
			}
			var ce *ConfigError
			if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &ce) || !strings.Contains(tc.err.Error(), tc.text) {
				t.Fatalf("got %v, want %v saying %q", tc.err, tc.want, tc.text)
			}
		})
	}
	if got := c.JobsUsingStorage("nas"); strings.Join(got, ",") != "nightly,weekly" {
		t.Fatalf("jobs using nas: %v", got)
	}
}
