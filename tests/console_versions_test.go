package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An item's page in the console lists every stored version of it, newest
// first, each linked, the one shown marked.
func TestConsoleItemVersions(t *testing.T) {
	t.Parallel() // waits on the daemon's cycles more than it computes
	sim := startGraphSim(t, `seed: 31
mailboxes:
  - address: lea@contoso.test
    folders:
      - path: Inbox
        items: 5
        size: {min: 1KB, max: 2KB}
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "often", "--mailbox", "lea@contoso.test", "--idle", "00:00:01")
	d := startDaemon(t, data)
	mustf(t, run("job", "start", "often").code == 0, "job start")
	type version struct {
		ID     string `json:"id"`
		ItemID string `json:"item_id"`
	}
	versions := func() []version {
		var out []version
		res := run("find", "nas", "--versions", "--format", "json")
		for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
			var v version
			if json.Unmarshal([]byte(line), &v) == nil && v.ID != "" {
				out = append(out, v)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second) // ends a hung test; not a timing assertion
	for len(versions()) < 5 {
		mustf(t, time.Now().Before(deadline), "the first cycle did not store the 5 items")
		time.Sleep(200 * time.Millisecond)
	}
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "lea@contoso.test", "folder": "Inbox", "modify": 1})
	for len(versions()) < 6 {
		mustf(t, time.Now().Before(deadline), "the modified item's new version was not stored")
		time.Sleep(200 * time.Millisecond)
	}
	byItem := map[string][]string{}
	for _, v := range versions() {
		byItem[v.ItemID] = append(byItem[v.ItemID], v.ID)
	}
	var pair []string
	for _, ids := range byItem {
		if len(ids) == 2 {
			pair = ids
		}
	}
	mustf(t, pair != nil, "no item has two versions: %v", byItem)

	tok, _ := os.ReadFile(filepath.Join(data, "daemon.token"))
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	base := "http://" + d.addr
	resp, err := c.PostForm(base+"/login", url.Values{"token": {strings.TrimSpace(string(tok))}})
	mustf(t, err == nil && resp.StatusCode == http.StatusOK, "login: %v", err)
	resp.Body.Close()
	resp, err = c.Get(base + "/browse/nas/items/" + pair[0])
	mustf(t, err == nil && resp.StatusCode == http.StatusOK, "the item's page: %v", err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustf(t, strings.Contains(string(page), `id="versions"`), "the item's page lists no versions:\n%s", page)
	mustf(t, strings.Contains(string(page), "<code>"+pair[0]+"</code> (this one)") && strings.Contains(string(page), `href="/browse/nas/items/`+pair[1]+`"`),
		"the versions table does not mark this one and link the other:\n%s", page)
}
