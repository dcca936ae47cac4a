package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

const archiveTenant = `seed: 31
mailboxes:
  - address: gina@contoso.test
    folders:
      - path: Inbox
        items: 12
        size: {min: 1KB, max: 2KB}
      - path: Tasks
        kind: tasks
        items: 6
      - path: Notes
        kind: notes
        items: 4
      - path: Journal
        kind: journal
        items: 2
    archive:
      - path: Inbox
        items: 20
        size: {min: 1KB, max: 2KB}
      - path: Archive/2019
        items: 8
      - path: Calendar
        kind: calendar
        items: 5
        size: {min: 1KB, max: 2KB}
  - address: hugo@contoso.test
    folders:
      - path: Inbox
        items: 3
`

// With --archives each mailbox's archive is backed up as a mailbox of its
// own, "ADDRESS (archive)", through the mailbox API on beta (the simulator
// refuses archives on v1.0, as Graph serves them on beta only); a mailbox
// without an archive adds nothing; the archive goes with its mailbox when
// that is left out. Tasks, notes and archives restore through the mailbox
// API (folders of their class, import sessions): into another mailbox,
// and into the archive itself, where a second restore finds what the
// first made and a replace is refused with the reason.
func TestArchiveMailboxes(t *testing.T) {
	t.Parallel()                                         // waits on servers and timers more than it computes
	const gina, archive, tasks, notes = 12 + 2, 33, 6, 4 // gina: 12 messages and 2 journal entries
	sim := startGraphSim(t, archiveTenant)
	data := filepath.Join(t.TempDir(), "data")
	r, res := graphBackup(t, sim, data, "--archives")
	mustf(t, res.code == 0 && r.ItemsStored == gina+tasks+notes+archive+3, "backup with archives: exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
	store := filepath.Join(data, "storage")
	byMailbox := map[string]int{}
	for _, v := range storedVersions(t, store) {
		byMailbox[v.Mailbox]++
		if v.Mailbox == "gina@contoso.test (archive)" {
			mustf(t, v.Format == "graph-export", "%s/%s stored as %s", v.FolderPath, v.ItemID, v.Format)
		}
	}
	mustf(t, byMailbox["gina@contoso.test"] == gina+tasks+notes && byMailbox["gina@contoso.test (archive)"] == archive && byMailbox["hugo@contoso.test"] == 3 && len(byMailbox) == 3,
		"stored by mailbox: %v", byMailbox)

	again, res := graphBackup(t, sim, data, "--archives")
	mustf(t, res.code == 0 && again.ItemsStored == 0, "second run: exit %d, stored %d: %s", res.code, again.ItemsStored, res.stderr)

	other := filepath.Join(t.TempDir(), "other")
	without, res := graphBackup(t, sim, other, "--archives", "--exclude-mailbox", "gina@contoso.test")
	mustf(t, res.code == 0 && without.ItemsStored == 3, "gina left out, her archive too: exit %d, stored %d: %s", res.code, without.ItemsStored, res.stderr)
	plain, res := graphBackup(t, sim, filepath.Join(t.TempDir(), "plain"))
	mustf(t, res.code == 0 && plain.ItemsStored == gina+tasks+notes+3, "without --archives: exit %d, stored %d: %s", res.code, plain.ItemsStored, res.stderr)

	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	c := run(sim.connectionArgs()...)
	mustf(t, c.code == 0, "connection add: %s", c.stderr)
	restore := func(args ...string) (restoreReport, result) {
		res := run(append([]string{"restore", "--storage", store, "--to", "online", "--format", "json"}, args...)...)
		return restoreJSON(t, res), res
	}

	rep, _ := restore("--mailbox", "gina@contoso.test", "--target-mailbox", "hugo@contoso.test")
	mustf(t, rep.Created == gina+tasks+notes && rep.Failed == 0, "restore of gina into hugo: %+v", rep)
	rep, _ = restore("--mailbox", "gina@contoso.test (archive)", "--target-mailbox", "hugo@contoso.test")
	mustf(t, rep.Created == archive && rep.Failed == 0, "restore of the archive into hugo: %+v", rep)
	// hugo now holds every item of gina's and of her archive, in folders of
	// their class (a backup exports the tasks and notes folders as such),
	// each as it was but for the restore mark.
	back := map[string]int{}
	hugo := filepath.Join(t.TempDir(), "hugo")
	_, res = graphBackup(t, sim, hugo, "--mailbox", "hugo@contoso.test")
	mustf(t, res.code == 0, "backup of hugo: %s", res.stderr)
	for _, v := range storedVersions(t, filepath.Join(hugo, "storage")) {
		back[v.FolderPath+"\x00"+v.Kind+"\x00"+unmarked(t, v.Content)]++
	}
	for _, v := range storedVersions(t, store) {
		if v.Mailbox == "hugo@contoso.test" {
			continue
		}
		k := v.FolderPath + "\x00" + v.Kind + "\x00" + unmarked(t, v.Content)
		mustf(t, back[k] > 0, "%s/%s (%s) of %s did not come back as it was, in a folder of its kind", v.FolderPath, v.ItemID, v.Kind, v.Mailbox)
		back[k]--
	}

	into := []string{"--mailbox", "gina@contoso.test (archive)", "--target-mailbox", "gina@contoso.test (archive)", "--into-folder", "Restored"}
	rep, _ = restore(into...)
	mustf(t, rep.Created == archive && rep.Failed == 0, "restore into the archive: %+v", rep)
	rep, _ = restore(into...)
	mustf(t, rep.Created == 0 && rep.Skipped == archive, "the same restore again finds what the first made: %+v", rep)
	rep, res = restore(append(into, "--collisions", "replace")...)
	mustf(t, res.code == 3 && rep.Created == 0 && rep.Failed == archive && strings.Contains(res.stdout, "cannot delete items"),
		"replace in an archive: %d %s %s", res.code, res.stdout, res.stderr)
	rep, _ = restore("--mailbox", "hugo@contoso.test", "--target-mailbox", "hugo@contoso.test (archive)")
	mustf(t, rep.Failed == 3 && rep.Created == 0, "restore into an archive that does not exist: %+v", rep)
}

// Over EWS an archive is the tree under the mailbox's archivemsgfolderroot,
// reached through the same account (impersonated here): backed up as
// "ADDRESS (archive)" beside its mailbox, nothing for a mailbox without
// one, nothing again in a second run; it restores into another mailbox's
// archive, and every SOAP request and reply is schema-valid.
func TestArchiveMailboxesOverEWS(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	const gina, archive, hugo = 12 + 6 + 4 + 2, 33, 3
	sim := startEWSSim(t, archiveTenant)
	data := filepath.Join(t.TempDir(), "data")
	both := []string{"--mailbox", "gina@contoso.test", "--mailbox", "hugo@contoso.test", "--impersonate"}
	r, res := sim.backup(t, data, append(both, "--archives")...)
	mustf(t, res.code == 0 && r.ItemsStored == gina+archive+hugo, "backup with archives: exit %d, stored %d: %s %s", res.code, r.ItemsStored, res.stdout, res.stderr)
	store := filepath.Join(data, "storage")
	byMailbox := map[string]int{}
	for _, v := range storedVersions(t, store) {
		byMailbox[v.Mailbox]++
	}
	mustf(t, byMailbox["gina@contoso.test"] == gina && byMailbox["gina@contoso.test (archive)"] == archive && byMailbox["hugo@contoso.test"] == hugo && len(byMailbox) == 3,
		"stored by mailbox: %v", byMailbox)
	again, res := sim.backup(t, data, append(both, "--archives")...)
	mustf(t, res.code == 0 && again.ItemsStored == 0, "second run: exit %d, stored %d: %s", res.code, again.ItemsStored, res.stderr)

	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	c := run("connection", "add", "onprem", "--type", "ews", "--ews-url", sim.EWSURL, "--username", sim.Username, "--password-file", sim.passwordFile,
		"--impersonate", "--ca-cert", sim.CACert)
	mustf(t, c.code == 0, "connection add: %s", c.stderr)
	rep := restoreJSON(t, run("restore", "--storage", store, "--to", "onprem", "--mailbox", "gina@contoso.test (archive)",
		"--target-mailbox", "gina@contoso.test (archive)", "--into-folder", "Restored", "--format", "json"))
	mustf(t, rep.Created == archive && rep.Failed == 0, "restore into the archive: %+v", rep)
	check := filepath.Join(t.TempDir(), "check")
	r, res = sim.backup(t, check, "--mailbox", "gina@contoso.test", "--impersonate", "--archives")
	mustf(t, res.code == 0 && r.ItemsStored == gina+2*archive, "the archive holds its items and the restored copies: exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("SOAP traffic is not schema-valid:\n%s", msg)
	}
}
