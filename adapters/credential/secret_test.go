package credential

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
	st := NewStore(dir, Key{})
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
	if s, err := NewStore(dir, Key{}).Get("contoso"); err != nil || s.Reveal() != "client-secret-value" {
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

func writeKey(t *testing.T, dir, name, material string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(material), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

// The key is looked for in the flag's file, then $MAILVAULT_SECRETS_KEY_FILE,
// then $MAILVAULT_SECRETS_KEY, then the systemd credential.
func TestFindKey(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("k", 40)
	flagFile := writeKey(t, dir, "flag", good+"\n", 0o600)
	envFile := writeKey(t, dir, "env", good+"x", 0o644)
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	writeKey(t, creds, KeyCredential, good+"y", 0o400)
	for _, c := range []struct {
		name, flag string
		env        map[string]string
		from, err  string
		loose      bool
	}{
		{"none", "", nil, "", "", false},
		{"flag first", flagFile, map[string]string{KeyFileEnv: envFile, KeyEnv: good}, flagFile, "", false},
		{"file variable, loose", "", map[string]string{KeyFileEnv: envFile, KeyEnv: good}, envFile, "", true},
		{"value variable", "", map[string]string{KeyEnv: good, "CREDENTIALS_DIRECTORY": creds}, KeyEnv, "", false},
		{"systemd credential", "", map[string]string{"CREDENTIALS_DIRECTORY": creds}, filepath.Join(creds, KeyCredential), "", false},
		{"systemd without ours", "", map[string]string{"CREDENTIALS_DIRECTORY": dir + "/none"}, "", "", false},
		{"too short", "", map[string]string{KeyEnv: "password1"}, "", "at least 32", false},
		{"missing file", filepath.Join(dir, "missing"), nil, "", "--secrets-key-file", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := FindKey(c.flag, func(v string) string { return c.env[v] })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || k.From() != c.from || k.Given() != (c.from != "") || (k.warning != nil) != c.loose {
				t.Fatalf("key from %q given %v warning %v, err %v", k.From(), k.Given(), k.warning, err)
			}
			if c.loose && !errors.Is(k.warning, ErrLooseMode) {
				t.Fatalf("warning %v", k.warning)
			}
		})
	}
	if strings.Contains(fmt.Sprint(FindKey(flagFile, os.Getenv)), good) {
		t.Fatal("the key prints")
	}
}

// Secrets made under the store's own key move to a key from outside the
// data directory the first time one is given; from then on a copy of the
// directory without that key decrypts nothing, a wrong key is named as
// such, and a move cut short finishes.
func TestStoreMovesToTheOutsideKey(t *testing.T) {
	dir := t.TempDir()
	keyOf := func(m string) Key {
		k, err := keyFrom([]byte(m), "test")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	outside, other := keyOf(strings.Repeat("a", 32)), keyOf(strings.Repeat("b", 32))
	local := NewStore(dir, Key{})
	for _, n := range []string{"one", "two", "three"} {
		if err := local.Put(n, New("secret-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	// A move cut short: "one" is already under the outside key, the
	// store's own key still there and no key id recorded.
	if err := local.seal(outside.aesKey, "one", []byte("secret-one")); err != nil {
		t.Fatal(err)
	}
	moved := NewStore(dir, outside)
	for _, n := range []string{"one", "two", "three"} {
		if s, err := moved.Get(n); err != nil || s.Reveal() != "secret-"+n {
			t.Fatalf("after the move %s: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, localKeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the store's own key is still beside the secrets: %v", err)
	}
	if _, err := NewStore(dir, Key{}).Get("two"); !errors.Is(err, ErrKeyNeeded) {
		t.Fatalf("without the key: %v", err)
	}
	if err := NewStore(dir, Key{}).Put("four", New("x")); !errors.Is(err, ErrKeyNeeded) {
		t.Fatalf("a put without the key: %v", err)
	}
	if _, err := NewStore(dir, other).Get("two"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
	if err := moved.Put("four", New("secret-four")); err != nil {
		t.Fatal(err)
	}
	if s, err := NewStore(dir, outside).Get("four"); err != nil || s.Reveal() != "secret-four" {
		t.Fatalf("four: %v", err)
	}
	// A fresh store under an outside key never makes a key of its own.
	fresh := t.TempDir()
	if err := NewStore(fresh, outside).Put("x", New("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fresh, localKeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a store under an outside key made a key of its own")
	}
}

func TestModeWarning(t *testing.T) {
	dir := t.TempDir()
	for mode, loose := range map[os.FileMode]bool{0o600: false, 0o400: false, 0o640: true, 0o644: true, 0o606: true} {
		p := writeKey(t, dir, fmt.Sprintf("f%o", mode), "x", mode)
		if err := ModeWarning(p); (err != nil) != loose || loose && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: %v", mode, err)
		}
	}
}
