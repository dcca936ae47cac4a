package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const jobYAML = `name: nightly
connection: contoso
storage: nas
all_mailboxes: true
exclude_mailboxes: [ceo@contoso.test]
public_folders: ["Projects/**"]
continuity: continuous
idle: "00:10:00"
schedule:
  pattern: weekly
  weekdays: [mon, wed, fri]
  from: "22:00"
  to: "06:00"
  start_date: "2026-12-01"
  time_zone: Europe/Berlin
time_filter: {mode: not_older, n: 6, unit: months, keep_contacts: true}
exclude_folders: [deleteditems, junkemail]
`

// Connections, storages and jobs are defined once, recorded as events, and
// checked: duplicates, unknown references, malformed files and invalid
// schedules are refused with a clear error and change nothing; job show
// round-trips through job create; the secret is stored encrypted only.
func TestJobDefinitions(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("very-secret-value-77"), 0o600)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	ok := func(args ...string) string {
		t.Helper()
		res := mailvault(t, append(args, "--data", data)...)
		mustf(t, res.code == 0, "%v: exit %d: %s", args, res.code, res.stderr)
		return res.stdout
	}
	refused := func(want string, args ...string) {
		t.Helper()
		res := mailvault(t, append(args, "--data", data)...)
		mustf(t, res.code == 2 && strings.Contains(res.stderr, want), "%v: exit %d, want 2 and %q: %s", args, res.code, want, res.stderr)
	}
	ok("storage", "add", "nas", "--unencrypted", "--path", filepath.Join(dir, "store"))
	ok("connection", "add", "contoso", "--type", "graph", "--tenant-id", "T1", "--client-id", "C1", "--client-secret-file", secret)
	refused("exists already", "connection", "add", "contoso", "--type", "ews", "--ews-url", "https://x/EWS/Exchange.asmx", "--username", "u", "--password-file", secret)
	refused("--client-secret-file", "connection", "add", "c2", "--type", "graph", "--tenant-id", "T", "--client-id", "C", "--client-secret", "x")
	mustf(t, strings.Contains(ok("connection", "list"), "stored encrypted"), "connection list")

	ok("job", "create", "-f", write("job.yaml", jobYAML))
	shown := ok("job", "show", "nightly")
	refused("exists already", "job", "create", "-f", write("again.yaml", jobYAML))
	refused(`no connection named "nope"`, "job", "create", "-f", write("j2.yaml", strings.Replace(strings.Replace(jobYAML, "nightly", "n2", 1), "connection: contoso", "connection: nope", 1)))
	refused(`no storage named "tape"`, "job", "create", "-f", write("j3.yaml", strings.Replace(strings.Replace(jobYAML, "nightly", "n3", 1), "storage: nas", "storage: tape", 1)))
	refused("bad.yaml:2: did not find expected", "job", "create", "-f", write("bad.yaml", "name: x\nconnection: contoso\nstorage: [nas\n"))
	refused("unknown.yaml:4:", "job", "create", "-f", write("unknown.yaml", "name: x\nconnection: contoso\nstorage: nas\nschedul: {}\n"))
	for name, body := range map[string]string{
		"no weekdays":  strings.Replace(jobYAML, "weekdays: [mon, wed, fri]", "weekdays: []", 1),
		"bad zone":     strings.Replace(jobYAML, "Europe/Berlin", "Mars/Olympus", 1),
		"bad time":     strings.Replace(jobYAML, `"22:00"`, `"25:00"`, 1),
		"bad filter":   strings.Replace(jobYAML, "unit: months", "unit: fortnights", 1),
		"bad folder":   strings.Replace(jobYAML, "deleteditems", "inbox", 1),
		"empty window": strings.Replace(jobYAML, `"06:00"`, `"22:00"`, 1),
		"bad idle":     strings.Replace(jobYAML, `"00:10:00"`, `"ten minutes"`, 1),
	} {
		body = strings.Replace(body, "name: nightly", "name: invalid", 1)
		res := mailvault(t, "job", "create", "-f", write("invalid.yaml", body), "--data", data)
		mustf(t, res.code == 2 && strings.Contains(res.stderr, `job "invalid"`), "%s: exit %d: %s", name, res.code, res.stderr)
	}
	list := ok("job", "list")
	mustf(t, strings.Count(list, "\n") == 2 && strings.HasPrefix(list, "NAME ") && strings.Contains(list, "\nnightly "), "refused jobs changed the configuration: %q", list)

	// show → delete → create from what show printed → show: identical.
	ok("job", "delete", "nightly")
	ok("job", "create", "-f", write("shown.yaml", shown))
	mustf(t, ok("job", "show", "nightly") == shown, "job show does not round-trip")
	ok("job", "edit", "nightly", "-f", write("edited.yaml", strings.Replace(jobYAML, `"00:10:00"`, `"00:20:00"`, 1)))
	mustf(t, strings.Contains(ok("job", "show", "nightly"), `idle: "00:20:00"`), "edit did not take")
	refused("used by jobs nightly", "storage", "remove", "nas")
	refused("used by jobs nightly", "connection", "remove", "contoso")

	res := mailvault(t, "job", "start", "nightly", "--data", data)
	mustf(t, res.code == 1 && strings.Contains(res.stderr, "daemon"), "job start without a daemon: %d %s", res.code, res.stderr)
	mustNotContain(t, data, "very-secret-value-77")
}

// connection test checks the stored credentials and permissions against the
// server and says precisely what is missing.
func TestConnectionTest(t *testing.T) {
	sim := startGraphSim(t, "seed: 1\ngraph: {export_items: false, mailbox_folders: false}\nmailboxes:\n  - address: zed@contoso.test\n    folders:\n      - path: Inbox\n        items: 3\n")
	data := filepath.Join(t.TempDir(), "data")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	res := run(sim.connectionArgs()...)
	mustf(t, res.code == 0, "add: %s", res.stderr)
	res = run("connection", "test", "online")
	mustf(t, res.code == 0, "test: exit %d %s %s", res.code, res.stdout, res.stderr)
	for _, want := range []string{"ok      list users", "ok      read mail folders of zed@contoso.test", "ok      read calendars", "ok      read contact folders",
		"warning export items of zed@contoso.test (full fidelity; optional)", "MailboxItem.Export.All",
		"warning track the folder tree of zed@contoso.test (one request per unchanged mailbox; optional)", "MailboxFolder.Read.All"} {
		mustf(t, strings.Contains(res.stdout, want), "connection test output lacks %q:\n%s", want, res.stdout)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("nope"), 0o600)
	res = run("connection", "add", "broken", "--type", "graph", "--tenant-id", sim.TenantID, "--client-id", sim.ClientID,
		"--client-secret-file", wrong, "--graph-url", sim.GraphURL, "--token-url", sim.TokenURL, "--ca-cert", sim.CACert)
	mustf(t, res.code == 0, "add broken: %s", res.stderr)
	res = run("connection", "test", "broken", "--mailbox", "zed@contoso.test")
	mustf(t, res.code == 1 && strings.Contains(res.stdout, "FAILED") && strings.Contains(res.stdout, "AADSTS7000215"), "wrong secret: %d %s", res.code, res.stdout)
	mustf(t, !strings.Contains(res.stdout+res.stderr, "nope"), "the secret leaked")
	// connection edit: a new secret mends it; settings edited without a
	// secret flag keep the stored one.
	res = run("connection", "edit", "broken", "--type", "graph", "--tenant-id", sim.TenantID, "--client-id", sim.ClientID,
		"--client-secret-file", sim.secretFile, "--graph-url", sim.GraphURL, "--token-url", sim.TokenURL, "--ca-cert", sim.CACert)
	mustf(t, res.code == 0, "edit broken: %s", res.stderr)
	res = run("connection", "edit", "broken", "--type", "graph", "--tenant-id", sim.TenantID, "--client-id", sim.ClientID,
		"--graph-url", sim.GraphURL, "--token-url", sim.TokenURL, "--ca-cert", sim.CACert, "--page-size", "200")
	mustf(t, res.code == 0, "edit broken without a secret: %s", res.stderr)
	res = run("connection", "test", "broken", "--mailbox", "zed@contoso.test")
	mustf(t, res.code == 0 && !strings.Contains(res.stdout, "FAILED"), "after the edits: %d %s", res.code, res.stdout)
	res = run("connection", "edit", "missing", "--type", "graph", "--tenant-id", sim.TenantID, "--client-id", sim.ClientID)
	mustf(t, res.code != 0 && strings.Contains(res.stderr, `no connection named "missing"`), "edit of a missing connection: %d %s", res.code, res.stderr)

	ews := startEWSSim(t, ewsTenant)
	res = run("connection", "add", "onprem", "--type", "ews", "--ews-url", ews.EWSURL, "--username", ews.Username, "--password-file", ews.passwordFile,
		"--impersonate", "--ca-cert", ews.CACert)
	mustf(t, res.code == 0, "add ews: %s", res.stderr)
	res = run("connection", "test", "onprem", "--mailbox", "olga@contoso.test", "--public-folders")
	mustf(t, res.code == 0 && strings.Contains(res.stdout, "ok      open the mailbox olga@contoso.test") && strings.Contains(res.stdout, "ok      list the public folders"),
		"ews test: %d %s %s", res.code, res.stdout, res.stderr)
	res = run("connection", "test", "onprem", "--mailbox", "nobody@contoso.test")
	mustf(t, res.code == 1 && strings.Contains(res.stdout, "has no mailbox"), "ews unknown mailbox: %d %s", res.code, res.stdout)
}
