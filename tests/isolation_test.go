package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const seedTenant = `seed: 7
limits: {concurrency: 4, requests: 10000, window: 10m}
latency: 0ms
mailboxes:
  - address: alice@contoso.test
    folders:
      - path: Inbox
        kind: mail
        items: 400
        dirty: [2]
`

// The seed's example: 400 items, #2 dirty, 19 requests in the seed's words.
func TestSeedExampleReplay(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, seedTenant)
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant)
	mustf(t, res.code == 3, "exit %d, want 3 (quarantined item): %s", res.code, res.stderr)
	mustf(t, r.Requests == 19 && r.ItemsStored == 399 && r.ItemsQuarantined == 1, "report %+v", r)

	replay := mailvault(t, "replay", "last", "--data", data)
	mustf(t, replay.code == 0, "replay: %d %s", replay.code, replay.stderr)
	golden(t, "seed_replay.txt", replay.stdout)
	want := []string{
		"1. Fetch 400 items (#1 - #400) – failed",
		"2. Fetch 200 items (#1 - #200) – failed",
		"3. Fetch 200 items (#201 - #400) – success",
		"4. Fetch 100 items (#1 - #100) – failed",
		"5. Fetch 100 items (#101 - #200) – success",
		"6. Fetch 50 items (#1 - #50) – failed",
		"7. Fetch 50 items (#51 - #100) – success",
		"8. Fetch 25 items (#1 - #25) – failed",
		"9. Fetch 25 items (#26 - #50) – success",
		"10. Fetch 13 items (#1 - #13) – failed",
		"11. Fetch 12 items (#14 - #25) – success",
		"12. Fetch 7 items (#1 - #7) – failed",
		"13. Fetch 6 items (#8 - #13) – success",
		"14. Fetch 4 items (#1 - #4) – failed",
		"15. Fetch 3 items (#5 - #7) – success",
		"16. Fetch item #1 – success",
		"17. Fetch item #2 – failed",
		"18. Fetch item #3 – success",
		"19. Fetch item #4 – success",
	}
	got := fetchLines(t, replay.stdout, "alice@contoso.test / Inbox")
	mustf(t, strings.Join(got, "\n") == strings.Join(want, "\n"), "fetch lines:\n%s", strings.Join(got, "\n"))
}

// Isolation with the dirty items elsewhere, checked against counts from the
// reference rules (domain.TestIsolationRandomAgainstReference proves the
// state machine equals them); the second run leaves the known-dirty items out
// and costs one request.
func TestIsolationCasesAndSecondRun(t *testing.T) {
	cases := []struct {
		items    int
		dirty    []int
		requests int
	}{
		{400, nil, 1},
		{400, []int{1}, 19},
		{400, []int{400}, 10},
		{400, []int{201}, 18},
		{400, []int{7, 8}, 21},
		{400, []int{3, 399}, 28},
		{250, []int{10, 11, 12, 13}, 20},
		{5, []int{5}, 3},
		{1, []int{1}, 1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d-%v", c.items, c.dirty), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dirty := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(c.dirty)), ", "), "[]")
			tenant := writeTenant(t, dir, fmt.Sprintf("seed: 3\nmailboxes:\n  - address: bob@contoso.test\n    folders:\n      - path: Calendar\n        kind: calendar\n        items: %d\n        dirty: [%s]\n        size: {min: 2KB, max: 6KB}\n", c.items, dirty))
			data := filepath.Join(dir, "data")
			r, res := backup(t, data, tenant)
			wantCode := 3
			if len(c.dirty) == 0 {
				wantCode = 0
			}
			mustf(t, res.code == wantCode, "exit %d, want %d: %s", res.code, wantCode, res.stderr)
			clean := c.items - len(c.dirty)
			mustf(t, r.Requests == c.requests, "requests %d, reference %d", r.Requests, c.requests)
			mustf(t, r.ItemsStored == clean && r.ItemsQuarantined == len(c.dirty), "stored %d quarantined %d", r.ItemsStored, r.ItemsQuarantined)
			lines := fetchLines(t, mailvault(t, "replay", "last", "--data", data).stdout, "bob@contoso.test / Calendar")
			mustf(t, len(lines) == c.requests, "replay has %d fetch lines, want %d", len(lines), c.requests)
			mustf(t, storedCount(t, filepath.Join(data, "storage")) == clean, "storage holds %d items, want %d", storedCount(t, filepath.Join(data, "storage")), clean)

			r2, res2 := backup(t, data, tenant)
			mustf(t, res2.code == wantCode, "second run exit %d: %s", res2.code, res2.stderr)
			wantReq := 1
			if clean == 0 {
				wantReq = 0
			}
			mustf(t, r2.Requests == wantReq && r2.ItemsStored == 0, "second run: requests %d stored %d", r2.Requests, r2.ItemsStored)
			mustf(t, r2.ItemsQuarantined == len(c.dirty), "second run names %d quarantined, want %d", r2.ItemsQuarantined, len(c.dirty))
			mustf(t, storedCount(t, filepath.Join(data, "storage")) == clean, "second run changed the storage")
		})
	}
}

// A batch bigger than one log transaction (its item_stored events alone
// exceed it) is recorded whole.
func TestBatchLargerThanALogTransaction(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 9000\n        dirty: [8000]\n        size: {min: 1KB, max: 1KB}\n")
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant, "--batch-size", "9000")
	mustf(t, res.code == 3 && r.ItemsStored == 8999 && r.ItemsQuarantined == 1, "exit %d: %+v %s", res.code, r, res.stderr)
	mustf(t, storedCount(t, filepath.Join(data, "storage")) == 8999, "storage")
}
