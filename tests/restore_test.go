package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/adapters/itemformat"
)

const restoreTenant = `seed: 5
mailboxes:
  - address: src@contoso.test
    folders:
      - path: Inbox
        items: 40
        size: {min: 2KB, max: 30KB}
      - path: Inbox/Projects
        items: 10
      - path: Big
        items: 2
        size: {min: 5MB, max: 5MB}
      - path: Calendar
        kind: calendar
        items: 30
        size: {min: 1KB, max: 2KB}
      - path: Contacts
        kind: contacts
        items: 10
        size: {min: 1KB, max: 2KB}
  - address: dst@contoso.test
    folders:
      - path: Inbox
        items: 1
  - address: bulk@contoso.test
    folders:
      - path: Inbox
        items: 600
        size: {min: 1KB, max: 2KB}
`

type restoreReport struct {
	RunID        string           `json:"run_id"`
	State        string           `json:"state"`
	Created      int              `json:"created"`
	Skipped      int              `json:"skipped"`
	Replaced     int              `json:"replaced"`
	Failed       int              `json:"failed"`
	NotPreserved map[string]int   `json:"not_preserved"`
	Failures     []map[string]any `json:"failures"`
}

func restoreSetup(t *testing.T) (*graphSim, string, func(args ...string) result) {
	sim := startGraphSim(t, restoreTenant)
	data := filepath.Join(t.TempDir(), "data")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	c := run(sim.connectionArgs()...)
	mustf(t, c.code == 0, "connection add: %s", c.stderr)
	return sim, data, run
}

func restoreJSON(t testing.TB, res result) restoreReport {
	t.Helper()
	var r restoreReport
	mustf(t, json.Unmarshal([]byte(res.stdout), &r) == nil, "restore report is not JSON (exit %d): %s %s", res.code, res.stdout, res.stderr)
	return r
}

// versionsOf backs up one mailbox of the simulator into a fresh data
// directory and returns what was stored, by folder.
func versionsOf(t *testing.T, sim *graphSim, mailbox string, extra ...string) map[string][]storedVersion {
	t.Helper()
	data := filepath.Join(t.TempDir(), "check")
	_, res := graphBackup(t, sim, data, append([]string{"--mailbox", mailbox}, extra...)...)
	mustf(t, res.code == 0, "backup of %s: %s", mailbox, res.stderr)
	out := map[string][]storedVersion{}
	for _, v := range storedVersions(t, filepath.Join(data, "storage")) {
		out[v.FolderPath] = append(out[v.FolderPath], v)
	}
	return out
}

// unmarked is an export stream without the restore mark an import adds,
// written by one encoder, so that a restored item compares equal to what
// was backed up when nothing else of it changed.
func unmarked(t *testing.T, stream []byte) string {
	t.Helper()
	m, err := fasttransfer.Decode(stream)
	if err != nil {
		t.Fatalf("not an export stream: %v", err)
	}
	props := m.Props[:0:0]
	for _, p := range m.Props {
		if p.Named == nil || !p.Named.ByName || p.Named.Name != "MailvaultRestoreId" {
			props = append(props, p)
		}
	}
	m.Props = props
	b, err := fasttransfer.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Backup -> restore to another mailbox -> backup of that mailbox, with
// exported streams (import sessions): every item comes back byte for byte.
func TestRestoreFullFidelityToAnotherMailbox(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim, data, run := restoreSetup(t)
	_, res := graphBackup(t, sim, data, "--mailbox", "src@contoso.test")
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	rep := restoreJSON(t, run("restore", "--storage", store, "--to", "online", "--mailbox", "src@contoso.test", "--target-mailbox", "dst@contoso.test", "--format", "json"))
	mustf(t, rep.Created == 92 && rep.Failed == 0 && rep.State == "finished", "restore: %+v", rep)
	mustf(t, len(rep.NotPreserved) == 0, "full-fidelity restore lost properties: %v", rep.NotPreserved)
	runs := run("runs")
	mustf(t, strings.Contains(runs.stdout, rep.RunID+"\tfinished"), "runs does not list the restore:\n%s", runs.stdout)
	again := run("report", rep.RunID)
	mustf(t, again.code == 0 && strings.Contains(again.stdout, "created   92"), "report of the restore run: %s %s", again.stdout, again.stderr)

	orig := map[string][]storedVersion{}
	for _, v := range storedVersions(t, store) {
		orig[v.FolderPath] = append(orig[v.FolderPath], v)
	}
	back := versionsOf(t, sim, "dst@contoso.test")
	for folder, vs := range orig {
		want := map[string]int{}
		for _, v := range vs {
			want[unmarked(t, v.Content)]++
		}
		got := map[string]int{}
		for _, v := range back[folder] {
			got[unmarked(t, v.Content)]++
		}
		for c, n := range want {
			mustf(t, got[c] == n, "%s: an item did not come back byte for byte (%d of %d)", folder, got[c], n)
		}
	}
	// Again: every item is found in the target, nothing is created twice.
	second := restoreJSON(t, run("restore", "--storage", store, "--to", "online", "--mailbox", "src@contoso.test", "--target-mailbox", "dst@contoso.test", "--format", "json"))
	mustf(t, second.Created == 0 && second.Skipped == 92, "second restore: %+v", second)
}

// The same through MIME and JSON (--graph-content batch): messages become
// received messages with their bodies and attachments (the big ones through
// upload sessions), events keep their times and recurrence, contacts their
// fields; what Graph cannot keep is listed, and no invitation is sent.
func TestRestoreFromMIMEAndJSONCompared(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim, data, run := restoreSetup(t)
	_, res := graphBackup(t, sim, data, "--mailbox", "src@contoso.test", "--graph-content", "batch")
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	into := "Restored 2026-12-01"
	rep := restoreJSON(t, run("restore", "--storage", store, "--to", "online", "--mailbox", "src@contoso.test", "--target-mailbox", "dst@contoso.test",
		"--into-folder", into, "--format", "json"))
	mustf(t, rep.Created == 92 && rep.Failed == 0, "restore: %+v", rep)
	mustf(t, rep.NotPreserved["iCalUId (Graph gives a created event a new one)"] == 30 && rep.NotPreserved["changed occurrences of a series"] == 3, "not preserved: %v", rep.NotPreserved)
	mustf(t, sim.stats(t).Invitations == 0, "the restore sent invitations")

	orig := map[string][]storedVersion{}
	for _, v := range storedVersions(t, store) {
		orig[v.FolderPath] = append(orig[v.FolderPath], v)
	}
	back := versionsOf(t, sim, "dst@contoso.test", "--graph-content", "batch")
	var differences []string
	for folder, vs := range orig {
		got := back[into+"/"+folder]
		if strings.HasPrefix(folder, "Calendar") {
			got = back[into+" - "+folder] // Graph calendars are flat
		}
		mustf(t, len(got) == len(vs), "%s: %d items came back of %d", folder, len(got), len(vs))
		for _, v := range vs {
			key, fields := compareFields(t, v)
			var match map[string]string
			for _, g := range got {
				if k, f := compareFields(t, g); k == key {
					match = f
				}
			}
			mustf(t, match != nil, "%s: %q did not come back", folder, key)
			for name, want := range fields {
				if match[name] != want {
					differences = append(differences, fmt.Sprintf("%s %q: %s differs", folder, key, name))
				}
			}
		}
	}
	sort.Strings(differences)
	mustf(t, len(differences) == 0, "properties that differ:\n%s", strings.Join(differences, "\n"))
	st := sim.stats(t)
	mustf(t, st.ByStatus["201"] > 0, "no upload session was used: %v", st.ByStatus)
}

// compareFields is what must survive a restore, by kind: a key to match
// the item by, and the fields to compare. MIME headers Graph regenerates
// (Received, boundaries, order) are deliberately not compared: the restore
// report lists them as not preserved.
func compareFields(t *testing.T, v storedVersion) (string, map[string]string) {
	t.Helper()
	switch v.Kind {
	case "mail":
		raw, err := itemformat.MIME(v.Format, v.Content)
		mustf(t, err == nil, "MIME: %v", err)
		mr, err := mail.CreateReader(bytes.NewReader(raw))
		mustf(t, err == nil, "read MIME: %v", err)
		subject, _ := mr.Header.Subject()
		from, _ := mr.Header.AddressList("From")
		date, _ := mr.Header.Date()
		f := map[string]string{"from": fmt.Sprint(from), "date": date.UTC().String(), "message-id": mr.Header.Get("Message-Id")}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			mustf(t, err == nil, "part: %v", err)
			b, _ := io.ReadAll(p.Body)
			switch h := p.Header.(type) {
			case *mail.InlineHeader:
				f["body"] = strings.TrimSpace(string(b))
			case *mail.AttachmentHeader:
				name, _ := h.Filename()
				f["attachment "+name] = fmt.Sprintf("%x", b)
			}
		}
		return subject, f
	default:
		var r itemformat.Resource
		mustf(t, json.Unmarshal(v.Content, &r) == nil, "JSON")
		rec, _ := json.Marshal(r.Recurrence)
		emails, _ := json.Marshal(r.EmailAddresses)
		// Subjects and names repeat (the simulator draws them from short
		// lists): an event is known by its subject and start, a contact by
		// its name and addresses.
		return r.Subject + r.DisplayName + " " + r.Start.DateTime + string(emails), map[string]string{"start": r.Start.DateTime + r.Start.TimeZone, "end": r.End.DateTime + r.End.TimeZone,
			"recurrence": string(rec), "emails": string(emails), "body": func() string {
				if r.Body == nil {
					return ""
				}
				return r.Body.Content
			}()}
	}
}

// Kill -9 in the middle of a restore, then the same command again: it
// continues and the target holds every item exactly once.
func TestRestoreKilledResumesWithoutDuplicates(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim, data, _ := restoreSetup(t)
	_, res := graphBackup(t, sim, data, "--mailbox", "bulk@contoso.test", "--graph-content", "batch")
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	args := []string{"restore", "--storage", store, "--to", "online", "--mailbox", "bulk@contoso.test", "--target-mailbox", "dst@contoso.test", "--format", "json", "--data", data}
	// Ctrl-C midway: the restore stops and still reports, as JSON, what it did.
	{
		before := sim.stats(t).Requests
		cmd := exec.Command(binary, args...)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		mustf(t, cmd.Start() == nil, "start restore")
		deadline := time.Now().Add(60 * time.Second)
		for sim.stats(t).Requests < before+50 {
			mustf(t, time.Now().Before(deadline), "the restore made no progress")
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		var ee *exec.ExitError
		mustf(t, errors.As(err, &ee) && ee.ExitCode() == 1, "an interrupted restore exits 1: %v", err)
		var rep struct {
			restoreReport
			Error string `json:"error"`
		}
		mustf(t, json.Unmarshal(stdout.Bytes(), &rep) == nil, "an interrupted restore's report is not JSON: %s", stdout.String())
		mustf(t, rep.State != "finished" && rep.Created > 0 && rep.Error != "", "interrupted restore: %+v", rep)
	}
	for kills := 0; kills < 2; kills++ {
		before := sim.stats(t).Requests
		cmd := exec.Command(binary, args...)
		mustf(t, cmd.Start() == nil, "start restore")
		deadline := time.Now().Add(60 * time.Second)
		for sim.stats(t).Requests < before+150+kills*100 {
			mustf(t, time.Now().Before(deadline), "the restore made no progress")
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	rep := restoreJSON(t, mailvault(t, args...))
	mustf(t, rep.Created == 600 && rep.Failed == 0 && rep.State == "finished", "after two kills: %+v", rep)
	back := versionsOf(t, sim, "dst@contoso.test")
	mustf(t, len(back["Inbox"]) == 600+1, "the target holds %d messages, want 601 (600 restored once, 1 of its own)", len(back["Inbox"]))
}

const ewsRestoreTenant = `seed: 21
mailboxes:
  - address: olga@contoso.test
    folders:
      - path: Inbox
        items: 60
        size: {min: 1KB, max: 8KB}
      - path: Inbox/Travel
        items: 7
      - path: Contacts
        kind: contacts
        items: 9
      - path: Tasks
        kind: tasks
        items: 5
      - path: Notes
        kind: notes
        items: 4
      - path: Journal
        kind: journal
        items: 3
  - address: piet@contoso.test
    folders:
      - path: Inbox
        items: 3
`

// Over EWS: UploadItems with the exported data into another mailbox, under
// a folder the restore creates (a tasks folder and a notes folder of their
// class too); a backup of that mailbox holds the same blobs byte for byte
// but for the restore mark; the same restore again creates nothing; every
// SOAP request and reply is schema-valid.
func TestRestoreOverEWS(t *testing.T) {
	sim := startEWSSim(t, ewsRestoreTenant)
	data := filepath.Join(t.TempDir(), "data")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	c := run("connection", "add", "onprem", "--type", "ews", "--ews-url", sim.EWSURL, "--username", sim.Username, "--password-file", sim.passwordFile,
		"--impersonate", "--ca-cert", sim.CACert)
	mustf(t, c.code == 0, "connection add: %s", c.stderr)
	_, res := sim.backup(t, data, "--mailbox", "olga@contoso.test", "--impersonate")
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	into := "Restored 2026-12-01"
	rep := restoreJSON(t, run("restore", "--storage", store, "--to", "onprem", "--mailbox", "olga@contoso.test", "--target-mailbox", "piet@contoso.test",
		"--into-folder", into, "--format", "json"))
	const restored = 76 + 5 + 4 + 3
	mustf(t, rep.Created == restored && rep.Failed == 0, "restore: %+v", rep)
	mustNotContain(t, data, sim.Password)
	// The same restore again finds every item by the mark its upload
	// carried (FindItem on the extended property): nothing twice.
	again := restoreJSON(t, run("restore", "--storage", store, "--to", "onprem", "--mailbox", "olga@contoso.test", "--target-mailbox", "piet@contoso.test",
		"--into-folder", into, "--format", "json"))
	mustf(t, again.Created == 0 && again.Skipped == restored && again.Failed == 0, "the same restore again: %+v", again)

	check := filepath.Join(t.TempDir(), "check")
	_, res = sim.backup(t, check, "--mailbox", "piet@contoso.test", "--impersonate")
	mustf(t, res.code == 0, "backup of the target: %s", res.stderr)
	want := map[string]int{}
	for _, v := range storedVersions(t, store) {
		want[into+"/"+v.FolderPath+"\x00"+unmarked(t, v.Content)]++
	}
	got := map[string]int{}
	for _, v := range storedVersions(t, filepath.Join(check, "storage")) {
		got[v.FolderPath+"\x00"+unmarked(t, v.Content)]++
	}
	for k, n := range want {
		mustf(t, got[k] == n, "%q: an item did not come back byte for byte", strings.SplitN(k, "\x00", 2)[0])
	}
	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("SOAP traffic of the restore is not schema-valid:\n%s", msg)
	}
}
