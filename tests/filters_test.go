package tests

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/simtenant"
)

const filterTenant = `seed: 31
mailboxes:
  - address: amy@contoso.test
    folders:
      - path: Inbox
        items: 300
        size: {min: 1KB, max: 2KB}
      - path: Deleted Items
        items: 50
      - path: Deleted Items/Old
        items: 10
      - path: Calendar
        kind: calendar
        items: 100
      - path: Contacts
        kind: contacts
        items: 40
`

// expectedKept counts, from the tenant model, the items a "not older than 2
// years, keep contacts, exclude Deleted Items" backup must store at now.
func expectedKept(t testing.TB, now time.Time) int {
	tn, err := simtenant.Parse([]byte(filterTenant))
	if err != nil {
		t.Fatal(err)
	}
	cutoff := now.AddDate(-2, 0, 0)
	n := 0
	m := tn.Mailboxes[0]
	for i := range m.Folders {
		f := &m.Folders[i]
		switch f.Path {
		case "Deleted Items", "Deleted Items/Old":
			continue
		case "Contacts":
			n += f.Items
			continue
		}
		for pos := 1; pos <= f.Items; pos++ {
			if !simtenant.ItemTime(tn.Seed, m.Address, f, pos).Before(cutoff) {
				n++
			}
		}
	}
	return n
}

// Time and folder filters select exactly the items the model says, over
// Graph and over EWS.
func TestFiltersSelectExactlyTheExpectedItems(t *testing.T) {
	args := []string{"--time-filter", "not_older:2:years", "--keep-contacts", "--exclude-folder", "deleteditems"}
	check := func(name string, stored int, before, after time.Time) {
		t.Helper()
		// Between the two counts: an item could age past the cutoff while
		// the run is going; in practice both are equal.
		lo, hi := expectedKept(t, after), expectedKept(t, before)
		mustf(t, stored >= lo && stored <= hi && hi < 300+100+40, "%s stored %d, the model says %d..%d", name, stored, lo, hi)
	}
	{
		sim := startGraphSim(t, filterTenant)
		before := time.Now()
		r, res := graphBackup(t, sim, filepath.Join(t.TempDir(), "data"), args...)
		mustf(t, res.code == 0, "graph: exit %d: %s", res.code, res.stderr)
		check("graph", r.ItemsStored, before, time.Now())
	}
	{
		sim := startEWSSim(t, filterTenant)
		before := time.Now()
		r, res := sim.backup(t, filepath.Join(t.TempDir(), "data"), append(args, "--mailbox", "amy@contoso.test")...)
		mustf(t, res.code == 0, "ews: exit %d: %s", res.code, res.stderr)
		check("ews", r.ItemsStored, before, time.Now())
		if msg := validateRecorded(t, sim.record); msg != "" {
			t.Fatalf("schema validation failed:\n%s", msg)
		}
	}
	res := mailvault(t, "backup", "--tenant", "x.yaml", "--time-filter", "newer:1:days")
	mustf(t, res.code == 2 && res.stderr != "", "a bad --time-filter was accepted: %d", res.code)
	res = mailvault(t, "backup", "--tenant", "x.yaml", "--exclude-folder", "inbox")
	mustf(t, res.code == 2, "excluding the Inbox as a special folder was accepted: %d", res.code)
}
