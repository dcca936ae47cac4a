package dashboard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// setupBackend records what the wizards asked.
type setupBackend struct {
	fakeBackend
	storages []StorageForm
	running  bool
}

func (b *setupBackend) SetupState(context.Context) (SetupState, error) {
	return SetupState{Connections: []string{"online"}, Storages: []string{"nas"}, Jobs: []JobRef{{Name: "nightly", Running: b.running}}}, nil
}
func (b *setupBackend) AddConnection(context.Context, ConnectionForm) error { return nil }
func (b *setupBackend) ConnectionForm(context.Context, string) (ConnectionForm, error) {
	return ConnectionForm{Name: "online", Type: "graph"}, nil
}
func (b *setupBackend) EditConnection(context.Context, ConnectionForm) error { return nil }
func (b *setupBackend) StorageForm(context.Context, string) (StorageForm, error) {
	return StorageForm{Name: "nas"}, nil
}
func (b *setupBackend) SetRetention(_ context.Context, s StorageForm) error {
	if s.KeepVersions < 0 {
		return errors.New("keep versions -1: use 0 (all) or more")
	}
	return nil
}
func (b *setupBackend) TestConnection(context.Context, string, string) ([]Check, error) {
	return []Check{{What: "list users", Permission: "User.Read.All"}, {What: "export items", Permission: "MailboxItem.Export.All", Problem: "403", Optional: true}}, nil
}
func (b *setupBackend) AddStorage(_ context.Context, s StorageForm) (string, error) {
	b.storages = append(b.storages, s)
	return "KEY-1234-5678-9012-3456", nil
}
func (b *setupBackend) JobForm(context.Context, string) (JobForm, error) {
	return JobForm{Name: "nightly", Continuity: "continuous", Connection: "online", Storage: "nas"}, nil
}
func (b *setupBackend) SaveJob(context.Context, JobForm, bool) error {
	if b.running {
		return ErrJobRunning
	}
	return nil
}
func (b *setupBackend) JobSummary(_ context.Context, j JobForm) ([]Setting, error) {
	if j.Name == "" {
		return nil, errors.New("a job needs a name")
	}
	return []Setting{{"Name", j.Name}}, nil
}
func (b *setupBackend) Alerts(context.Context) (AlertsForm, error)  { return AlertsForm{}, nil }
func (b *setupBackend) SetAlerts(context.Context, AlertsForm) error { return nil }

// The wizards refuse what cannot be, without echoing secrets: passwords
// that differ create nothing; a running job's save is refused (409) with
// the offer to stop it; a review without a name returns to the form.
func TestSetupWizardsRefuse(t *testing.T) {
	b := &setupBackend{fakeBackend: fakeBackend{changed: make(chan struct{})}}
	srv := httptest.NewServer(New(b, "tok-123"))
	defer srv.Close()
	c, _ := login(t, srv.URL)
	resp, _ := c.Get(srv.URL + "/setup")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(string(page))[1]
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		form.Set("csrf", csrf)
		resp, err := c.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/setup/storages", url.Values{"name": {"usb"}, "path": {"/srv/usb"}, "password": {"s3cret-one"}, "confirm": {"s3cret-two"}})
	if code != http.StatusBadRequest || len(b.storages) != 0 || !strings.Contains(body, "differ") || strings.Contains(body, "s3cret") {
		t.Fatalf("differing passwords: %d, %d created: %s", code, len(b.storages), body)
	}
	code, body = post("/setup/storages", url.Values{"name": {"usb"}, "path": {"/srv/usb"}, "password": {"s3cret-one"}, "confirm": {"s3cret-one"}})
	if code != http.StatusOK || len(b.storages) != 1 || !strings.Contains(body, "KEY-1234-5678-9012-3456") || strings.Contains(body, "s3cret") {
		t.Fatalf("a storage: %d: %s", code, body)
	}
	code, body = post("/setup/connections/online/test", url.Values{})
	if code != http.StatusOK || !strings.Contains(body, "User.Read.All") || !strings.Contains(body, "optional: backups take a slower route") {
		t.Fatalf("the checklist: %d: %s", code, body)
	}
	code, body = post("/setup/jobs/review", url.Values{"continuity": {"continuous"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "a job needs a name") || !strings.Contains(body, `id="j-name"`) {
		t.Fatalf("a review without a name: %d: %s", code, body)
	}
	code, body = post("/setup/storages/nas", url.Values{"keep_versions": {"-1"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "use 0 (all) or more") || !strings.Contains(body, `id="s-save"`) {
		t.Fatalf("a bad retention: %d: %s", code, body)
	}
	b.running = true
	code, body = post("/setup/jobs", url.Values{"name": {"nightly"}, "editing": {"1"}, "continuity": {"continuous"}})
	if code != http.StatusConflict || !strings.Contains(body, "stop it first") || !strings.Contains(body, `id="stop-to-edit"`) {
		t.Fatalf("saving a running job: %d: %s", code, body)
	}
}
