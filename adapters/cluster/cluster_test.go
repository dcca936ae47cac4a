package cluster

import "testing"

func TestRedacted(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://a:4222", "nats://a:4222"},
		{"nats://user:s3cret@a:4222,nats://b:4222", "nats://REDACTED@a:4222,nats://b:4222"},
		{"tls://token@a:4222", "tls://REDACTED@a:4222"},
		{"nats://u:p@ss@a:4222", "nats://REDACTED@a:4222"},
		{"a:4222", "a:4222"},
	} {
		if got := Redacted(tc.in); got != tc.want {
			t.Errorf("Redacted(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNamesAreSubjectAndKeySafe(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"worker1", "w.worker1"},
		{"host.example-42", "w.host_example-42"},
		{"a b*c>d", "w.a_b_c_d"},
	} {
		if got := workerKey(tc.name); got != tc.key {
			t.Errorf("workerKey(%q) = %q, want %q", tc.name, got, tc.key)
		}
	}
	for _, bad := range []string{"", "c.1", "c*", "c>", "c 1"} {
		if _, err := cycleToken(bad); err == nil {
			t.Errorf("cycle %q taken as a subject token", bad)
		}
	}
	if tok, err := cycleToken("20261207T040000-ab12cd"); err != nil || tok != "20261207T040000-ab12cd" {
		t.Errorf("a run id as a cycle: %q %v", tok, err)
	}
}
