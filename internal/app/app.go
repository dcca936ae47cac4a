// Package app is mailvault's application layer: the commands and queries
// of the product's configuration and job control, with typed inputs and
// typed errors. The command line, the daemon's local API and the web
// dashboard are ports over it, so a rule holds at every entry point and is
// tested once, here.
//
// The rules themselves (names unique, references resolvable, nothing in use
// removed, a busy job left alone) are the domain's Configuration aggregate;
// this package loads the aggregate from the log, asks it, and records what
// it allows.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/jobspec"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// The refusals a caller matches with errors.Is. They are the domain's
// sentinels, named here too so that a port needs one import.
var (
	ErrNotFound = domain.ErrNotFound
	ErrExists   = domain.ErrExists
	ErrInUse    = domain.ErrInUse
	ErrRunning  = domain.ErrRunning
	ErrInvalid  = domain.ErrInvalid
	// ErrNoDaemon: job start and stop act on the daemon, and none holds
	// this data directory.
	ErrNoDaemon = errors.New("no mailvault daemon runs on this data directory")
)

// Log is the data directory's event log: the configuration lives in it as
// a history of changes, backups and restores run on it as the pipeline's
// transport, and the read side (runs, reports, quarantine) is projected
// from it.
type Log interface {
	projections.Scanner
	projections.Appender
	projections.ProjectionStore
	pipeline.Dedup
	// Observe calls fn with every batch of records as it is committed.
	Observe(fn func([]eventlog.Record)) (stop func())
	// Transport is the log as the pipeline's publisher and subscribers.
	Transport() (message.Publisher, func(group string, maxInFlight int) message.Subscriber)
}

// Secrets keeps connection and storage secrets encrypted beside the log;
// the log only ever holds their names.
type Secrets interface {
	Put(name string, s credential.Secret) error
	Get(name string) (credential.Secret, error)
	Delete(name string) error
}

// Storages creates a storage in a directory, or adopts the one already
// there.
type Storages interface {
	Provision(dir string, password []byte, opts StorageOptions) (encrypted bool, recoveryKey string, err error)
}

// JobControl is the daemon's side of job control.
type JobControl interface {
	// Busy says the job has a cycle running or is active (will run).
	Busy(name string) bool
	Start(name string)
	Stop(name string)
	// Status is the job as the daemon sees it now.
	Status(name string) JobStatus
}

// Service is the application. Jobs is nil in a process that is not the
// daemon: job start and stop then return ErrNoDaemon, and job lists say
// the daemon is not running.
type Service struct {
	Log      Log
	Secrets  Secrets
	Storages Storages
	Jobs     JobControl
	// Vaults are the storages open in this process (Badger allows one
	// opener per directory, so a process has one pool).
	Vaults *vault.Pool
	// Running are the backup runs this process executes now (one set per
	// process, like Vaults; nil: none is known).
	Running *RunningRuns
	// Connector opens servers from connections.
	Connector Connector
	// DefaultStorage is the storage of a backup that names none: created
	// unencrypted when absent.
	DefaultStorage string
	// Reporter hears of every backup run that ended (nil: nobody).
	Reporter RunEnded
	// AppShare, when set, says how many runs share the tenant-wide
	// (per-app) limits at once (a cluster's live workers' mailbox slots):
	// a job's run takes its share of them.
	AppShare func(context.Context) int
	// Logger is the operations' diagnostic log (never secrets or content).
	Logger zerolog.Logger
	Now    func() time.Time
	// Actor is recorded with every change (who made it).
	Actor string
}

// ConnectionSpec is a server connection as recorded in the log; its secret
// is in the secret store, never here.
type ConnectionSpec struct {
	Type        string `json:"type"` // graph | ews
	TenantID    string `json:"tenant_id,omitempty"`
	ClientID    string `json:"client_id,omitempty"`
	GraphURL    string `json:"graph_url,omitempty"`
	BetaURL     string `json:"beta_url,omitempty"`
	TokenURL    string `json:"token_url,omitempty"`
	EWSURL      string `json:"ews_url,omitempty"`
	Username    string `json:"username,omitempty"`
	Auth        string `json:"auth,omitempty"`
	Impersonate bool   `json:"impersonate,omitempty"`
	CACert      string `json:"ca_cert,omitempty"`
	// How the server is read: the same settings whether a connection is
	// named (jobs, restore, connection test) or given as backup flags.
	// Zero values are the source's defaults.
	//
	// Content is the content mode: graph auto|export|batch|get or
	// KIND=MODE,...; ews export|mime.
	Content string `json:"content,omitempty"`
	// PageSize is Graph's delta page size (at most 500).
	PageSize int `json:"page_size,omitempty"`
	// Batch is items per EWS ExportItems or GetItem request.
	Batch int `json:"batch,omitempty"`
	// MaxConcurrency is the account's EWSMaxConcurrency: EWS requests in
	// flight for the whole account, across mailboxes.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// Identity is the source identity of the connection's server: what the
// resume state of a backup from it is keyed by.
func (c ConnectionSpec) Identity() string {
	if c.Type == "ews" {
		return domain.SourceIdentity("ews", c.EWSURL)
	}
	return domain.SourceIdentity(c.Type, c.TenantID)
}

// Validate checks that the connection names a server it can reach.
func (c ConnectionSpec) Validate(name string) error {
	switch c.Type {
	case "graph":
		if c.TenantID == "" || c.ClientID == "" {
			return invalid("connection", name, "a graph connection needs --tenant-id, --client-id and --client-secret-file (or --client-secret-env)")
		}
	case "ews":
		if c.EWSURL == "" {
			return invalid("connection", name, "an ews connection needs --ews-url, --username and --password-file (or --password-env)")
		}
	default:
		return invalid("connection", name, fmt.Sprintf("--type %q: use graph or ews", c.Type))
	}
	// EWS takes at most 1,000 items per request (its default
	// EWSMaxBatchSize), and an account's concurrency is a few dozen.
	if c.PageSize < 0 || c.PageSize > 500 || c.Batch < 0 || c.Batch > 1000 || c.MaxConcurrency < 0 || c.MaxConcurrency > 1024 {
		return invalid("connection", name, "--page-size must be 1 to 500, --ews-batch 1 to 1000 and --ews-max-concurrency 1 to 1024")
	}
	return nil
}

// StorageSpec is a named storage as recorded in the log.
type StorageSpec struct {
	Path      string `json:"path"`
	Encrypted bool   `json:"encrypted,omitempty"`
}

// StorageOptions are the settings of a storage being created.
type StorageOptions struct {
	NoCompression bool
	Retention     domain.Retention
	// Remote puts the storage in object storage (its directory keeps the
	// index); a storage already there is attached, not created.
	Remote *vault.RemoteConfig
}

// StorageSecretName is where a named storage's password is kept.
func StorageSecretName(name string) string { return "storage:" + name }

func invalid(kind, name, why string) error {
	return &domain.ConfigError{Kind: kind, Name: name, Err: domain.ErrInvalid, Msg: why}
}

// state is the configuration as recorded, and the aggregate that decides
// what may change.
type state struct {
	raw *projections.Config
	agg domain.Configuration
}

func (s *Service) load() (state, error) {
	c, err := projections.LoadConfig(s.Log)
	if err != nil {
		return state{}, fmt.Errorf("read the configuration: %w", err)
	}
	agg := domain.Configuration{Connections: map[string]bool{}, Storages: map[string]bool{}, Jobs: map[string]domain.JobRefs{}}
	for n := range c.Connections {
		agg.Connections[n] = true
	}
	for n := range c.Storages {
		agg.Storages[n] = true
	}
	for n, raw := range c.Jobs {
		var j jobspec.Spec
		_ = json.Unmarshal(raw, &j) // a definition that no longer reads refers to nothing
		agg.Jobs[n] = domain.JobRefs{Connection: j.Connection, Storage: j.Storage}
	}
	return state{raw: c, agg: agg}, nil
}

// record appends one change to the configuration's history.
func (s *Service) record(ctx context.Context, typ, name string, def any) error {
	var raw json.RawMessage
	if def != nil {
		b, err := json.Marshal(def)
		if err != nil {
			return err
		}
		raw = b
	}
	now := s.now().UTC()
	ch := domain.ConfigChange{Type: typ, ID: domain.DeriveID("config", typ, name, now.Format(time.RFC3339Nano)), Time: now, Actor: s.Actor, Name: name, Definition: raw}
	if err := projections.RecordChange(ctx, s.Log, ch); err != nil {
		return fmt.Errorf("record the change: %w", err)
	}
	return nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Configuration is the recorded configuration, for the commands that read
// definitions (alerts, restore's choice of a job's storage).
func (s *Service) Configuration() (*projections.Config, domain.Configuration, error) {
	st, err := s.load()
	return st.raw, st.agg, err
}
