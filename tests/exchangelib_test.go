package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// exchangelib, the Python EWS client most third-party tools use, reads the
// simulator as it would read Exchange: it learns the version (ConvertId),
// walks the store from its root (Recoverable Items included, calendars and
// contacts under the Top of Information Store), counts and pages a folder
// (FindItem) sorted by date with the properties it asks for, reads events,
// contacts' addresses and MIME content, over NTLM as DOMAIN\user; every
// request and reply validates against the EWS schemas.
func TestExchangelibReadsTheSimulator(t *testing.T) {
	t.Parallel()
	needPythonModules(t, "exchangelib")
	sim := startEWSSim(t, ewsTenant)
	local, _, _ := strings.Cut(sim.Username, "@")
	cmd := exec.Command(python3, filepath.Join("testdata", "exchangelib_read.py"), sim.EWSURL, `CONTOSO\`+local, sim.passwordFile, "olga@contoso.test")
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+sim.CACert, "CURL_CA_BUNDLE="+sim.CACert)
	out, err := cmd.CombinedOutput()
	mustf(t, !strings.Contains(string(out), sim.Password), "the password was printed")
	mustf(t, err == nil, "exchangelib: %v\n%s", err, out)
	var r struct {
		Version    string   `json:"version"`
		Folders    []string `json:"folders"`
		InboxTotal int      `json:"inbox_total"`
		Inbox      int      `json:"inbox"`
		Newest     []struct {
			Subject, From, Received string
			Size                    int
		} `json:"newest"`
		Events []struct {
			Subject, Start, End string
		} `json:"events"`
		Contacts []struct {
			Name   string   `json:"name"`
			Emails []string `json:"emails"`
		} `json:"contacts"`
		Mime []int `json:"mime"`
	}
	mustf(t, json.Unmarshal(out, &r) == nil, "exchangelib printed %s", out)
	for _, want := range []string{"Top of Information Store", "Inbox", "Calendar", "Contacts", "Recoverable Items", "Deletions"} {
		mustf(t, sort.SearchStrings(r.Folders, want) < len(r.Folders) && r.Folders[sort.SearchStrings(r.Folders, want)] == want, "the folder walk lacks %s: %v", want, r.Folders)
	}
	const inbox = 700 // ewsTenant's olga@contoso.test Inbox
	mustf(t, r.InboxTotal == inbox && r.Inbox == inbox, "inbox: total %d, listed %d, want %d", r.InboxTotal, r.Inbox, inbox)
	mustf(t, len(r.Newest) == 3 && r.Newest[0].Received >= r.Newest[1].Received && r.Newest[1].Received >= r.Newest[2].Received &&
		strings.HasSuffix(r.Newest[0].From, "@contoso.test") && r.Newest[0].Size > 0 && r.Newest[0].Subject != "", "newest messages: %+v", r.Newest)
	mustf(t, len(r.Events) > 0 && r.Events[0].End > r.Events[0].Start, "events: %+v", r.Events)
	mustf(t, len(r.Contacts) > 0 && len(r.Contacts[0].Emails) == 1, "contacts: %+v", r.Contacts)
	mustf(t, len(r.Mime) == 2 && r.Mime[0] > 100, "MIME content: %v", r.Mime)
	if msg := validateRecorded(t, sim.record); msg != "" {
		t.Fatalf("schema validation failed:\n%s", msg)
	}
}
