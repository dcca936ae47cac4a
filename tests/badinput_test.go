package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

func TestMalformedTenantNamesTheLine(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"unknown key", "seed: 1\nmailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        itmes: 4\n", "tenant.yaml:6:"},
		{"dirty outside the folder", "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 10\n        dirty: [11]\n", "tenant.yaml:6: folder \"Inbox\": dirty position 11 is outside 1..10"},
		{"not yaml", "mailboxes: [\n", "tenant.yaml:"},
		{"bad window", "limits: {concurrency: 4, requests: 10, window: soon}\nmailboxes:\n  - address: a@contoso.test\n", "tenant.yaml:1:"},
		// Numbers no simulator can hold: an error naming the line, not a
		// panic, a machine out of memory or a hang.
		{"absurd items", "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 9999999999999\n", "tenant.yaml:5: folder \"Inbox\": items must be between 0 and"},
		{"two billion items", "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 2000000000\n", "tenant.yaml:5:"},
		{"900 GB items", "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        size: {min: 900GB}\n", "tenant.yaml:5: folder \"Inbox\": an item's size must be at most 150MB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tenant := writeTenant(t, dir, c.doc)
			res := mailvault(t, "backup", "--tenant", tenant, "--data", filepath.Join(dir, "data"), "--progress", "none")
			mustf(t, res.code == 2, "exit %d, want 2", res.code)
			mustf(t, strings.Contains(res.stderr, c.want), "stderr %q does not name %q", res.stderr, c.want)
			_, err := os.Stat(filepath.Join(dir, "data"))
			mustf(t, os.IsNotExist(err), "a bad tenant file still created the data directory")
			for _, sim := range []string{"graph", "ews"} {
				res := mailvault(t, "sim", sim, "--tenant", tenant, "--dir", dir)
				mustf(t, res.code == 2 && strings.Contains(res.stderr, c.want), "sim %s: exit %d, stderr %q does not name %q", sim, res.code, res.stderr, c.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, seedTenant)
	for _, args := range [][]string{
		{"backup", "--tenant", tenant, "--batch-size", "0"},
		{"backup"},
		{"backup", "--tenant", tenant, "--format", "xml"},
		{"backup", "--tenant", tenant, "--throttle-patience", "soon"},
		{"nosuchcommand"},
	} {
		res := mailvault(t, append(args, "--data", filepath.Join(dir, "data"))...)
		mustf(t, res.code == 2 && strings.HasPrefix(res.stderr, "mailvault: "), "%v: exit %d stderr %q", args, res.code, res.stderr)
	}
	res := mailvault(t, "report", "last", "--data", filepath.Join(dir, "nothing-here"))
	mustf(t, res.code == 1 && strings.Contains(res.stderr, "no mailvault data in"), "report without data: %d %q", res.code, res.stderr)
}

// A data directory held by a running backup is refused with a message that
// names it; the running backup is not disturbed.
func TestDataDirectoryHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, "latency: 20ms\nmailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 4000\n        size: {min: 1KB, max: 1KB}\n")
	data := filepath.Join(dir, "data")
	first := exec.Command(binary, "backup", "--tenant", tenant, "--data", data, "--progress", "none", "--batch-size", "10")
	var out bytes.Buffer
	first.Stdout = &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(data, "storage", "index")); err == nil {
			break
		}
		mustf(t, time.Now().Before(deadline), "first backup never opened its data directory")
		time.Sleep(10 * time.Millisecond)
	}
	res := mailvault(t, "backup", "--tenant", tenant, "--data", data, "--progress", "none")
	mustf(t, res.code == 1, "second backup exit %d, want 1", res.code)
	mustf(t, strings.Contains(res.stderr, "data directory "+data+" is in use by another mailvault process"), "stderr: %q", res.stderr)
	res = mailvault(t, "runs", "--data", data)
	mustf(t, res.code == 1 && strings.Contains(res.stderr, "in use by another mailvault process"), "runs: %d %q", res.code, res.stderr)
	first.Process.Signal(os.Interrupt)
	first.Wait()
	mustf(t, strings.Contains(out.String(), "not finished"), "interrupted backup report: %s", out.String())
}

// A damaged log entry is reported with its sequence number, never skipped.
func TestCorruptLogEntryIsNamed(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, seedTenant)
	data := filepath.Join(dir, "data")
	_, res := backup(t, data, tenant)
	mustf(t, res.code == 3, "backup exit %d: %s", res.code, res.stderr)

	lg, err := eventlog.Open(eventlog.Options{Dir: filepath.Join(data, "log")})
	if err != nil {
		t.Fatal(err)
	}
	mustf(t, lg.CorruptForTest(7, []byte("{\"seq\":7,not json")) == nil, "corrupt")
	lg.Close()

	for _, args := range [][]string{{"report", "last"}, {"replay", "last"}, {"runs"}} {
		res := mailvault(t, append(args, "--data", data)...)
		mustf(t, res.code == 1, "%v: exit %d, want 1 (stdout %q)", args, res.code, res.stdout)
		mustf(t, strings.Contains(res.stderr, "event log record 7") && strings.Contains(res.stderr, "is corrupt") &&
			strings.Contains(res.stderr, "mailvault repair log"), "%v: stderr %q", args, res.stderr)
	}
	// A log that cannot be trusted takes no more appends: a backup is
	// refused, saying why and what to do.
	res = mailvault(t, "backup", "--tenant", tenant, "--data", data, "--progress", "none")
	mustf(t, res.code == 1 && strings.Contains(res.stderr, "record 7") && strings.Contains(res.stderr, "repair log"), "backup into a damaged log: %d %q", res.code, res.stderr)
	// Salvage: every other record kept, the lost one marked; then work goes on.
	rep := mailvault(t, "repair", "log", "--data", data)
	mustf(t, rep.code == 3 && strings.Contains(rep.stdout, "lost records (marked in the log): 7"), "repair log: %d %s %s", rep.code, rep.stdout, rep.stderr)
	_, res = backup(t, data, tenant)
	mustf(t, res.code == 3, "backup after the salvage: %d %s", res.code, res.stderr)
	mustf(t, mailvault(t, "runs", "--data", data).code == 0, "runs after the salvage")
}

// A full storage ends the run with a clear message and a consistent state
// (the vault stops while MinFree is left, before its index could fail):
// what the reports count as stored is what the storage holds, and after space
// is freed the next run finishes without storing anything twice.
func TestFullStorage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	os.MkdirAll(store, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", store).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", store).Run()
	tenant := writeTenant(t, dir, "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 200\n        size: {min: 64KB, max: 64KB}\n")
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant, "--storage", store, "--batch-size", "20")
	mustf(t, res.code == 1, "exit %d, want 1: %s", res.code, res.stderr)
	mustf(t, strings.Contains(strings.Join(append([]string{res.stderr}, r.State), " "), "not finished"), "state %q", r.State)
	rep := mailvault(t, "report", "last", "--data", data).stdout
	mustf(t, strings.Contains(rep, "storage is full"), "report does not say the storage is full:\n%s", rep)
	mustf(t, storedCount(t, store) == r.ItemsStored, "storage holds %d items, report says %d", storedCount(t, store), r.ItemsStored)

	if out, err := exec.Command("mount", "-o", "remount,size=80m", store).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	r2, res2 := backup(t, data, tenant, "--storage", store, "--batch-size", "20")
	mustf(t, res2.code == 0, "after freeing space: exit %d %s", res2.code, res2.stderr)
	mustf(t, r.ItemsStored+r2.ItemsStored == 200 && storedCount(t, store) == 200, "stored %d + %d", r.ItemsStored, r2.ItemsStored)
}

// A folder named by the server with terminal escape sequences, a newline
// and a tab: ls, find, replay and the CSV log print them escaped, so the
// name can neither recolour the screen nor split or shift a row.
func TestServerTextIsPrintedEscaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tenant := writeTenant(t, dir, "seed: 3\nmailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: \"Inbox/\\e[2J\\e[31mRed\\nRow\\tShift\"\n        items: 3\n")
	data := filepath.Join(dir, "data")
	res := mailvault(t, "backup", "--tenant", tenant, "--data", data, "--progress", "none")
	mustf(t, res.code == 0, "backup: exit %d: %s", res.code, res.stderr)
	escaped := `\x1b[2J\x1b[31mRed\nRow\tShift`
	for _, args := range [][]string{
		{"ls", filepath.Join(data, "storage"), "a@contoso.test", "--data", data},
		{"ls", filepath.Join(data, "storage"), "a@contoso.test/Inbox", "--data", data},
		{"find", filepath.Join(data, "storage"), "--folder", "Inbox", "--data", data},
		{"replay", "last", "--data", data},
	} {
		res := mailvault(t, args...)
		mustf(t, res.code == 0, "%v: exit %d: %s", args, res.code, res.stderr)
		mustf(t, !strings.ContainsAny(res.stdout, "\x1b\t") && strings.Contains(res.stdout, escaped), "%v printed the server's text raw:\n%q", args, res.stdout)
	}
}
