package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// QuarantineDesk shows a job's quarantined items and retries them.
type QuarantineDesk interface {
	JobQuarantine(ctx context.Context, job string) ([]Quarantined, error)
	// RetryQuarantined asks the job's next cycle to try the items (keys
	// from Quarantined; none: all) again, and starts the job if it is
	// stopped; it says how many will be tried and when.
	RetryQuarantined(ctx context.Context, job string, keys []string) (string, error)
}

// Quarantined is one item a job's backups leave out as dirty.
type Quarantined struct {
	// Key names the item in a retry request.
	Key                     string
	Mailbox, Folder, ItemID string
	Code                    string
	Position, Attempts      int
	Inferred                bool
	First, LastAttempt      time.Time
}

func (s *Server) quarantinePage(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("name")
	items, err := s.qd.JobQuarantine(r.Context(), job)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	s.render(w, r, "quarantine.html", map[string]any{"Job": job, "Items": items, "Page": "quarantine", "Notice": r.URL.Query().Get("notice")})
}

func (s *Server) retryQuarantined(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("name")
	r.ParseForm()
	keys := r.Form["item"]
	if r.FormValue("all") != "" {
		keys = nil
	} else if len(keys) == 0 {
		http.Redirect(w, r, "/jobs/"+url.PathEscape(job)+"/quarantine?notice="+url.QueryEscape("Choose the items to retry, or retry all."), http.StatusSeeOther)
		return
	}
	msg, err := s.qd.RetryQuarantined(r.Context(), job, keys)
	if err != nil {
		msg = fmt.Sprintf("Nothing was retried: %v", err)
	}
	http.Redirect(w, r, "/jobs/"+url.PathEscape(job)+"/quarantine?notice="+url.QueryEscape(msg), http.StatusSeeOther)
}
