package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// ewsBudgetTenant is one mailbox under Exchange Server's throttling budget
// (recharge a second, burst, cutoff, micro-delays up to max_delay, the
// penalty an overrun costs), with extra tenant lines.
func ewsBudgetTenant(budget, extra string, items int) string {
	return fmt.Sprintf(`seed: 15
ews:
  budget: %s
%smailboxes:
  - address: sam@contoso.test
    folders:
      - path: Inbox
        items: %d
        size: {min: 1KB, max: 2KB}
`, budget, extra, items)
}

// Exchange Server punishes an overrun of its budget with minutes of
// ErrorServerBusy. The first run cannot know the limit before it meets it
// once; after that penalty it ramps up from below and heeds the server's
// micro-delays, so it meets no other. The next run starts from the pace it
// learned (kept with the resume state) and meets none.
func TestEWSBudgetPenaltyOnlyOnce(t *testing.T) {
	t.Parallel()
	sim := startEWSSim(t, ewsBudgetTenant("{recharge: 10, burst: 20, cutoff: 20, max_delay: 100ms, penalty: 30s}", "", 1000))
	data := filepath.Join(t.TempDir(), "data")
	r, res := sim.backup(t, data, "--mailbox", "sam@contoso.test", "--ews-batch", "10")
	mustf(t, res.code == 0 && r.ItemsStored == 1000, "first run: exit %d, stored %d: %s %v", res.code, r.ItemsStored, res.stderr, r.Errors)
	st := sim.stats(t)
	// One penalty finds the limit; a slow machine (the race detector, a
	// busy CI) may be held below it by the micro-delays alone and meet none.
	mustf(t, st.Penalties <= 1, "first run: %d penalties, want at most the one that finds the limit: %+v", st.Penalties, st)

	again, res := sim.backup(t, data, "--mailbox", "sam@contoso.test", "--ews-batch", "10", "--storage", filepath.Join(t.TempDir(), "second"))
	mustf(t, res.code == 0 && again.ItemsStored == 1000, "next run: exit %d, stored %d: %s %v", res.code, again.ItemsStored, res.stderr, again.Errors)
	st2 := sim.stats(t)
	if st.Penalties == 1 {
		// The limit was found: the next run starts from the pace kept.
		mustf(t, st2.Penalties == 1 && again.ThrottledRequests == 0, "next run: %d more penalties, %d throttled requests", st2.Penalties-1, again.ThrottledRequests)
	} else {
		// Nothing was learned: the next run may meet the limit once.
		mustf(t, st2.Penalties <= 1, "next run: %d penalties", st2.Penalties)
	}
	mustf(t, !strings.Contains(res.stderr, "ErrorServerBusy"), "next run: %s", res.stderr)
}
