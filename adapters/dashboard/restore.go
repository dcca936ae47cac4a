package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Restorer starts restores from the console and follows them: the same
// restore the command line runs (resumable: the same restore again
// continues an unfinished one), run by the daemon in the background.
type Restorer interface {
	// Connections names the connections a restore can go to.
	Connections(ctx context.Context) ([]string, error)
	// StartRestore starts a restore (or finds the same one running) and
	// returns its id in the console.
	StartRestore(ctx context.Context, storage string, req RestoreRequest) (string, error)
	// RestoreStatus is where a restore started from the console is.
	RestoreStatus(id string) (RestoreStatus, bool)
}

// RestoreRequest is what the console's restore form asks.
type RestoreRequest struct {
	// Query chooses the items (a mailbox, a folder, a search); Items, when
	// set, names versions by id instead.
	Query Query
	Items []string
	// To is the connection restored to; TargetMailbox another mailbox than
	// the items' own; Into a folder they go under; Collisions what to do
	// with an item already there (skip, replace, copy).
	To, TargetMailbox, Into, Collisions string
	// AsOf restores the items as they were then (a date): each item's
	// newest version stored by then.
	AsOf string
}

// RestoreStatus is a restore's progress and, once it ended, its outcome.
type RestoreStatus struct {
	ID, Storage, What, To string
	Running               bool
	Started, Ended        time.Time
	// Total and Done count the items the restore goes through.
	Total, Done int
	Bytes       int64
	// Run is the restore's run in the log (its report: mailvault report
	// RUN); State its outcome (finished, finished with warnings, ...).
	Run, State                                 string
	Created, Replaced, Skipped, Copied, Failed int
	Failures                                   []string
	Error                                      string
}

// Percent is how far the restore has got.
func (s RestoreStatus) Percent() int {
	if s.Total == 0 {
		return 0
	}
	return 100 * s.Done / s.Total
}

// restoreForm is what the browse and item pages need to offer a restore.
type restoreForm struct {
	Connections []string
	Hidden      url.Values // the selection, carried as hidden fields
	What        string
}

func (s *Server) restoreForm(ctx context.Context, hidden url.Values, what string) *restoreForm {
	if s.rs == nil {
		return nil
	}
	conns, err := s.rs.Connections(ctx)
	if err != nil || len(conns) == 0 {
		return nil
	}
	return &restoreForm{Connections: conns, Hidden: hidden, What: what}
}

func (s *Server) startRestore(w http.ResponseWriter, r *http.Request) {
	storage := r.PathValue("storage")
	f := func(k string) string { return strings.TrimSpace(r.FormValue(k)) }
	req := RestoreRequest{
		Query: queryOf(r),
		To:    f("to"), TargetMailbox: f("target_mailbox"), Into: strings.Trim(f("into"), "/"), Collisions: f("collisions"), AsOf: f("as_of"),
	}
	if id := f("item"); id != "" {
		req.Items = []string{id}
	}
	if req.Items == nil && req.Query == (Query{}) {
		http.Error(w, "choose what to restore: a mailbox, a folder, a search or an item", http.StatusBadRequest)
		return
	}
	id, err := s.rs.StartRestore(r.Context(), storage, req)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrNoItem) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	http.Redirect(w, r, "/restores/"+url.PathEscape(id), http.StatusSeeOther)
}

func (s *Server) restoreStatus(w http.ResponseWriter, r *http.Request) {
	st, ok := s.rs.RestoreStatus(r.PathValue("id"))
	if !ok {
		http.Error(w, "no restore "+r.PathValue("id")+" was started from this console since the daemon started (mailvault runs lists them all)", http.StatusNotFound)
		return
	}
	data := map[string]any{"S": st, "Page": "restore"}
	if st.Running {
		data["Refresh"] = 2 // seconds: the page follows the restore
	}
	s.render(w, r, "restore.html", data)
}
