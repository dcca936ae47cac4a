package simtenant

import (
	"encoding/json"
	"net/http"
)

// MutateRequest changes one folder as a user would (see Store.Mutate); an
// empty Mailbox names the public folders.
type MutateRequest struct {
	Mailbox string `json:"mailbox"`
	Folder  string `json:"folder"`
	Add     int    `json:"add"`
	Modify  int    `json:"modify"`
	Delete  int    `json:"delete"`
	// Create makes the folder (a mail folder) first if it does not exist.
	Create bool `json:"create,omitempty"`
	// Repair makes the dirty items at these positions readable without
	// changing them, as a mailbox repair (New-MailboxRepairRequest) does:
	// change tracking does not report them, so only a retry finds them.
	Repair []int `json:"repair,omitempty"`
}

// Control is the wire simulators' test API, under /_sim/: GET stats, POST
// mutate (a MutateRequest), POST the expiry of every listing state handed
// out (ExpirePath). Requests carry the simulator's secret in X-Sim-Secret.
type Control struct {
	Secret     string
	Stats      func() any
	Mutate     func(MutateRequest) error
	ExpirePath string
	Expire     func()
}

// ServeHTTP implements http.Handler.
func (c Control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Sim-Secret") != c.Secret {
		http.Error(w, "control requests need X-Sim-Secret", http.StatusForbidden)
		return
	}
	switch r.URL.Path {
	case "/_sim/stats":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Stats())
	case c.ExpirePath:
		c.Expire()
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/mutate":
		var req MutateRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad mutate request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.Mutate(req); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}
