package domain

import (
	"encoding/json"
	"time"
)

// Config change types: definitions of jobs, connections and storages are
// events too, so an auditor sees who changed what and when.
const (
	JobCreated        = "job_created"
	JobEdited         = "job_edited"
	JobDeleted        = "job_deleted"
	JobStarted        = "job_started"
	JobStopped        = "job_stopped"
	ConnectionAdded   = "connection_added"
	ConnectionRemoved = "connection_removed"
	ConnectionEdited  = "connection_edited"
	StorageAdded      = "storage_added"
	StorageRemoved    = "storage_removed"
	AlertsSet         = "alerts_set"
	AlertsRemoved     = "alerts_removed"
)

// ConfigChange is one change to the configuration. Definition holds the
// object as its owner encodes it, never a secret (connection secrets are
// stored encrypted beside the log).
type ConfigChange struct {
	Type       string          `json:"type"`
	Schema     int             `json:"schema"`
	ID         string          `json:"id"`
	Time       time.Time       `json:"time"`
	Actor      string          `json:"actor"`
	Name       string          `json:"name"`
	Definition json.RawMessage `json:"definition,omitempty"`
}
