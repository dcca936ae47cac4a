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
// that is left out; it restores into another mailbox through an import
// session, and a restore into an archive is refused with the reason.
func TestArchiveMailboxes(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim := startGraphSim(t, archiveTenant)
	data := filepath.Join(t.TempDir(), "data")
	r, res := graphBackup(t, sim, data, "--archives")
	mustf(t, res.code == 0 && r.ItemsStored == 12+33+3, "backup with archives: exit %d, stored %d: %s", res.code, r.ItemsStored, res.stderr)
	store := filepath.Join(data, "storage")
	byMailbox := map[string]int{}
	for _, v := range storedVersions(t, store) {
		byMailbox[v.Mailbox]++
		if v.Mailbox == "gina@contoso.test (archive)" {
			mustf(t, v.Format == "graph-export", "%s/%s stored as %s", v.FolderPath, v.ItemID, v.Format)
		}
	}
	mustf(t, byMailbox["gina@contoso.test"] == 12 && byMailbox["gina@contoso.test (archive)"] == 33 && byMailbox["hugo@contoso.test"] == 3 && len(byMailbox) == 3,
		"stored by mailbox: %v", byMailbox)

	again, res := graphBackup(t, sim, data, "--archives")
	mustf(t, res.code == 0 && again.ItemsStored == 0, "second run: exit %d, stored %d: %s", res.code, again.ItemsStored, res.stderr)

	other := filepath.Join(t.TempDir(), "other")
	without, res := graphBackup(t, sim, other, "--archives", "--exclude-mailbox", "gina@contoso.test")
	mustf(t, res.code == 0 && without.ItemsStored == 3, "gina left out, her archive too: exit %d, stored %d: %s", res.code, without.ItemsStored, res.stderr)
	plain, res := graphBackup(t, sim, filepath.Join(t.TempDir(), "plain"))
	mustf(t, res.code == 0 && plain.ItemsStored == 12+3, "without --archives: exit %d, stored %d: %s", res.code, plain.ItemsStored, res.stderr)

	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	c := run(sim.connectionArgs()...)
	mustf(t, c.code == 0, "connection add: %s", c.stderr)
	rep := restoreJSON(t, run("restore", "--storage", store, "--to", "online", "--mailbox", "gina@contoso.test (archive)",
		"--target-mailbox", "hugo@contoso.test", "--format", "json"))
	mustf(t, rep.Created == 33 && rep.Failed == 0, "restore of the archive into hugo: %+v", rep)
	refused := run("restore", "--storage", store, "--to", "online", "--mailbox", "gina@contoso.test", "--target-mailbox", "gina@contoso.test (archive)", "--format", "json")
	no := restoreJSON(t, refused)
	mustf(t, refused.code == 3 && no.Created == 0 && no.Failed == 12 && strings.Contains(refused.stdout, "archive mailbox is not supported"),
		"restore into an archive: %d %s %s", refused.code, refused.stdout, refused.stderr)
}
