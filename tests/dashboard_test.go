package tests

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium is Debian's (installed by .ci/run).
func chromium(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is missing; .ci/run installs it")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// The dashboard in a real browser: log in with the token, see a running
// job's counters grow without reloading (Server-Sent Events), open the run's
// timeline, stop and start the job. Screenshots go to tests/artifacts.
func TestDashboardInABrowser(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	browser := chromium(t)
	sim := startGraphSim(t, `seed: 44
latency: 150ms
mailboxes:
  - address: ida@contoso.test
    folders:
      - path: Inbox
        items: 6000
        size: {min: 1KB, max: 2KB}
        dirty: [33]
        dirty_mode: item
      - path: Projects
        items: 12
        size: {min: 1KB, max: 2KB}
  - address: joe@contoso.test
    folders:
      - path: Inbox
        items: 0
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := jobSetup(t, sim, dir, "live", "--mailbox", "ida@contoso.test", "--idle", "00:00:02")
	d := startDaemon(t, data)
	tok, _ := os.ReadFile(filepath.Join(data, "daemon.token"))
	mustf(t, run("job", "start", "live").code == 0, "job start")

	artifacts, _ := filepath.Abs(filepath.Join("artifacts", t.Name()))
	os.MkdirAll(artifacts, 0o755)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// The pinned DevTools protocol types predate some of Chromium's event
	// fields; those events are not used here, so their decode errors are not logged.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 300*time.Second)
	defer cancelTimeout()
	base := "http://" + d.addr
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(artifacts, name+".png"), buf, 0o644)
		})
	}
	must := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// onReloadingPage clicks on a page that reloads itself while a job runs
	// (a meta refresh): a node found just before a reload is gone when it
	// is clicked, and nothing was clicked, so the click is tried again on
	// the reloaded page (CI at cfd9fc0: "Could not find node with given id").
	onReloadingPage := func(what string, actions ...chromedp.Action) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := chromedp.Run(ctx, actions...)
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), "Could not find node") || time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	// sessionCookie is the browser's session cookie now.
	sessionCookie := func() string {
		t.Helper()
		var session string
		must("read the session cookie", chromedp.ActionFunc(func(ctx context.Context) error {
			cookies, err := network.GetCookies().Do(ctx)
			for _, c := range cookies {
				if c.Name == "mailvault_session" {
					session = c.Value
				}
			}
			return err
		}))
		return session
	}
	// accessible checks the page in the browser now: every field has a
	// label, nothing interactive is kept out of the keyboard's reach, and
	// nothing is wider than the 1280x800 window.
	accessible := func(page string) {
		t.Helper()
		var problems string
		must("check "+page+" for accessibility", chromedp.Evaluate(`(() => {
			const out = [];
			for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
				if (!(e.labels && e.labels.length) && !e.getAttribute('aria-label')) out.push('no label: ' + (e.name || e.id));
			}
			for (const e of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
				if (e.tabIndex < 0) out.push('not reachable by keyboard: ' + (e.id || e.textContent.trim()));
			}
			if (document.documentElement.scrollWidth > window.innerWidth) out.push('wider than the window: ' + document.documentElement.scrollWidth);
			return out.join('; ');
		})()`, &problems))
		mustf(t, problems == "", "%s: %s", page, problems)
	}
	must("log in",
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#token", chromedp.ByID),
		shot("1-login"))
	accessible("the login page")
	must("log in",
		chromedp.SendKeys("#token", strings.TrimSpace(string(tok)), chromedp.ByID),
		chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#jobs-card", chromedp.ByID),
		shot("2-dashboard"))
	accessible("the dashboard")

	must("open the jobs page", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible("#stored-live", chromedp.ByID))
	accessible("the jobs page")
	counter := func() int {
		var s string
		must("read the counter", chromedp.Text("#stored-live", &s, chromedp.ByID))
		n, _ := strconv.Atoi(strings.TrimSpace(s))
		return n
	}
	first := counter()
	deadline := time.Now().Add(60 * time.Second)
	for counter() <= first {
		mustf(t, time.Now().Before(deadline), "the stored counter stayed at %d without a reload", first)
		time.Sleep(200 * time.Millisecond)
	}
	must("screenshot the live counters", shot("3-jobs-live"))

	var timeline string
	deadline = time.Now().Add(30 * time.Second)
	for {
		var run string
		must("read the run", chromedp.Text("#run-live", &run, chromedp.ByID))
		if strings.TrimSpace(run) != "" {
			break
		}
		mustf(t, time.Now().Before(deadline), "the running job shows no run")
		time.Sleep(200 * time.Millisecond)
	}
	must("open the run's timeline",
		chromedp.Click("#run-live", chromedp.ByID),
		chromedp.WaitVisible("#timeline", chromedp.ByID),
		chromedp.Text("#timeline", &timeline, chromedp.ByID),
		shot("4-run"))
	mustf(t, strings.Contains(timeline, "Fetch ") && strings.Contains(timeline, "Listed"), "the timeline shows no requests: %s", timeline)
	accessible("the run page")

	// state reads the job's state cell; while a button's redirect loads the
	// page again the cell may be gone for a moment, which reads as "".
	state := func() string {
		var s string
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := chromedp.Run(tctx, chromedp.Text(`td[data-job="live"][data-field="State"]`, &s, chromedp.ByQuery)); err != nil {
			return ""
		}
		return s
	}
	// The small folder is whole in the storage before the job stops (its
	// one batch goes out beside the Inbox's).
	deadline = time.Now().Add(60 * time.Second)
	for !regexp.MustCompile(`(?m)^ida@contoso\.test/Projects\s+12\s`).MatchString(run("ls", "nas", "ida@contoso.test").stdout) {
		mustf(t, time.Now().Before(deadline), "the Projects folder is not stored: %s", run("ls", "nas", "ida@contoso.test").stdout)
		time.Sleep(300 * time.Millisecond)
	}
	must("stop the job", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible("#stop-live", chromedp.ByID), chromedp.Click("#stop-live", chromedp.ByID),
		chromedp.WaitVisible("#start-live", chromedp.ByID))
	deadline = time.Now().Add(60 * time.Second)
	for st := state(); st == "" || strings.Contains(st, "running") || strings.HasPrefix(st, "active"); st = state() {
		mustf(t, time.Now().Before(deadline), "the job did not stop: %q", st)
		time.Sleep(200 * time.Millisecond)
	}
	must("screenshot the stopped job", shot("5-stopped"))

	// Browse the backup: the storage's mailboxes, the mailbox's folders,
	// the Inbox's items, one opened; then a search by a word of its
	// subject finds it, and its download is the message.
	must("browse the storage", chromedp.Navigate(base+"/browse"), chromedp.WaitVisible("#groups", chromedp.ByID), shot("5a-mailboxes"))
	accessible("the storage's mailboxes")
	must("open the mailbox", chromedp.Click("#groups a", chromedp.ByQuery), chromedp.WaitVisible("#this-mailbox", chromedp.ByID), shot("5b-folders"))
	must("open the Inbox", chromedp.Click("#groups a", chromedp.ByQuery), chromedp.WaitVisible("#results", chromedp.ByID), shot("5c-items"))
	accessible("a folder's items")
	var subject, headers, downloadHref string
	must("open an item", chromedp.Click(".item-link", chromedp.ByQuery), chromedp.WaitVisible("#headers", chromedp.ByID),
		chromedp.Text("#item h2", &subject, chromedp.ByQuery), chromedp.Text("#headers", &headers, chromedp.ByID),
		chromedp.AttributeValue("#download", "href", &downloadHref, nil, chromedp.ByID), shot("5d-item"))
	accessible("an item")
	mustf(t, strings.Contains(headers, "From") && strings.Contains(headers, "Subject") && strings.Contains(headers, subject), "the item's headers: %q (subject %q)", headers, subject)
	word := strings.Fields(subject)[0]
	var results string
	must("search by subject", chromedp.Navigate(base+"/browse"), chromedp.WaitVisible("#f-subject", chromedp.ByID),
		chromedp.SendKeys("#f-subject", word, chromedp.ByID), chromedp.Click("#find", chromedp.ByID),
		chromedp.WaitVisible("#results", chromedp.ByID), chromedp.Text("#results", &results, chromedp.ByID), shot("5e-search"))
	mustf(t, strings.Contains(results, subject), "searching %q did not find %q:\n%s", word, subject, results)
	must("search by recipient", chromedp.Navigate(base+"/browse"), chromedp.WaitVisible("#f-recipient", chromedp.ByID),
		chromedp.SendKeys("#f-subject", subject, chromedp.ByID), chromedp.SendKeys("#f-recipient", "ida@contoso.test", chromedp.ByID),
		chromedp.Click("#find", chromedp.ByID), chromedp.WaitVisible("#results", chromedp.ByID), chromedp.Text("#results", &results, chromedp.ByID))
	mustf(t, strings.Contains(results, subject), "searching the recipient did not find %q:\n%s", subject, results)
	must("search a recipient nobody wrote to", chromedp.Navigate(base+"/browse"), chromedp.WaitVisible("#f-recipient", chromedp.ByID),
		chromedp.SendKeys("#f-recipient", "nobody@contoso.test", chromedp.ByID), chromedp.Click("#find", chromedp.ByID),
		chromedp.WaitVisible("#no-results", chromedp.ByID))

	// Restore a folder into another mailbox: the simulator receives
	// exactly the items the folder's page lists.
	var found []string
	must("open the Projects folder", chromedp.Navigate(base+"/browse/nas?mailbox=ida@contoso.test"), chromedp.WaitVisible("#groups", chromedp.ByID),
		chromedp.Click(`//table//a[contains(., "Projects")]`, chromedp.BySearch), chromedp.WaitVisible("#restore-form", chromedp.ByID),
		chromedp.Evaluate(`[...document.querySelectorAll('.item-link')].map(a => a.textContent)`, &found))
	accessible("the restore form")
	mustf(t, len(found) == 12, "the Projects folder lists %d items, want 12", len(found))
	must("restore the folder into joe's mailbox", chromedp.SendKeys("#r-target", "joe@contoso.test", chromedp.ByID), shot("5f-restore-form"),
		chromedp.Click("#restore", chromedp.ByID), chromedp.WaitVisible("#restore-status", chromedp.ByID))
	var restoreState, created string
	deadline = time.Now().Add(60 * time.Second)
	for {
		must("read the restore's state", chromedp.Reload(), chromedp.WaitVisible("#restore-state", chromedp.ByID), chromedp.Text("#restore-state", &restoreState, chromedp.ByID))
		if restoreState != "running" {
			break
		}
		mustf(t, time.Now().Before(deadline), "the restore did not end")
		time.Sleep(300 * time.Millisecond)
	}
	must("read the restore's outcome", chromedp.Text("#restore-created", &created, chromedp.ByID), shot("5g-restored"))
	accessible("a restore's page")
	mustf(t, restoreState == "finished" && strings.TrimSpace(created) == "12", "restore %s, created %s, want 12", restoreState, created)
	var arrived []string
	for folder, vs := range versionsOf(t, sim, "joe@contoso.test") {
		for _, v := range vs {
			arrived = append(arrived, folder+": "+v.Subject)
		}
	}
	for i := range found {
		found[i] = "Projects: " + found[i]
	}
	sort.Strings(found)
	sort.Strings(arrived)
	mustf(t, slices.Equal(found, arrived), "joe's mailbox received %q, the folder holds %q", arrived, found)
	req, _ := http.NewRequest(http.MethodGet, base+downloadHref, nil)
	req.AddCookie(&http.Cookie{Name: "mailvault_session", Value: sessionCookie()})
	resp, err := http.DefaultClient.Do(req)
	mustf(t, err == nil && resp.StatusCode == http.StatusOK, "download %s: %v", downloadHref, err)
	eml, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	msg, err := mail.ReadMessage(bytes.NewReader(eml))
	mustf(t, err == nil && resp.Header.Get("Content-Type") == "message/rfc822", "the download is not a message: %v", err)
	dec := new(mime.WordDecoder)
	got, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	mustf(t, got == subject, "the download's subject %q, the page's %q", got, subject)
	var news, protected string
	must("read the news and the job's card", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#jobs-card", chromedp.ByID), chromedp.Text("body", &news, chromedp.ByQuery),
		chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible("#protected-live", chromedp.ByID), chromedp.Text("#protected-live", &protected, chromedp.ByID))
	mustf(t, strings.Contains(news, "Job live: run "), "the news do not name the job:\n%s", news)
	n, _ := strconv.Atoi(strings.TrimSpace(protected))
	mustf(t, n > 0, "the job's card protects %q items", protected)
	mustf(t, strings.Contains(run("job", "list").stdout, "inactive"), "job list after the browser stopped the job: %s", run("job", "list").stdout)
	must("start the job", chromedp.Click("#start-live", chromedp.ByID), chromedp.WaitVisible("#stop-live", chromedp.ByID))
	deadline = time.Now().Add(30 * time.Second)
	for !strings.HasPrefix(state(), "active") {
		mustf(t, time.Now().Before(deadline), "the job did not start: %s", state())
		time.Sleep(200 * time.Millisecond)
	}
	must("screenshot the started job", shot("6-started"))

	// The setup wizards, end to end: a connection and its permission
	// checklist, a storage and its recovery key shown once, a job through
	// to its summary, the running job's edit asking to stop it first,
	// and the alerts.
	must("open setup", chromedp.Navigate(base+"/setup"), chromedp.WaitVisible("#setup-connections", chromedp.ByID), shot("8a-setup"))
	accessible("the setup page")
	must("open the connection wizard", chromedp.Click("#new-connection", chromedp.ByID), chromedp.WaitVisible("#c-name", chromedp.ByID))
	accessible("the connection wizard")
	var checklist string
	must("add a connection", chromedp.SendKeys("#c-name", "second", chromedp.ByID), chromedp.SendKeys("#c-tenant", sim.TenantID, chromedp.ByID),
		chromedp.SendKeys("#c-client", sim.ClientID, chromedp.ByID), chromedp.SendKeys("#c-graph-url", sim.GraphURL, chromedp.ByID),
		chromedp.SendKeys("#c-token-url", sim.TokenURL, chromedp.ByID), chromedp.SendKeys("#c-secret", sim.ClientSecret, chromedp.ByID),
		chromedp.SendKeys("#c-ca", sim.CACert, chromedp.ByID), chromedp.SendKeys("#c-test-mailbox", "ida@contoso.test", chromedp.ByID),
		shot("8b-connection-wizard"), chromedp.Click("#c-add", chromedp.ByID), chromedp.WaitVisible("#checklist", chromedp.ByID),
		chromedp.Text("#checklist", &checklist, chromedp.ByID), shot("8c-permission-checklist"))
	accessible("the permission checklist")
	mustf(t, strings.Contains(checklist, "✓") && !strings.Contains(checklist, "✗") && strings.Contains(checklist, "Mail.Read"),
		"the checklist of a connection with every permission:\n%s", checklist)
	mustf(t, strings.Contains(run("connection", "list").stdout, "second"), "connection list lacks the wizard's connection")

	var recoveryKey string
	must("open the storage wizard", chromedp.Navigate(base+"/setup/storages/new"), chromedp.WaitVisible("#s-name", chromedp.ByID), shot("8c2-storage-wizard"))
	accessible("the storage wizard")
	must("add a storage", chromedp.SendKeys("#s-name", "vault2", chromedp.ByID), chromedp.SendKeys("#s-path", filepath.Join(dir, "vault2"), chromedp.ByID),
		chromedp.SendKeys("#s-password", "correct horse battery", chromedp.ByID), chromedp.SendKeys("#s-confirm", "correct horse battery", chromedp.ByID),
		chromedp.Click("#s-add", chromedp.ByID), chromedp.WaitVisible("#recovery-key", chromedp.ByID),
		chromedp.Text("#recovery-key", &recoveryKey, chromedp.ByID), shot("8d-recovery-key"))
	mustf(t, len(strings.TrimSpace(recoveryKey)) > 20, "the recovery key shown: %q", recoveryKey)
	var setupText string
	must("the recovery key is shown once", chromedp.Navigate(base+"/setup"), chromedp.WaitVisible("#setup-storages", chromedp.ByID),
		chromedp.Text("body", &setupText, chromedp.ByQuery))
	mustf(t, strings.Contains(setupText, "vault2") && !strings.Contains(setupText, strings.TrimSpace(recoveryKey)), "setup after the storage:\n%s", setupText)
	mustf(t, !strings.Contains(run("storage", "list").stdout, strings.TrimSpace(recoveryKey)), "storage list shows the recovery key")

	must("edit the connection (the secret kept)", chromedp.Navigate(base+"/setup"), chromedp.WaitVisible("#edit-connection-second", chromedp.ByID),
		chromedp.Click("#edit-connection-second", chromedp.ByID), chromedp.WaitVisible("#c-tenant", chromedp.ByID), shot("8c3-edit-connection"),
		chromedp.Click("#c-add", chromedp.ByID), chromedp.WaitVisible("#checklist", chromedp.ByID), chromedp.Text("#checklist", &checklist, chromedp.ByID))
	mustf(t, strings.Contains(checklist, "✓") && !strings.Contains(checklist, "✗"), "the checklist after an edit that kept the secret:\n%s", checklist)
	var retNotice string
	must("set the storage's retention", chromedp.Navigate(base+"/setup/storages/vault2/edit"), chromedp.WaitVisible("#s-keep-versions", chromedp.ByID),
		chromedp.SetValue("#s-keep-versions", "3", chromedp.ByID), chromedp.SetValue("#s-keep-deleted", "90d", chromedp.ByID), shot("8c4-retention"),
		chromedp.Click("#s-save", chromedp.ByID), chromedp.WaitVisible("#notice", chromedp.ByID), chromedp.Text("#notice", &retNotice, chromedp.ByID))
	ret := run("storage", "retention", "vault2").stdout
	mustf(t, strings.Contains(retNotice, "retention saved") && strings.Contains(ret, "3") && strings.Contains(ret, "90"), "retention: %q\n%s", retNotice, ret)

	var summary, notice string
	must("open the job wizard", chromedp.Navigate(base+"/setup/jobs/new"), chromedp.WaitVisible("#j-name", chromedp.ByID), shot("8d2-job-wizard"))
	accessible("the job wizard")
	must("create a job", chromedp.SendKeys("#j-name", "wizard", chromedp.ByID), chromedp.SetValue("#j-idle", "00:00:30", chromedp.ByID),
		chromedp.SetValue("#j-connection", "second", chromedp.ByID), chromedp.Click("#j-some", chromedp.ByID),
		chromedp.SendKeys("#j-mailboxes", "joe@contoso.test", chromedp.ByID), chromedp.SetValue("#j-storage", "vault2", chromedp.ByID),
		chromedp.SetValue("#j-age-mode", "not_older", chromedp.ByID), chromedp.SetValue("#j-age-n", "5", chromedp.ByID),
		chromedp.SetValue("#j-age-unit", "years", chromedp.ByID), chromedp.Click("#j-review", chromedp.ByID),
		chromedp.WaitVisible("#summary", chromedp.ByID), chromedp.Text("#summary", &summary, chromedp.ByID), shot("8e-job-summary"))
	accessible("the job summary")
	for _, want := range []string{"wizard", "second", "vault2", "joe@contoso.test", "not_older 5 years", "00:00:30"} {
		mustf(t, strings.Contains(summary, want), "the job summary lacks %q:\n%s", want, summary)
	}
	must("confirm the job", chromedp.Click("#j-save", chromedp.ByID), chromedp.WaitVisible("#notice", chromedp.ByID), chromedp.Text("#notice", &notice, chromedp.ByID))
	mustf(t, strings.Contains(notice, "Job wizard created"), "after the job wizard: %q", notice)
	jobSpec := run("job", "show", "wizard").stdout
	mustf(t, strings.Contains(jobSpec, "vault2") && strings.Contains(jobSpec, "joe@contoso.test"), "job show wizard:\n%s", jobSpec)

	var problem string
	var editPage string
	must("open the running job's edit", chromedp.Navigate(base+"/setup/jobs/live/edit"), chromedp.WaitVisible("#j-idle", chromedp.ByID), chromedp.Text("body", &editPage, chromedp.ByQuery))
	mustf(t, strings.Contains(editPage, "The job is running (started)"), "the running job's edit page does not ask to stop it (%s):\n%s", state(), editPage)
	must("edit the running job", chromedp.WaitVisible("#running-notice", chromedp.ByID),
		chromedp.SetValue("#j-idle", "00:00:05", chromedp.ByID), chromedp.Click("#j-review", chromedp.ByID), chromedp.WaitVisible("#j-save", chromedp.ByID),
		chromedp.Click("#j-save", chromedp.ByID), chromedp.WaitVisible("#problem", chromedp.ByID), chromedp.Text("#problem", &problem, chromedp.ByID), shot("8f-edit-running-job"))
	mustf(t, strings.Contains(problem, "stop it first"), "saving a running job: %q", problem)
	must("stop it from the edit page", chromedp.Click("#stop-to-edit", chromedp.ByID), chromedp.WaitVisible("#start-live", chromedp.ByID))
	deadline = time.Now().Add(60 * time.Second)
	for {
		must("save the stopped job", chromedp.Navigate(base+"/setup/jobs/live/edit"), chromedp.WaitVisible("#j-idle", chromedp.ByID),
			chromedp.SetValue("#j-idle", "00:00:05", chromedp.ByID), chromedp.Click("#j-review", chromedp.ByID), chromedp.WaitVisible("#j-save", chromedp.ByID),
			chromedp.Click("#j-save", chromedp.ByID), chromedp.WaitVisible("#notice, #problem", chromedp.ByQuery), chromedp.Text("body", &notice, chromedp.ByQuery))
		if strings.Contains(notice, "Job live saved") {
			break
		}
		mustf(t, time.Now().Before(deadline), "the stopped job could not be saved: %s", notice)
		time.Sleep(300 * time.Millisecond)
	}
	mustf(t, strings.Contains(run("job", "show", "live").stdout, "00:00:05"), "the edit did not reach the job: %s", run("job", "show", "live").stdout)

	must("set the alerts", chromedp.Navigate(base+"/setup/alerts"), chromedp.WaitVisible("#a-host", chromedp.ByID))
	accessible("the alerts page")
	must("save the alerts", chromedp.SendKeys("#a-host", "smtp.contoso.test", chromedp.ByID), chromedp.SetValue("#a-port", "2525", chromedp.ByID),
		chromedp.SetValue("#a-tls", "none", chromedp.ByID), chromedp.SendKeys("#a-from", "backup@contoso.test", chromedp.ByID),
		chromedp.SendKeys("#a-to", "admin@contoso.test", chromedp.ByID), shot("8g-alerts"), chromedp.Click("#a-save", chromedp.ByID),
		chromedp.WaitVisible("#notice", chromedp.ByID), chromedp.Text("#notice", &notice, chromedp.ByID))
	mustf(t, strings.Contains(notice, "Alerts saved"), "after the alerts: %q", notice)
	alerts := run("alerts", "show").stdout
	mustf(t, strings.Contains(alerts, "smtp.contoso.test") && strings.Contains(alerts, "admin@contoso.test"), "alerts show:\n%s", alerts)
	must("open the jobs page", chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible("#start-live", chromedp.ByID))
	onReloadingPage("start the job again", chromedp.Click("#start-live", chromedp.ByID))
	must("see it started", chromedp.WaitVisible("#stop-live", chromedp.ByID))

	// The job's quarantined item (#33), and "retry now".
	var quarantinedRows string
	onReloadingPage("open the job's quarantine", chromedp.Click("#quarantine-live", chromedp.ByID))
	must("read the job's quarantine", chromedp.WaitVisible("#quarantined", chromedp.ByID),
		chromedp.Text("#quarantined", &quarantinedRows, chromedp.ByID), shot("9a-quarantine"))
	accessible("the quarantine page")
	mustf(t, strings.Contains(quarantinedRows, "ida@contoso.test / Inbox") && strings.Contains(quarantinedRows, "33"), "the quarantine page:\n%s", quarantinedRows)
	must("retry it now", chromedp.Click("#retry-all", chromedp.ByID), chromedp.WaitVisible("#notice", chromedp.ByID), chromedp.Text("#notice", &notice, chromedp.ByID),
		shot("9b-retried"))
	mustf(t, strings.Contains(notice, "1 quarantined items will be tried again"), "after retry now: %q", notice)

	// Log out: the session ends on the daemon, so its cookie, replayed
	// from outside the browser, opens nothing.
	session := sessionCookie()
	replay := func() int {
		req, _ := http.NewRequest(http.MethodGet, base+"/jobs", nil)
		req.AddCookie(&http.Cookie{Name: "mailvault_session", Value: session})
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		mustf(t, err == nil, "replay the cookie: %v", err)
		resp.Body.Close()
		return resp.StatusCode
	}
	mustf(t, session != "" && replay() == http.StatusOK, "the session cookie does not open the jobs page before logout")
	must("log out", chromedp.Click("#logout", chromedp.ByID), chromedp.WaitVisible("#token", chromedp.ByID), shot("7-logged-out"))
	mustf(t, replay() == http.StatusSeeOther, "the cookie of a logged-out session still opens the jobs page")
	t.Logf("screenshots in %s", artifacts)
}
