package credential

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := New("hunter2-value")
	b, _ := json.Marshal(map[string]any{"s": s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(b), fmt.Sprintf("%v", struct{ S Secret }{s})} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("the secret printed: %s", out)
		}
	}
	if s.Reveal() != "hunter2-value" {
		t.Fatal("Reveal lost the value")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	os.WriteFile(f, []byte("  s3cret\n"), 0o600)
	if s, err := Load("password", f, ""); err != nil || s.Reveal() != "s3cret" {
		t.Fatalf("from file: %v", err)
	}
	t.Setenv("MV_TEST_PW", "e-secret")
	if s, err := Load("password", "", "MV_TEST_PW"); err != nil || s.Reveal() != "e-secret" {
		t.Fatalf("from env: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range [][2]string{{f, "MV_TEST_PW"}, {"", ""}, {empty, ""}, {filepath.Join(dir, "missing"), ""}, {"", "MV_UNSET_VAR"}} {
		if _, err := Load("password", c[0], c[1]); err == nil || !strings.Contains(err.Error(), "password") {
			t.Errorf("Load(%q, %q): %v", c[0], c[1], err)
		}
	}
}

func TestStoreEncryptsAtRest(t *testing.T) {
	dir := t.TempDir()
	st := NewStore(dir)
	if err := st.Put("contoso", New("client-secret-value")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "client-secret-value") {
			t.Fatalf("%s holds the secret in clear", f)
		}
		if info, _ := os.Stat(f); info.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", f, info.Mode().Perm())
		}
	}
	if s, err := NewStore(dir).Get("contoso"); err != nil || s.Reveal() != "client-secret-value" {
		t.Fatalf("get: %v", err)
	}
	os.Rename(st.file("contoso"), st.file("other"))
	if _, err := st.Get("other"); err == nil {
		t.Fatal("a secret renamed to another connection decrypted")
	}
	if _, err := st.Get("missing"); err == nil {
		t.Fatal("a missing secret was returned")
	}
}
