package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

const hierarchyTenant = `seed: 12
mailboxes:
  - address: ivy@contoso.test
    folders:
      - path: Inbox
        items: 5
      - path: Inbox/Receipts
        items: 4
      - path: Calendar
        kind: calendar
        items: 3
  - address: jon@contoso.test
    folders:
      - path: Inbox
        items: 2
      - path: Contacts
        kind: contacts
        items: 2
`

// Discovery through the mailbox API's folder delta: an unchanged mailbox
// costs one request, a folder created between runs is found and backed up,
// a forgotten delta state lists the hierarchy again, and an app without
// MailboxFolder.Read.All walks the folder lists as before.
func TestFolderHierarchyIsTrackedBetweenRuns(t *testing.T) {
	sim := startGraphSim(t, hierarchyTenant)
	data := filepath.Join(t.TempDir(), "data")
	first, res := graphBackup(t, sim, data, "--graph-content", "export")
	mustf(t, res.code == 0 && first.ItemsStored == 16, "first run: exit %d, stored %d: %s", res.code, first.ItemsStored, res.stderr)
	// The user list, then per mailbox settings/exchange and one delta round.
	mustf(t, first.DiscoveryRequests == 1+2*2, "first run's discovery took %d requests", first.DiscoveryRequests)

	before := sim.stats(t)
	again, res := graphBackup(t, sim, data, "--graph-content", "export")
	mustf(t, res.code == 0 && again.ItemsStored == 0 && again.State == "finished", "no-change run: exit %d, %+v: %s", res.code, again, res.stderr)
	mustf(t, again.DiscoveryRequests == 1+2, "an unchanged hierarchy took %d discovery requests for 2 mailboxes", again.DiscoveryRequests)
	units := sim.stats(t).Units - before.Units
	mustf(t, units == again.DiscoveryRequests+again.ListRequests, "the server counted %d units, mailvault %d discovery and %d list requests",
		units, again.DiscoveryRequests, again.ListRequests)

	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "ivy@contoso.test", "folder": "Inbox/Receipts/2026", "create": true, "add": 3})
	changed, res := graphBackup(t, sim, data, "--graph-content", "export")
	mustf(t, res.code == 0 && changed.ItemsStored == 3, "after a folder was created: exit %d, stored %d: %s", res.code, changed.ItemsStored, res.stderr)
	ls := mailvault(t, "ls", filepath.Join(data, "storage"), "ivy@contoso.test/Inbox/Receipts/2026", "--data", data, "--format", "json")
	mustf(t, ls.code == 0 && strings.Count(strings.TrimSpace(ls.stdout), "\n") == 2, "the new folder's items: %s %s", ls.stdout, ls.stderr)

	sim.control(t, "/_sim/expire-deltas", map[string]any{})
	resync, res := graphBackup(t, sim, data, "--graph-content", "export")
	mustf(t, res.code == 0 && resync.ItemsStored == 0 && resync.State == "finished", "after the server forgot every delta: exit %d, %+v: %s", res.code, resync, res.stderr)
	mustf(t, resync.DiscoveryRequests == 1+2*2, "a forgotten hierarchy state took %d discovery requests", resync.DiscoveryRequests)

	walked := startGraphSim(t, hierarchyTenant+"graph:\n  mailbox_folders: false\n")
	walkData := filepath.Join(t.TempDir(), "data")
	for run := range 2 {
		r, res := graphBackup(t, walked, walkData, "--graph-content", "export")
		mustf(t, res.code == 0 && r.State == "finished" && r.ItemsStored == []int{16, 0}[run], "without MailboxFolder.Read.All, run %d: exit %d, %+v: %s", run+1, res.code, r, res.stderr)
		// At least the user list and the three folder lists per mailbox.
		mustf(t, r.DiscoveryRequests >= 1+2*3, "without the permission, run %d's discovery took %d requests", run+1, r.DiscoveryRequests)
	}
}
