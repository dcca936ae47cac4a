// Package tests runs the real mailvault binary against simulated tenants.
package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/vault"
)

var (
	binary = ""
	update = flag.Bool("update", false, "rewrite golden files")
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "mailvault-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mailvault")
	if other := os.Getenv("MAILVAULT_TEST_BINARY"); other != "" {
		// Another build (an earlier commit's, for a benchmark's before and
		// after on the same machine).
		binary = other
		os.Exit(m.Run())
	}
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
		// A race-enabled binary sleeps a second at exit by default (so that
		// other threads can still report); every test starts the binary
		// dozens of times, so that second adds up to minutes. Races are
		// still reported, and make the binary exit 66.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	build := exec.Command("go", append(args, "../cmd/mailvault")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("build mailvault: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
	// cpu is the process's user and system time; maxRSS its peak resident
	// memory in bytes (for benchmarks).
	cpu    time.Duration
	maxRSS int64
}

func mailvault(t testing.TB, args ...string) result {
	t.Helper()
	return runBinary(t, binary, args...)
}

var fast struct {
	sync.Once
	path string
	err  error
}

// fastBinary is mailvault built without the race detector, for the tests
// that run it a hundred times over data (fault injection, kill loops):
// under the detector each start alone costs a second, and what those loops
// exercise is the storage's and the log's files, not concurrency, which the
// other tests run under the detector.
func fastBinary(t testing.TB) string {
	t.Helper()
	if !raceEnabled {
		return binary
	}
	fast.Do(func() {
		fast.path = binary + "-fast"
		build := exec.Command("go", "build", "-o", fast.path, "../cmd/mailvault")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		fast.err = build.Run()
	})
	mustf(t, fast.err == nil, "build mailvault without the race detector: %v", fast.err)
	return fast.path
}

// mailvaultFast runs the binary fastBinary builds.
func mailvaultFast(t testing.TB, args ...string) result {
	t.Helper()
	return runBinary(t, fastBinary(t), args...)
}

func runBinary(t testing.TB, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run mailvault %v: %v", args, err)
	}
	res := result{stdout: out.String(), stderr: errb.String(), code: code}
	if ps := cmd.ProcessState; ps != nil {
		res.cpu = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.maxRSS = ru.Maxrss * 1024
		}
	}
	return res
}

func writeTenant(t testing.TB, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "tenant.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// report is the JSON report, with the fields the tests read.
type report struct {
	RunID             string         `json:"run_id"`
	State             string         `json:"state"`
	ItemsScanned      int            `json:"items_scanned"`
	ItemsStored       int            `json:"items_stored"`
	ItemsQuarantined  int            `json:"items_quarantined"`
	Requests          int            `json:"requests"`
	RequestsByOutcome map[string]int `json:"requests_by_outcome"`
	ThrottledRequests int            `json:"throttled_requests"`
	FoldersSkipped    int            `json:"folders_skipped"`
	Quarantined       []struct {
		Mailbox  string `json:"mailbox"`
		Folder   string `json:"folder"`
		Position int    `json:"position"`
		Code     string `json:"code"`
	} `json:"quarantined"`
}

func backup(t testing.TB, data, tenant string, extra ...string) (report, result) {
	t.Helper()
	args := append([]string{"backup", "--tenant", tenant, "--data", data, "--progress", "none", "--format", "json"}, extra...)
	res := mailvault(t, args...)
	var r report
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("backup %v: exit %d, report is not JSON: %v\nstdout: %s\nstderr: %s", extra, res.code, err, res.stdout, res.stderr)
	}
	return r, res
}

var fetchLine = regexp.MustCompile(`^(\d+)\. Fetch (\d+ items \(#\d+ - #\d+\)|item #\d+) – (\w+)`)

// fetchLines returns the numbered fetch lines of one folder's replay section.
func fetchLines(t testing.TB, replay, header string) []string {
	t.Helper()
	var out []string
	in := false
	for _, l := range strings.Split(replay, "\n") {
		switch {
		case l == header:
			in = true
		case l == "" || (!strings.HasPrefix(l, " ") && !fetchLine.MatchString(l)):
			in = false
		case in && fetchLine.MatchString(l):
			out = append(out, l)
		}
	}
	return out
}

func golden(t testing.TB, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create): %v", p, err)
	}
	if string(want) != got {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// storedVersions opens the storage in dir (no process may have it open) and
// returns every stored version with its content.
func storedVersions(t testing.TB, dir string, password ...string) []storedVersion {
	t.Helper()
	var pw []byte
	if len(password) > 0 {
		pw = []byte(password[0])
	}
	v, err := vault.Open(dir, pw)
	mustf(t, err == nil, "open storage %s: %v", dir, err)
	defer v.Close()
	var out []storedVersion
	err = v.Walk("", func(ver vault.Version) error {
		b, err := v.Read(ver)
		out = append(out, storedVersion{ver, b})
		return err
	})
	mustf(t, err == nil, "read storage %s: %v", dir, err)
	return out
}

type storedVersion struct {
	vault.Version
	Content []byte
}

// storedCount is the number of item versions in the storage in dir.
func storedCount(t testing.TB, dir string) int {
	t.Helper()
	v, err := vault.Open(dir, nil)
	mustf(t, err == nil, "open storage %s: %v", dir, err)
	defer v.Close()
	st, err := v.Stats()
	mustf(t, err == nil, "storage stats: %v", err)
	return st.Versions
}

func countFiles(t testing.TB, root, suffix string) int {
	t.Helper()
	n := 0
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, suffix) {
			n++
		}
		return nil
	})
	return n
}

func mustf(t testing.TB, ok bool, format string, a ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, a...)
	}
}

var _ = fmt.Sprintf
