package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The stored secrets can live under a key kept outside the data directory:
// giving one moves the secrets made under the directory's own key to it,
// after which a copy of the directory alone decrypts nothing. A secret or
// key file other users can read is accepted with a warning.
func TestSecretsKeyOutsideTheDataDirectory(t *testing.T) {
	t.Parallel()
	sim := startGraphSim(t, `mailboxes:
  - address: kim@contoso.test
    folders:
      - path: Inbox
        items: 3
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keyFile := filepath.Join(t.TempDir(), "secrets.key")
	mustf(t, os.WriteFile(keyFile, []byte(strings.Repeat("Zm9vYmFy", 6)+"\n"), 0o600) == nil, "write key")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	withKey := func(args ...string) result { return run(append(args, "--secrets-key-file", keyFile)...) }

	res := run(sim.connectionArgs()...)
	mustf(t, res.code == 0 && !strings.Contains(res.stderr, "warning"), "connection add: %d %s", res.code, res.stderr)
	_, err := os.Stat(filepath.Join(data, "secrets", "key"))
	mustf(t, err == nil, "without an outside key the store keeps its own: %v", err)

	res = withKey("connection", "test", "online")
	mustf(t, res.code == 0, "connection test with the outside key: %d %s %s", res.code, res.stdout, res.stderr)
	_, err = os.Stat(filepath.Join(data, "secrets", "key"))
	mustf(t, os.IsNotExist(err), "the directory's own key is still there after the move: %v", err)

	res = run("connection", "test", "online")
	mustf(t, res.code != 0 && strings.Contains(res.stdout+res.stderr, "kept outside the data directory and was not given"), "without the key: %d %s %s", res.code, res.stdout, res.stderr)
	wrong := filepath.Join(t.TempDir(), "wrong.key")
	os.WriteFile(wrong, []byte(strings.Repeat("w", 40)), 0o600)
	res = run("connection", "test", "online", "--secrets-key-file", wrong)
	mustf(t, res.code != 0 && strings.Contains(res.stdout+res.stderr, "not the one the secret store was encrypted with"), "a wrong key: %d %s %s", res.code, res.stdout, res.stderr)
	res = run("connection", "test", "online", "--secrets-key-file", filepath.Join(dir, "missing"))
	mustf(t, res.code != 0 && strings.Contains(res.stdout+res.stderr, "--secrets-key-file"), "a missing key file: %d %s", res.code, res.stderr)

	// Loose modes: the secret file and the key file.
	loose := filepath.Join(dir, "secret-0644")
	b, _ := os.ReadFile(sim.secretFile)
	os.WriteFile(loose, b, 0o644)
	os.Chmod(loose, 0o644)
	args := sim.connectionArgs()
	args[2] = "second"
	for i, a := range args {
		if a == sim.secretFile {
			args[i] = loose
		}
	}
	res = withKey(args...)
	mustf(t, res.code == 0 && strings.Contains(res.stderr, "warning: "+loose+" (mode 0644) can be read by other users"), "a 0644 secret file: %d %s", res.code, res.stderr)
	os.Chmod(keyFile, 0o640)
	res = withKey("connection", "test", "second")
	mustf(t, res.code == 0 && strings.Contains(res.stderr, "warning: "+keyFile+" (mode 0640) can be read by other users"), "a 0640 key file: %d %s", res.code, res.stderr)
	// A key kept inside the data directory protects nothing: said so.
	inside := filepath.Join(data, "secrets.key")
	os.WriteFile(inside, []byte(strings.Repeat("i", 40)), 0o600)
	res2 := run("connection", "list", "--secrets-key-file", inside)
	mustf(t, strings.Contains(res2.stderr, "is inside the data directory"), "a key inside the data directory: %d %s", res2.code, res2.stderr)
	for _, f := range []string{keyFile, loose} {
		mustf(t, !strings.Contains(res.stdout+res.stderr, strings.TrimSpace(string(mustRead(t, f)))), "%s's content printed", f)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	mustf(t, err == nil, "read %s: %v", path, err)
	return b
}
