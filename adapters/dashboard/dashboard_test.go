package dashboard

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/projections"
)

type fakeBackend struct {
	did     []string
	changed chan struct{}
}

func (f *fakeBackend) Jobs() []Job {
	return []Job{{Name: "nightly", Type: "continuous", State: "active (running)", Stored: 42, Settings: []Setting{{"Storage", "nas"}}}}
}
func (f *fakeBackend) News() ([]News, []News, error) {
	return []News{{Time: time.Unix(0, 0), Text: "Run r1 finished", RunID: "r1"}}, []News{{Time: time.Unix(0, 0), Text: "Run r2 finished with warnings", RunID: "r2"}}, nil
}
func (f *fakeBackend) Runs() ([]projections.RunSummary, error) { return nil, nil }
func (f *fakeBackend) Report(run string) (*projections.Report, error) {
	r := projections.NewReport(run)
	r.ThrottledRequests, r.StallSourceS, r.StallTargetS = 3, 1, 9
	r.Paces, r.PaceLimits = map[string]float64{"a@x": 2.5}, map[string]string{"a@x": "ErrorServerBusy, costly"}
	return r, nil
}
func (f *fakeBackend) RunCSV(run string, w io.Writer) error {
	_, err := io.WriteString(w, "timestamp,job,run,mailbox,folder,worker,event,detail\nt,,r1,a@x,Inbox,1,batch_failed,1. Fetch 400 items (#1 - #400) – failed\n")
	return err
}
func (f *fakeBackend) Do(action, job, idle string) error {
	f.did = append(f.did, action+" "+job+" "+idle)
	return nil
}
func (f *fakeBackend) Changed() <-chan struct{} { return f.changed }

func TestLoginSessionAndCSRF(t *testing.T) {
	fb := &fakeBackend{changed: make(chan struct{})}
	srv := httptest.NewServer(New(fb, "tok-123"))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	resp, _ := c.Get(srv.URL + "/")
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("without a session / goes to %s", resp.Request.URL.Path)
	}
	resp, _ = c.PostForm(srv.URL+"/login", url.Values{"token": {"wrong"}})
	if resp.Request.URL.Path != "/login" || !strings.Contains(resp.Request.URL.RawQuery, "error") {
		t.Fatalf("a wrong token got in: %s", resp.Request.URL)
	}
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = noFollow.PostForm(srv.URL+"/login", url.Values{"token": {"tok-123"}})
	ck := resp.Header.Get("Set-Cookie")
	if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || strings.Contains(ck, "tok-123") {
		t.Fatalf("session cookie %q", ck)
	}
	resp, _ = c.Get(srv.URL + "/")
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"Jobs", "Good news", "Bad news", "nightly", "Run r2 finished with warnings"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("dashboard lacks %q", want)
		}
	}
	resp, _ = c.PostForm(srv.URL+"/jobs/nightly/stop", url.Values{})
	if resp.StatusCode != http.StatusForbidden || len(fb.did) != 0 {
		t.Fatalf("an action without the CSRF token: %d %v", resp.StatusCode, fb.did)
	}
	srvCSRF := New(fb, "tok-123").csrf()
	resp, _ = c.PostForm(srv.URL+"/jobs/nightly/edit", url.Values{"csrf": {srvCSRF}, "idle": {"00:05:00"}})
	if resp.StatusCode != http.StatusOK || len(fb.did) != 1 || fb.did[0] != "edit nightly 00:05:00" {
		t.Fatalf("action: %d %v", resp.StatusCode, fb.did)
	}
	resp, _ = c.Get(srv.URL + "/runs/r1")
	body, _ = io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "Fetch 400 items (#1 - #400) – failed") || !strings.Contains(string(body), "Waiting for storage") || !strings.Contains(string(body), "Throttled by the server") ||
		!strings.Contains(string(body), "<td>a@x</td><td>2.5 requests/s</td><td>ErrorServerBusy, costly</td>") {
		t.Fatalf("run page:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := c.Do(req)
	if err != nil || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %v", err, resp.Header)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "event: jobs\n" {
		t.Fatalf("first event line %q", line)
	}
}
