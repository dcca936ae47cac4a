package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runIn runs mailvault in dir with extra environment: as a user in a shell
// in that directory would.
func runIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// While a daemon holds the data directory, operations run in it from typed
// inputs the command line builds: relative paths mean the caller's working
// directory, and a password in the caller's environment or in a file
// beside the caller reaches the storage, although the daemon has neither.
func TestOperationsThroughTheDaemonUseTheCallersFilesAndEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.WriteFile(filepath.Join(dir, "pw"), []byte("correct horse battery staple"), 0o600)
	writeTenant(t, dir, "seed: 9\nmailboxes:\n  - address: ivy@contoso.test\n    folders:\n      - path: Inbox\n        items: 30\n")
	ok := func(res result, what string) result {
		t.Helper()
		mustf(t, res.code == 0, "%s: exit %d\n%s\n%s", what, res.code, res.stdout, res.stderr)
		return res
	}
	ok(runIn(t, dir, nil, "storage", "add", "enc", "--path", "store-enc", "--storage-password-file", "pw", "--data", data), "storage add")
	startDaemon(t, data)

	ok(runIn(t, dir, nil, "backup", "--tenant", "tenant.yaml", "--storage", "enc", "--progress", "none", "--data", data), "backup of a relative tenant file")
	res := ok(runIn(t, dir, []string{"MV_TEST_PW=correct horse battery staple"}, "verify", "./store-enc", "--storage-password-env", "MV_TEST_PW", "--data", data),
		"verify with the caller's environment")
	mustf(t, strings.Contains(res.stdout, "30 item versions"), "verify: %s", res.stdout)
	res = ok(runIn(t, dir, nil, "ls", "./store-enc", "--storage-password-file", "pw", "--data", data), "ls with the caller's password file")
	mustf(t, strings.Contains(res.stdout, "ivy@contoso.test"), "ls: %s", res.stdout)
	res = runIn(t, dir, nil, "ls", "./store-enc", "--data", data)
	mustf(t, res.code != 0 && strings.Contains(res.stderr, "password"), "ls of an encrypted storage by path without its password: %d %s", res.code, res.stderr)
	ok(runIn(t, dir, nil, "export", "--storage", "enc", "--format", "zip", "--out", "out.zip", "--progress", "none", "--data", data), "export to a relative file")
	info, err := os.Stat(filepath.Join(dir, "out.zip"))
	mustf(t, err == nil && info.Size() > 0, "the export was not written where the caller meant: %v", err)
	res = runIn(t, dir, nil, "verify", "nope", "--data", data)
	mustf(t, res.code == 2 && strings.Contains(res.stderr, `no storage named "nope"`), "an unknown storage through the daemon: %d %s", res.code, res.stderr)
}
