package dashboard

import (
	"html"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/projections"
)

// reportBackend answers one report.
type reportBackend struct {
	fakeBackend
	r *projections.Report
}

func (b *reportBackend) Report(string) (*projections.Report, error) { return b.r, nil }

// The run page's "why" gives no number the page does not show beside it:
// each number of its text is one of the run's summary, whatever the run.
func TestWhyMatchesTheNumbers(t *testing.T) {
	cases := []struct {
		name string
		set  func(r *projections.Report)
		want string
	}{
		{"nothing", func(r *projections.Report) {}, "Nothing held this run up."},
		{"throttled", func(r *projections.Report) { r.ThrottledRequests, r.Parks = 7, 3 }, "folders were parked 3 times"},
		{"skipped", func(r *projections.Report) { r.FoldersSkipped = 2 }, "2 folders were skipped"},
		{"isolated", func(r *projections.Report) {
			r.RequestsByOutcome[domain.OutcomeFailed], r.ItemsQuarantined = 5, 2
		}, "5 requests failed"},
		{"quarantined before", func(r *projections.Report) { r.ItemsQuarantined = 4 }, "4 items are quarantined"},
		{"all at once", func(r *projections.Report) {
			r.ThrottledRequests, r.Parks, r.FoldersSkipped, r.ItemsQuarantined = 11, 6, 1, 9
			r.RequestsByOutcome[domain.OutcomeFailed] = 13
		}, "13 requests failed"},
	}
	number := regexp.MustCompile(`\d+`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := projections.NewReport("r1")
			rep.Requests, rep.ListRequests, rep.ItemsStored, rep.ItemsScanned = 120, 8, 900, 950
			c.set(rep)
			srv := httptest.NewServer(New(&reportBackend{fakeBackend: fakeBackend{changed: make(chan struct{})}, r: rep}, "tok-123"))
			defer srv.Close()
			cl, _ := login(t, srv.URL)
			resp, err := cl.Get(srv.URL + "/runs/r1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page := string(body)
			why := html.UnescapeString(strings.Join(regexp.MustCompile(`<p id="explain">([^<]*)</p>`).FindAllString(page, -1), " "))
			if !strings.Contains(why, c.want) {
				t.Fatalf("the why says %q, want %q", why, c.want)
			}
			summary := page[strings.Index(page, "<table>"):strings.Index(page, "</table>")]
			cells := map[string]bool{}
			for _, n := range number.FindAllString(summary, -1) {
				cells[n] = true
			}
			for _, n := range number.FindAllString(why, -1) {
				if !cells[n] {
					t.Errorf("the why gives %s, which the run's summary does not show:\n%s\n%s", n, why, summary)
				}
			}
		})
	}
}
