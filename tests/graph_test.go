package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/domain"
)

// graphSim is a `mailvault sim graph` process, started as other tools start
// it: through its one JSON line on stdout.
type graphSim struct {
	GraphURL     string `json:"graph_url"`
	BetaURL      string `json:"beta_url"`
	TokenURL     string `json:"token_url"`
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	CACert       string `json:"ca_cert"`

	secretFile string
}

// startSimProcess runs `mailvault sim ...` as other tools do and returns
// the JSON line it prints when ready; the process stops with the test.
func startSimProcess(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%v printed no line: %v\n%s", args[:2], err, errb.String())
	}
	return line
}

func startGraphSim(t testing.TB, tenantYAML string, extra ...string) *graphSim {
	t.Helper()
	dir := t.TempDir()
	tenant := writeTenant(t, dir, tenantYAML)
	line := startSimProcess(t, append([]string{"sim", "graph", "--tenant", tenant, "--dir", dir}, extra...)...)
	var s graphSim
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("sim graph line is not the JSON contract: %v: %q", err, line)
	}
	for k, v := range map[string]string{"graph_url": s.GraphURL, "beta_url": s.BetaURL, "token_url": s.TokenURL, "tenant_id": s.TenantID,
		"client_id": s.ClientID, "client_secret": s.ClientSecret, "ca_cert": s.CACert} {
		mustf(t, v != "", "sim graph line lacks %s: %s", k, line)
	}
	mustf(t, strings.HasPrefix(s.GraphURL, "https://127.0.0.1:") && strings.HasSuffix(s.GraphURL, "/v1.0"), "graph_url %q", s.GraphURL)
	s.secretFile = filepath.Join(dir, "secret")
	if err := os.WriteFile(s.secretFile, []byte(s.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &s
}

// args are the backup flags that point mailvault at the simulator.
func (s *graphSim) args() []string {
	return []string{"--source", "graph", "--tenant-id", s.TenantID, "--client-id", s.ClientID, "--client-secret-file", s.secretFile,
		"--graph-url", s.GraphURL, "--token-url", s.TokenURL, "--ca-cert", s.CACert}
}

// client is the HTTP client the Graph source itself uses, trusting the
// simulator's CA.
func (s *graphSim) client(t testing.TB) *http.Client {
	hc, err := graph.HTTPClient(s.CACert, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// control calls the simulator's test API.
func (s *graphSim) control(t testing.TB, path string, body any) []byte {
	t.Helper()
	url := strings.TrimSuffix(s.GraphURL, "/v1.0") + path
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if body != nil {
		b, _ := json.Marshal(body)
		req, _ = http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	}
	req.Header.Set("X-Sim-Secret", s.ClientSecret)
	resp, err := s.client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	mustf(t, resp.StatusCode < 300, "control %s: %d %s", path, resp.StatusCode, out.String())
	return out.Bytes()
}

type simStats struct {
	Invitations    int            `json:"invitations_sent"`
	Requests       int            `json:"requests"`
	Subrequests    int            `json:"subrequests"`
	Units          int            `json:"budget_units"`
	Throttled      int            `json:"throttled"`
	ByStatus       map[string]int `json:"by_status"`
	Tokens         int            `json:"tokens_issued"`
	AppUtilisation float64        `json:"app_utilisation"`
	Mailboxes      map[string]struct {
		Units       int     `json:"budget_units"`
		Throttled   int     `json:"throttled"`
		Items       int     `json:"items_served"`
		Utilisation float64 `json:"utilisation"`
	} `json:"mailboxes"`
}

func (s *graphSim) stats(t testing.TB) simStats {
	var st simStats
	if err := json.Unmarshal(s.control(t, "/_sim/stats", nil), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// graphReport is the JSON report with the incremental fields.
type graphReport struct {
	report
	ItemsUnchanged    int      `json:"items_unchanged"`
	ItemsRemoved      int      `json:"items_removed"`
	ItemsGone         int      `json:"items_gone"`
	ListingRestarts   int      `json:"listing_restarts"`
	ListRequests      int      `json:"list_requests"`
	DiscoveryRequests int      `json:"discovery_requests"`
	ThrottledItems    int      `json:"throttled_items"`
	DurationS         float64  `json:"duration_s"`
	Errors            []string `json:"errors"`
}

func graphBackup(t testing.TB, s *graphSim, data string, extra ...string) (graphReport, result) {
	t.Helper()
	args := append(append([]string{"backup", "--data", data, "--progress", "none", "--format", "json"}, s.args()...), extra...)
	res := mailvault(t, args...)
	var r graphReport
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("backup: exit %d, report is not JSON: %v\nstdout: %s\nstderr: %s", res.code, err, res.stdout, res.stderr)
	}
	mustf(t, !strings.Contains(res.stdout+res.stderr, s.ClientSecret), "the client secret appears in the output")
	return r, res
}

const incrementalTenant = `seed: 11
mailboxes:
  - address: dana@contoso.test
    folders:
      - path: Inbox
        items: 1200
        size: {min: 1KB, max: 3KB}
      - path: Inbox/Receipts
        items: 90
        size: {min: 1KB, max: 2KB}
      - path: Calendar
        kind: calendar
        items: 130
        size: {min: 1KB, max: 2KB}
      - path: Contacts
        kind: contacts
        items: 70
        size: {min: 1KB, max: 2KB}
`

// Full backup over HTTPS, then an incremental run after the mailbox changed
// (only the changes are fetched, deletions recorded), then a run whose
// delta tokens the server has expired (the delta restarts cleanly, nothing
// is stored twice).
func TestGraphFullIncrementalAndExpiredDelta(t *testing.T) {
	for _, mode := range []string{"export", "batch"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			sim := startGraphSim(t, incrementalTenant)
			data := filepath.Join(t.TempDir(), "data")
			total := 1200 + 90 + 130 + 70

			r1, res := graphBackup(t, sim, data, "--graph-content", mode)
			mustf(t, res.code == 0, "full backup exit %d: %s", res.code, res.stderr)
			mustf(t, r1.ItemsStored == total && r1.FoldersSkipped == 0, "full backup: %+v", r1)
			st1 := sim.stats(t)
			mustf(t, st1.Throttled == 0, "full backup was throttled %d times", st1.Throttled)
			files := storedCount(t, filepath.Join(data, "storage"))
			mustf(t, files == total, "storage holds %d items, want %d", files, total)

			// Nothing changed: each folder keeps the token it listed from
			// (a day young), and the run's log carries no new one.
			r1b, res := graphBackup(t, sim, data, "--graph-content", mode)
			mustf(t, res.code == 0 && r1b.ItemsScanned == 0 && r1b.ItemsStored == 0, "no-change run: exit %d %+v", res.code, r1b)
			unchanged := 0
			for _, line := range strings.Split(strings.TrimSpace(mailvault(t, "replay", "last", "--data", data, "--format", "jsonl").stdout), "\n") {
				var ev domain.Event
				mustf(t, json.Unmarshal([]byte(line), &ev) == nil, "replay line %q", line)
				mustf(t, ev.SyncToken == "" && (ev.Tree == nil || ev.Tree.Token == ""), "a no-change run recorded a new token: %s", line)
				if ev.Type == domain.FolderCompleted && ev.Unchanged {
					unchanged++
				}
			}
			mustf(t, unchanged == 4, "%d folders completed unchanged, want 4", unchanged)

			// The changes are listed from the kept tokens.
			sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "dana@contoso.test", "folder": "Inbox", "add": 7, "modify": 5, "delete": 3})
			sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "dana@contoso.test", "folder": "Calendar", "modify": 2})
			r2, res := graphBackup(t, sim, data, "--graph-content", mode)
			mustf(t, res.code == 0, "incremental exit %d: %s", res.code, res.stderr)
			mustf(t, r2.ItemsStored == 7+5+2 && r2.ItemsRemoved == 3, "incremental stored %d removed %d, want 14 and 3: %+v", r2.ItemsStored, r2.ItemsRemoved, r2)
			mustf(t, r2.ItemsScanned == 7+5+2, "incremental scanned %d items, want only the 14 changes", r2.ItemsScanned)
			wantReq := 1 + 1 // Inbox changes and the calendar's, one request each at 20 per request
			if mode == "batch" {
				wantReq = 2
			}
			mustf(t, r2.Requests == wantReq, "incremental made %d fetch requests, want %d", r2.Requests, wantReq)
			files = storedCount(t, filepath.Join(data, "storage"))
			mustf(t, files == total+14, "storage holds %d versions, want %d", files, total+14)

			sim.control(t, "/_sim/expire-deltas", map[string]any{})
			r3, res := graphBackup(t, sim, data, "--graph-content", mode)
			mustf(t, res.code == 0, "run after expiry exit %d: %s", res.code, res.stderr)
			mustf(t, r3.ListingRestarts == 4, "listing restarts %d, want one per folder (4): %+v", r3.ListingRestarts, r3)
			mustf(t, r3.ItemsStored == 0 && r3.Requests == 0, "after the restart nothing is fetched again: stored %d requests %d", r3.ItemsStored, r3.Requests)
			mustf(t, r3.ItemsScanned == total+7-3, "restarted listing scanned %d, want every live item (%d)", r3.ItemsScanned, total+4)
			files = storedCount(t, filepath.Join(data, "storage"))
			mustf(t, files == total+14, "storage holds %d versions after the restart, want %d", files, total+14)

			r4, res := graphBackup(t, sim, data, "--graph-content", mode)
			mustf(t, res.code == 0 && r4.ItemsScanned == 0 && r4.ListingRestarts == 0, "the restarted delta did not leave a usable deltaLink: %+v", r4)
			mustNotContain(t, data, sim.ClientSecret)
		})
	}
}

// Changes while a folder is being listed (items added, changed and deleted
// between pages) are all caught: by the end of the next run every live item
// is stored in its latest version and nothing was stored twice.
func TestGraphChangesBetweenPages(t *testing.T) {
	sim := startGraphSim(t, `seed: 5
mailboxes:
  - address: erin@contoso.test
    folders:
      - path: Inbox
        items: 1600
        size: {min: 1KB, max: 2KB}
        changes: {after_page: 1, add: 9, modify: 4, delete: 6}
`)
	data := filepath.Join(t.TempDir(), "data")
	r1, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0, "exit %d: %s", res.code, res.stderr)
	r2, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0, "exit %d: %s", res.code, res.stderr)
	// Page 1 (500 items) was listed before the change and fetched after it:
	// its 4 modified items are fetched in their new version, its 6 deleted
	// ones are gone when fetched; the 9 new items come at the end of the
	// first round. The next round reports all 19 changes again: the
	// deletions are recorded, the rest is known and not fetched.
	mustf(t, r1.ItemsStored == 1600-6+9 && r1.ItemsGone == 6, "first run stored %d gone %d, want %d and 6", r1.ItemsStored, r1.ItemsGone, 1600-6+9)
	mustf(t, r2.ItemsStored == 0 && r2.ItemsRemoved == 6 && r2.Requests == 0, "second run: %+v", r2)
	mustf(t, r2.ItemsScanned == 4+9, "second run scanned %d, want the 13 changed or added items", r2.ItemsScanned)
	files := storedCount(t, filepath.Join(data, "storage"))
	mustf(t, files == 1600-6+9, "storage holds %d items, want each live item once (%d)", files, 1600-6+9)
}

// Per-item failures inside exportItems and $batch quarantine that item
// without splitting; a whole-request failure of exportItems is isolated.
func TestGraphDirtyItems(t *testing.T) {
	sim := startGraphSim(t, `seed: 2
mailboxes:
  - address: finn@contoso.test
    folders:
      - path: Inbox
        items: 100
        dirty: [5, 61]
        dirty_mode: item
        size: {min: 1KB, max: 2KB}
      - path: Archive
        items: 100
        dirty: [40]
        size: {min: 1KB, max: 2KB}
`)
	for _, mode := range []string{"export", "batch"} {
		data := filepath.Join(t.TempDir(), "data")
		r, res := graphBackup(t, sim, data, "--graph-content", mode)
		mustf(t, res.code == 3, "%s: exit %d: %s", mode, res.code, res.stderr)
		mustf(t, r.ItemsStored == 197 && r.ItemsQuarantined == 3, "%s: stored %d quarantined %d", mode, r.ItemsStored, r.ItemsQuarantined)
		replay := mailvault(t, "replay", "last", "--data", data).stdout
		inbox := fetchLines(t, replay, "finn@contoso.test / Inbox")
		mustf(t, len(inbox) == 5, "%s: Inbox took %d requests, want 5 (per-item failures need no split):\n%s", mode, len(inbox), strings.Join(inbox, "\n"))
		archive := fetchLines(t, replay, "finn@contoso.test / Archive")
		if mode == "export" {
			// A whole exportItems call failed: 20 items isolated by halves.
			mustf(t, len(archive) > 5, "export: Archive took %d requests; the failed call was not isolated", len(archive))
		} else {
			mustf(t, len(archive) == 5, "batch: Archive took %d requests; $batch fails only the sub-request", len(archive))
		}
	}
}

// An app without MailboxItem.Export.All falls back to MIME through $batch.
func TestGraphExportDeniedFallsBack(t *testing.T) {
	sim := startGraphSim(t, `seed: 3
graph: {export_items: false}
mailboxes:
  - address: gus@contoso.test
    folders:
      - path: Inbox
        items: 60
        size: {min: 1KB, max: 2KB}
`)
	data := filepath.Join(t.TempDir(), "data")
	r, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0 && r.ItemsStored == 60, "exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
	mustf(t, strings.Contains(res.stderr, "MailboxItem.Export.All"), "the fallback is not explained: %s", res.stderr)
	st := sim.stats(t)
	mustf(t, st.Subrequests >= 60, "items were not fetched through $batch: %+v", st)
	var found bool
	for _, v := range storedVersions(t, filepath.Join(data, "storage")) {
		found = found || v.Format == "mime" && bytes.HasPrefix(v.Content, []byte("From: ")) // MIME, not an export stream
	}
	mustf(t, found, "stored items are not MIME")
}

// Graph faults: 503 storms with and without Retry-After, HTML 504 pages,
// dropped connections and truncated replies end in a complete backup.
func TestGraphFaultsAreRetried(t *testing.T) {
	for _, faults := range []string{
		"storm: {every: 7, length: 3, status: 503}",
		"storm: {every: 9, length: 2, status: 503, retry_after: 300ms}",
		"storm: {every: 11, length: 1, status: 504}",
		"drop: {every: 13}",
		"truncate: {every: 6}",
	} {
		t.Run(strings.Fields(faults)[0], func(t *testing.T) {
			t.Parallel()
			sim := startGraphSim(t, fmt.Sprintf(`seed: 4
faults:
  %s
mailboxes:
  - address: hal@contoso.test
    folders:
      - path: Inbox
        items: 300
        size: {min: 1KB, max: 2KB}
`, faults))
			data := filepath.Join(t.TempDir(), "data")
			r, res := graphBackup(t, sim, data)
			mustf(t, res.code == 0 && r.ItemsStored == 300, "%s: exit %d stored %d: %s %v", faults, res.code, r.ItemsStored, res.stderr, r.Errors)
		})
	}
}

// mustNotContain fails if any file under dir (the event log included) holds
// the secret.
func mustNotContain(t testing.TB, dir, secret string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s holds the client secret", p)
		}
		return nil
	})
}

// Tokens that expire during the run are renewed before they do; a token
// the server stops accepting (401) is replaced once and the request retried.
func TestGraphTokensRenewDuringTheRun(t *testing.T) {
	sim := startGraphSim(t, `seed: 8
latency: 2ms
mailboxes:
  - address: max@contoso.test
    folders:
      - path: Inbox
        items: 1500
        size: {min: 1KB, max: 2KB}
`, "--token-ttl", "1s")
	data := filepath.Join(t.TempDir(), "data")
	r, res := graphBackup(t, sim, data, "--graph-content", "batch")
	mustf(t, res.code == 0 && r.ItemsStored == 1500, "exit %d stored %d: %s %v", res.code, r.ItemsStored, res.stderr, r.Errors)
	st := sim.stats(t)
	mustf(t, st.Tokens >= 2, "%d tokens issued: the 1 s token was never renewed", st.Tokens)
	mustf(t, st.ByStatus["401"] == 0, "%d requests went out with an expired token", st.ByStatus["401"])
}

// Bad credentials end in a clear message naming Entra's error, never the
// secret; the data directory stays consistent.
func TestGraphBadCredentials(t *testing.T) {
	sim := startGraphSim(t, incrementalTenant)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("not-the-secret-123"), 0o600)
	args := append(sim.args(), "--data", filepath.Join(dir, "data"), "--progress", "none")
	for i, a := range args {
		if a == sim.secretFile {
			args[i] = wrong
		}
	}
	res := mailvault(t, append([]string{"backup"}, args...)...)
	mustf(t, res.code == 1, "exit %d, want 1", res.code)
	mustf(t, strings.Contains(res.stdout+res.stderr, "AADSTS7000215"), "no Entra code in: %s %s", res.stdout, res.stderr)
	mustf(t, !strings.Contains(res.stdout+res.stderr, "not-the-secret-123"), "the secret leaked")

	res = mailvault(t, "backup", "--source", "graph", "--tenant-id", sim.TenantID, "--client-id", sim.ClientID, "--client-secret", "x")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "--client-secret-file"), "a secret flag value was not refused: %d %s", res.code, res.stderr)
}

// --as-of chooses a mailbox as it was: each item's newest version stored
// by then, and nothing the source had deleted by then.
func TestSelectionAsOf(t *testing.T) {
	t.Parallel()
	sim := startGraphSim(t, incrementalTenant)
	data := filepath.Join(t.TempDir(), "data")
	total := 1200 + 90 + 130 + 70
	r1, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0 && r1.ItemsStored == total, "full backup: %d %+v", res.code, r1)
	var first struct {
		Ended time.Time `json:"ended"`
	}
	mustf(t, json.Unmarshal([]byte(mailvault(t, "report", r1.RunID, "--data", data, "--format", "json").stdout), &first) == nil, "report")
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "dana@contoso.test", "folder": "Inbox", "add": 7, "modify": 5, "delete": 3})
	r2, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0 && r2.ItemsStored == 12 && r2.ItemsRemoved == 3, "incremental: %+v", r2)
	store := filepath.Join(data, "storage")
	find := func(args ...string) map[string]string {
		t.Helper()
		res := mailvault(t, append([]string{"find", store, "--data", data, "--format", "json"}, args...)...)
		mustf(t, res.code == 0, "find %v: %s", args, res.stderr)
		out := map[string]string{} // item id -> version id
		for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
			var v struct {
				ID     string `json:"id"`
				ItemID string `json:"item_id"`
			}
			mustf(t, json.Unmarshal([]byte(line), &v) == nil, "find line %q", line)
			out[v.ItemID] = v.ID
		}
		return out
	}
	then := find("--as-of", first.Ended.Format(time.RFC3339Nano))
	now := find("--as-of", time.Now().UTC().Add(time.Minute).Format(time.RFC3339))
	all := find()
	mustf(t, len(then) == total, "as of the first run's end: %d items, want %d", len(then), total)
	mustf(t, len(now) == total+7-3 && len(all) == total+7, "as of now %d items (want %d), without --as-of %d (want %d)", len(now), total+4, len(all), total+7)
	changed := 0
	for item, v := range then {
		if nv, ok := all[item]; ok && nv != v {
			changed++
		}
	}
	mustf(t, changed == 5, "%d items have another version now than then, want the 5 modified", changed)
	// The recipients are searched too.
	toDana := find("--recipient", "DANA@contoso.test")
	mustf(t, len(toDana) >= 1200+90+7, "%d items found by their recipient, want at least the %d messages", len(toDana), 1200+90+7)
	res = mailvault(t, "find", store, "--data", data, "--recipient", "nobody@contoso.test", "--format", "json")
	mustf(t, res.code == 0 && strings.TrimSpace(res.stdout) == "", "a recipient nobody wrote to: %s", res.stdout)
	res = mailvault(t, "find", store, "--data", data, "--as-of", "yesterday-ish")
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "--as-of"), "a bad --as-of: %d %s", res.code, res.stderr)
}
