package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/fasttransfer"
)

// exportTenant has mail, a calendar with recurring series and contacts,
// and folders whose names try to leave the export directory.
const exportTenant = `mailboxes:
  - address: alice@contoso.test
    folders:
      - path: Inbox
        items: 40
      - path: Inbox/Projects
        items: 12
      - path: ../../etc
        items: 5
      - path: ..
        items: 3
      - path: "a:b*?<c>|"
        items: 2
      - path: Calendar
        kind: calendar
        items: 30
      - path: Contacts
        kind: contacts
        items: 15
  - address: bob@contoso.test
    folders:
      - path: Inbox
        items: 10
`

const exportMessages = 40 + 12 + 5 + 3 + 2 + 10

// python3 is Debian's interpreter, which has python3-icalendar and
// python3-vobject (installed by .ci/run).
const python3 = "/usr/bin/python3"

func needTool(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (%s) is missing; .ci/run installs it", what, path)
		}
		t.Skipf("%s (%s) is not installed", what, path)
	}
}

// needPythonModules is needTool for the Python modules the readers import:
// python3 alone is not enough (a machine may lack python3-icalendar).
func needPythonModules(t *testing.T, modules ...string) {
	t.Helper()
	needTool(t, python3, "Debian's python3")
	out, err := exec.Command(python3, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err != nil {
		what := fmt.Sprintf("the Python modules %s (python3-%s)", strings.Join(modules, ", "), strings.Join(modules, ", python3-"))
		if os.Getenv("CI") != "" {
			t.Fatalf("%s are missing; .ci/run installs them: %s", what, out)
		}
		t.Skipf("%s are not installed: %s", what, strings.TrimSpace(string(out)))
	}
}

type readCounts struct {
	Messages, Files, Events, Recurring, Exceptions, Contacts, Folders, Tasks int
	CompletedTasks                                                           int      `json:"completed_tasks"`
	CardVersions                                                             []string `json:"card_versions"`
	CardsWithoutN                                                            int      `json:"cards_without_n"`
	MaxCardsPerFile                                                          int      `json:"max_cards_per_file"`
}

func readExport(t *testing.T, kind, path string) readCounts {
	t.Helper()
	out, err := exec.Command(python3, filepath.Join("testdata", "read_exports.py"), kind, path).CombinedOutput()
	mustf(t, err == nil, "python could not read the %s export: %v\n%s", kind, err, out)
	var c readCounts
	mustf(t, json.Unmarshal(out, &c) == nil, "reader output %s", out)
	return c
}

// insideOnly fails when anything was written beside out in its parent.
func insideOnly(t *testing.T, parent, out string) {
	t.Helper()
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		mustf(t, filepath.Join(parent, e.Name()) == out, "the export wrote %s outside --out", e.Name())
	}
	filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		rel, rerr := filepath.Rel(out, p)
		mustf(t, err == nil && rerr == nil && !strings.HasPrefix(rel, ".."), "escaped: %s", p)
		mustf(t, info.Mode()&os.ModeSymlink == 0, "symlink in export: %s", p)
		return nil
	})
}

func TestExportFormatsReadByOtherTools(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	needPythonModules(t, "icalendar", "vobject")
	dir := t.TempDir()
	tenant := writeTenant(t, dir, exportTenant)
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant)
	mustf(t, res.code == 0 && r.ItemsStored == exportMessages+30+15, "backup exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
	store := filepath.Join(data, "storage")

	export := func(format string) (string, string) {
		parent := filepath.Join(dir, "x-"+format)
		os.MkdirAll(parent, 0o700)
		out := filepath.Join(parent, "out")
		if format == "zip" {
			out += ".zip"
		}
		res := mailvault(t, "export", "--storage", store, "--data", data, "--format", format, "--out", out)
		mustf(t, res.code == 0, "export %s: exit %d %s %s", format, res.code, res.stdout, res.stderr)
		insideOnly(t, parent, out)
		return out, res.stdout
	}

	out, _ := export("eml")
	mustf(t, countFiles(t, out, ".eml") == exportMessages, "eml files: %d", countFiles(t, out, ".eml"))
	_, err := os.Stat(filepath.Join(out, "alice@contoso.test", "_", "_", "etc"))
	mustf(t, err == nil, "the folder ../../etc is not kept, sanitised, inside the export")

	out, _ = export("mbox")
	c := readExport(t, "mbox", out)
	mustf(t, c.Messages == exportMessages && c.Files == 6, "mbox: %+v", c)

	out, _ = export("maildir")
	c = readExport(t, "maildir", out)
	mustf(t, c.Messages == exportMessages && c.Folders == 6, "maildir: %+v", c)
	n := dovecotCount(t, out, []string{"alice@contoso.test", "bob@contoso.test"})
	mustf(t, n == exportMessages, "dovecot served %d messages, want %d", n, exportMessages)

	out, _ = export("ics")
	c = readExport(t, "ics", out)
	// 30 events, of which positions 3, 13, 23 are weekly series with one
	// moved occurrence each: 33 VEVENTs, 3 with RRULE, 3 with RECURRENCE-ID.
	mustf(t, c.Events == 33 && c.Recurring == 3 && c.Exceptions == 3, "ics: %+v", c)

	out, _ = export("vcf")
	c = readExport(t, "vcf", out)
	// The simulator's contacts are vCard 4.0 with FN only, as Exchange's
	// often are: written as 3.0, each with an N.
	mustf(t, c.Contacts == 15 && slices.Equal(c.CardVersions, []string{"3.0"}) && c.CardsWithoutN == 0, "vcf: %+v", c)

	out, stdout := export("zip")
	c = readExport(t, "zip", out)
	mustf(t, c.Messages == exportMessages && c.Events == 33 && c.Contacts == 15, "zip: %+v %s", c, stdout)

	// --out must be new, empty, or hold the same export (which continues:
	// here, finds everything done); a selection narrows the export.
	res = mailvault(t, "export", "--storage", store, "--data", data, "--format", "eml", "--out", filepath.Join(dir, "x-eml", "out"))
	mustf(t, res.code == 0 && strings.Contains(res.stdout, fmt.Sprintf("%d items were exported already", exportMessages)), "the same export again: %d %s %s", res.code, res.stdout, res.stderr)
	res = mailvault(t, "export", "--storage", store, "--data", data, "--format", "eml", "--mailbox", "bob@contoso.test", "--out", filepath.Join(dir, "x-eml", "out"))
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "another format or selection"), "another export into the same directory: %d %s", res.code, res.stderr)
	os.WriteFile(filepath.Join(dir, "x-mbox", "out", "notes.txt"), []byte("mine"), 0o600)
	os.Remove(filepath.Join(dir, "x-mbox", "out", ".mailvault-export"))
	res = mailvault(t, "export", "--storage", store, "--data", data, "--format", "mbox", "--out", filepath.Join(dir, "x-mbox", "out"))
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "not empty"), "export into a directory holding other files: %d %s", res.code, res.stderr)
	sel := filepath.Join(dir, "sel")
	res = mailvault(t, "export", "--storage", store, "--data", data, "--format", "eml", "--mailbox", "alice@contoso.test", "--folder", "Inbox", "--out", sel)
	mustf(t, res.code == 0 && countFiles(t, sel, ".eml") == 52, "selected export: %d files, %s", countFiles(t, sel, ".eml"), res.stdout)
}

// dovecotCount serves the Maildir export with a real Dovecot on a loopback
// port and counts, with Python's imaplib, the messages it fetches and
// parses in every folder of every user.
func dovecotCount(t *testing.T, maildirs string, users []string) int {
	t.Helper()
	needTool(t, "/usr/sbin/dovecot", "Dovecot (dovecot-imapd)")
	needTool(t, python3, "Debian's python3")
	run := t.TempDir()
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		// Dovecot never reads mail as root: serve a copy owned by nobody,
		// under directories nobody can enter.
		shared, err := os.MkdirTemp("", "mailvault-dovecot")
		mustf(t, err == nil, "temp dir: %v", err)
		t.Cleanup(func() { os.RemoveAll(shared) })
		os.Chmod(shared, 0o755)
		out, err := exec.Command("cp", "-r", maildirs, filepath.Join(shared, "mail")).CombinedOutput()
		mustf(t, err == nil, "copy: %v %s", err, out)
		maildirs = filepath.Join(shared, "mail")
		uid, gid = 65534, 65534
		out, err = exec.Command("chown", "-R", "65534:65534", maildirs).CombinedOutput()
		mustf(t, err == nil, "chown: %v %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(t, err == nil, "port: %v", err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`protocols = imap
listen = 127.0.0.1
base_dir = %[1]s/base
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:%[1]s/empty/%%u:LAYOUT=fs
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
namespace export {
  separator = /
  prefix = Export/
  location = maildir:%[2]s/%%u:LAYOUT=fs
  list = yes
  subscriptions = no
}
mail_uid = %[3]d
mail_gid = %[4]d
passdb {
  driver = static
  args = password=pw
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/home/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
`, run, maildirs, uid, gid, port)
	cf := filepath.Join(run, "dovecot.conf")
	os.WriteFile(cf, []byte(conf), 0o600)
	cmd := exec.Command("/usr/sbin/dovecot", "-F", "-c", cf)
	var derr strings.Builder
	cmd.Stderr = &derr
	mustf(t, cmd.Start() == nil, "start dovecot")
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		log, _ := os.ReadFile(filepath.Join(run, "dovecot.log"))
		mustf(t, time.Now().Before(deadline), "dovecot did not listen: %s\n%s", derr.String(), log)
		time.Sleep(50 * time.Millisecond)
	}
	script := `
import email, email.policy, imaplib, json, sys
port, users = int(sys.argv[1]), sys.argv[2:]
total = 0
seen = []
for user in users:
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(user, "pw")
    typ, boxes = m.list()
    assert typ == "OK", boxes
    for line in boxes:
        name = line.decode().rsplit(' "/" ', 1)[-1].strip().strip('"')
        typ, _ = m.select('"%s"' % name, readonly=True)
        if typ != "OK":
            continue
        typ, ids = m.search(None, "ALL")
        seen.append((user, name, len(ids[0].split())))
        for i in ids[0].split():
            typ, parts = m.fetch(i, "(RFC822)")
            msg = email.message_from_bytes(parts[0][1], policy=email.policy.default)
            assert msg["Subject"] is not None
            total += 1
    m.logout()
print(json.dumps(total))
print(seen, file=sys.stderr)
`
	args := append([]string{"-c", script, fmt.Sprint(port)}, users...)
	var stderr strings.Builder
	py := exec.Command(python3, args...)
	py.Stderr = &stderr
	out, err := py.Output()
	t.Logf("folders served by dovecot: %s", stderr.String())
	log, _ := os.ReadFile(filepath.Join(run, "dovecot.log"))
	mustf(t, err == nil, "IMAP client: %v\n%s\ndovecot log:\n%s", err, out, log)
	var n int
	json.Unmarshal(out, &n)
	return n
}

// Contacts backed up as Graph JSON export as the vCards Outlook imports:
// 3.0 by default, each with FN and N, one file per folder or per contact;
// 4.0 on request. Python's vobject reads every one.
func TestVCardExportForOutlook(t *testing.T) {
	t.Parallel()
	needPythonModules(t, "vobject")
	sim := startGraphSim(t, `seed: 5
mailboxes:
  - address: gwen@contoso.test
    folders:
      - path: Contacts
        kind: contacts
        items: 12
      - path: Contacts/Suppliers
        kind: contacts
        items: 5
`)
	data := filepath.Join(t.TempDir(), "data")
	r, res := graphBackup(t, sim, data, "--graph-content", "batch")
	mustf(t, res.code == 0 && r.ItemsStored == 17, "backup: exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
	store := filepath.Join(data, "storage")
	for _, c := range []struct {
		args           []string
		version        string
		files, perFile int
	}{
		{nil, "3.0", 2, 12},
		{[]string{"--vcard-files", "contact"}, "3.0", 17, 1},
		{[]string{"--vcard-version", "4.0"}, "4.0", 2, 12},
	} {
		out := filepath.Join(t.TempDir(), "out")
		res := mailvault(t, append([]string{"export", "--storage", store, "--data", data, "--format", "vcf", "--out", out}, c.args...)...)
		mustf(t, res.code == 0, "export %v: exit %d %s", c.args, res.code, res.stderr)
		got := readExport(t, "vcf", out)
		mustf(t, got.Contacts == 17 && got.Files == c.files && got.MaxCardsPerFile == c.perFile &&
			slices.Equal(got.CardVersions, []string{c.version}) && got.CardsWithoutN == 0, "export %v: %+v", c.args, got)
	}
	res = mailvault(t, "export", "--storage", store, "--data", data, "--format", "vcf", "--out", filepath.Join(t.TempDir(), "o"), "--vcard-version", "2.1")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, `--vcard-version "2.1": use 3.0 or 4.0`), "vCard 2.1: exit %d %s", res.code, res.stderr)
}

// streamTenant: what the simulators export as FastTransfer streams.
const streamTenant = `seed: 21
mailboxes:
  - address: erin@contoso.test
    folders:
      - path: Inbox
        items: 24
      - path: Inbox/Receipts
        items: 6
        size: {min: 1KB, max: 2KB}
      - path: Calendar
        kind: calendar
        items: 30
        size: {min: 1KB, max: 2KB}
      - path: Contacts
        kind: contacts
        items: 15
        size: {min: 1KB, max: 2KB}
      - path: Tasks
        kind: tasks
        items: 9
        size: {min: 1KB, max: 2KB}
      - path: Notes
        kind: notes
        items: 7
        size: {min: 1KB, max: 2KB}
      - path: Journal
        kind: journal
        items: 5
        size: {min: 1KB, max: 2KB}
`

// Backups over HTTPS from both simulators keep each item as the server's
// export stream ([MS-OXCFXICS]), tasks, notes and journal folders included (over
// Graph listed through the mailbox API's item delta); export decodes them
// into EML, mbox, ICS and vCard, and independent readers (Python's mailbox,
// icalendar, vobject) read back every message, note, series, changed
// occurrence, task and contact.
func TestExportFromExportStreams(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	needPythonModules(t, "icalendar", "vobject")
	const messages, notes, journal, tasks = 24 + 6, 7, 5, 9
	for _, source := range []string{"graph", "ews"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			var r graphReport
			var res result
			if source == "graph" {
				r, res = graphBackup(t, startGraphSim(t, streamTenant), data, "--graph-content", "export")
			} else {
				sim := startEWSSim(t, streamTenant)
				r, res = sim.backup(t, data, "--mailbox", "erin@contoso.test", "--ews-content", "export")
				// Tasks folders and items as EWS's schema has them.
				if msg := validateRecorded(t, sim.record); msg != "" {
					t.Fatalf("schema validation failed:\n%s", msg)
				}
			}
			mustf(t, res.code == 0 && r.ItemsStored == messages+notes+journal+30+tasks+15, "backup: exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
			store := filepath.Join(data, "storage")
			kinds := map[string]int{}
			for _, v := range storedVersions(t, store) {
				kinds[v.Kind]++
				mustf(t, strings.HasSuffix(v.Format, "export"), "%s/%s stored as %s, not as an export stream", v.FolderPath, v.ItemID, v.Format)
				m, err := fasttransfer.Decode(v.Content)
				mustf(t, err == nil && len(m.Props) > 10, "%s/%s is not a FastTransfer stream: %v", v.FolderPath, v.ItemID, err)
			}
			mustf(t, kinds["journal"] == journal && kinds["notes"] == notes && kinds["tasks"] == tasks, "stored by kind: %v", kinds)
			export := func(format string) string {
				out := filepath.Join(dir, "x-"+format)
				res := mailvault(t, "export", "--storage", store, "--data", data, "--format", format, "--out", out)
				mustf(t, res.code == 0 && !strings.Contains(res.stdout, "stream"), "export %s: exit %d %s %s", format, res.code, res.stdout, res.stderr)
				return out
			}
			out := export("eml")
			mustf(t, countFiles(t, out, ".eml") == messages+notes+journal, "eml files: %d", countFiles(t, out, ".eml"))
			c := readExport(t, "mbox", export("mbox"))
			mustf(t, c.Messages == messages+notes+journal, "mbox: %+v", c)
			c = readExport(t, "ics", export("ics"))
			// Positions 3, 13 and 23 are weekly series with one moved
			// occurrence each: 33 VEVENTs, 3 with RRULE, 3 with RECURRENCE-ID;
			// every third task is completed.
			mustf(t, c.Events == 33 && c.Recurring == 3 && c.Exceptions == 3 && c.Tasks == tasks && c.CompletedTasks == tasks/3, "ics: %+v", c)
			c = readExport(t, "vcf", export("vcf"))
			mustf(t, c.Contacts == 15 && c.CardsWithoutN == 0, "vcf: %+v", c)
			// find shows what the streams say, not blanks.
			find := mailvault(t, "find", store, "--data", data, "--subject", "Invoice")
			mustf(t, find.code == 0 && strings.Contains(find.stdout, "Invoice 2026-0412"), "find in the streams: %d %s %s", find.code, find.stdout, find.stderr)
		})
	}
}
