package app_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/pipeline"
)

const tenantYAML = `seed: 5
mailboxes:
  - address: ann@contoso.test
    folders:
      - path: Inbox
        items: 30
      - path: Inbox/Projects
        items: 10
  - address: bob@contoso.test
    folders:
      - path: Inbox
        items: 12
        dirty: [4]
`

// target is a restore target in memory: what was created where.
type target struct {
	mu      sync.Mutex
	created map[string]int // mailbox/folder -> items
}

func (t *target) EnsureFolder(_ context.Context, mailbox, path, _ string) (string, bool, error) {
	return mailbox + "/" + path, false, nil
}
func (t *target) Lookup(context.Context, string, string, pipeline.RestoreItem) (string, bool, error) {
	return "", false, nil
}
func (t *target) Create(_ context.Context, _, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.created[folderID]++
	return pipeline.CreateResult{ID: it.VersionID}, nil
}
func (t *target) Delete(context.Context, string, string, string, string) error { return nil }

// server is a connection opened on the in-process tenant.
type server struct {
	src    pipeline.Source
	target *target
	closed *int
}

func (s server) Close() { *s.closed++ }

func (s server) Source() pipeline.Source        { return s.src }
func (s server) Target() pipeline.RestoreTarget { return s.target }
func (s server) Limit(*pipeline.Config)         {}
func (s server) Probe(context.Context, string, bool) ([]app.Check, error) {
	return []app.Check{{What: "open the mailbox"}}, nil
}

// connector opens every connection on the same tenant.
type connector struct {
	tenant *simtenant.Tenant
	target *target
	opened []app.Scope
	closed int
}

func (c *connector) Open(_ context.Context, _ string, _ app.ConnectionSpec, _ credential.Secret, scope app.Scope) (app.Server, error) {
	c.opened = append(c.opened, scope)
	return server{src: simtenant.NewSource(c.tenant, nil), target: c.target, closed: &c.closed}, nil
}

// operationsService is the application over a log and storages on disk,
// with its servers on the in-process tenant.
func operationsService(t *testing.T) (*app.Service, *connector, string) {
	t.Helper()
	s, _, _ := newService(t)
	tn, err := simtenant.Parse([]byte(tenantYAML))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conn := &connector{tenant: tn, target: &target{created: map[string]int{}}}
	s.Vaults, s.Connector, s.DefaultStorage = &vault.Pool{}, conn, filepath.Join(dir, "storage")
	return s, conn, dir
}

func fastConfig() pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.QuarantineRetry = 0
	return cfg
}

// A backup, then everything an administrator does with what it stored:
// browse, verify, export, restore, prune; each through the application,
// with typed results the ports render.
func TestOperationsOverOneStorage(t *testing.T) {
	ctx := context.Background()
	s, conn, dir := operationsService(t)
	def := app.StorageRef{Storage: s.DefaultStorage}

	rep, err := s.Backup(ctx, app.BackupRun{Source: simtenant.NewSource(conn.tenant, nil), SourceName: "sim:test", Config: fastConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.State != domain.StateWarnings || rep.ItemsStored != 51 || rep.ItemsQuarantined != 1 {
		t.Fatalf("backup: state %s, stored %d, quarantined %d", rep.State, rep.ItemsStored, rep.ItemsQuarantined)
	}
	again, err := s.Backup(ctx, app.BackupRun{Source: simtenant.NewSource(conn.tenant, nil), SourceName: "sim:test", Config: fastConfig()})
	if err != nil || again.ItemsStored != 0 {
		t.Fatalf("a second backup stores nothing new: %v, stored %d", err, again.ItemsStored)
	}

	groups, err := s.Groups(ctx, def, app.Selection{})
	if err != nil || len(groups) != 2 || groups[0] != (app.Group{Name: "ann@contoso.test", Items: 40, Bytes: groups[0].Bytes}) || groups[1].Items != 11 {
		t.Fatalf("mailboxes: %+v, %v", groups, err)
	}
	folders, err := s.Groups(ctx, def, app.Selection{Mailbox: "ann@contoso.test"})
	if err != nil || len(folders) != 2 || folders[1].Name != "ann@contoso.test/Inbox/Projects" || folders[1].Items != 10 {
		t.Fatalf("folders: %+v, %v", folders, err)
	}
	n := 0
	if err := s.Browse(ctx, def, app.Selection{Mailbox: "ann@contoso.test", Folder: "/Inbox/Projects/"}, func(vault.Version) error { n++; return nil }); err != nil || n != 10 {
		t.Fatalf("browse a folder: %d items, %v", n, err)
	}
	if err := s.Browse(ctx, def, app.Selection{After: "yesterday"}, func(vault.Version) error { return nil }); !errors.Is(err, app.ErrInvalid) {
		t.Fatalf("a date that does not read is the caller's mistake: %v", err)
	}

	ver, err := s.Verify(ctx, def, true, nil)
	if err != nil || !ver.Healthy() || ver.Versions != 51 || len(ver.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", ver, err)
	}

	out := filepath.Join(dir, "export")
	ex, err := s.Export(ctx, app.ExportRun{StorageRef: def, Selection: app.Selection{Mailbox: "bob@contoso.test"}, Format: "eml", Out: out}, &progress{})
	if err != nil || ex.Messages != 11 {
		t.Fatalf("export: %+v, %v", ex, err)
	}

	if err := s.AddConnection(ctx, "tenant", graphConn(), credential.New("secret")); err != nil {
		t.Fatal(err)
	}
	p := &progress{}
	res, err := s.Restore(ctx, app.RestoreRun{StorageRef: def, Selection: app.Selection{Mailbox: "ann@contoso.test"}, To: "tenant", Collisions: pipeline.CollisionSkip}, p)
	if err != nil || res.Report.State != domain.StateFinished || res.Report.Created != 40 || len(res.Damaged) != 0 {
		t.Fatalf("restore: %+v, %v", res.Report, err)
	}
	if conn.closed != len(conn.opened) {
		t.Fatalf("the restore opened %d servers and closed %d", len(conn.opened), conn.closed)
	}
	if conn.target.created["ann@contoso.test/Inbox"] != 30 || conn.target.created["ann@contoso.test/Inbox/Projects"] != 10 || p.total != 40 || p.done != 40 || !p.stopped {
		t.Fatalf("restored %v, progress %+v", conn.target.created, p)
	}

	pruned, err := s.Prune(ctx, def, true, nil)
	if err != nil || pruned.Versions != 0 {
		t.Fatalf("prune with keep-everything: %+v, %v", pruned, err)
	}
	policy, err := s.StorageRetention(ctx, def, app.RetentionChange{KeepVersions: ptr(2)})
	if err != nil || policy.KeepVersions != 2 {
		t.Fatalf("retention: %+v, %v", policy, err)
	}
	st, err := s.StorageStats(ctx, def)
	if err != nil || st.Versions != 51 || st.Encrypted || st.Retention.KeepVersions != 2 {
		t.Fatalf("stats: %+v, %v", st, err)
	}

	runs, restores, err := s.Runs(ctx)
	if err != nil || len(runs) != 2 || len(restores) != 1 {
		t.Fatalf("runs %d, restores %d, %v", len(runs), len(restores), err)
	}
	last, err := s.Report(ctx, "last")
	if err != nil || last.RunID != again.RunID {
		t.Fatalf("report last: %v, %v", last, err)
	}
	q, err := s.Quarantine(ctx)
	if err != nil || len(q) != 1 || q[0].Mailbox != "bob@contoso.test" {
		t.Fatalf("quarantine: %+v, %v", q, err)
	}
}

// A storage that does not exist by that name, a storage whose file was
// damaged, a backup that is interrupted: each is a typed outcome.
func TestOperationsRefuseAndReport(t *testing.T) {
	ctx := context.Background()
	s, conn, _ := operationsService(t)
	var ce *domain.ConfigError
	if _, err := s.Verify(ctx, app.StorageRef{Storage: "nas"}, false, nil); !errors.Is(err, app.ErrNotFound) || !errors.As(err, &ce) || !strings.Contains(err.Error(), `no storage named "nas"`) {
		t.Fatalf("an unknown storage name: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	rep, err := s.Backup(cctx, app.BackupRun{Source: simtenant.NewSource(conn.tenant, nil), SourceName: "sim:test", Config: fastConfig()})
	var nf *app.NotFinished
	if !errors.As(err, &nf) || !nf.Interrupted() || rep == nil || !strings.Contains(err.Error(), "the next run continues where it stopped") {
		t.Fatalf("an interrupted backup: %v", err)
	}
	if _, err := s.Backup(ctx, app.BackupRun{Source: simtenant.NewSource(conn.tenant, nil), SourceName: "sim:test", Config: fastConfig()}); err != nil {
		t.Fatal(err)
	}

	// Damage the packs: verify names the damage, repair keeps the rest and
	// names what it lost, and both are recorded in the log. Every pack is
	// hit (in its middle third), because a chunk two concurrent puts
	// stored twice survives the damage of one of its packs, and repair
	// then rightly loses nothing.
	packs, _ := filepath.Glob(filepath.Join(s.DefaultStorage, "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	for _, pack := range packs {
		b, err := os.ReadFile(pack)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 3; i < len(b)/3+64 && i < len(b); i++ {
			b[i] ^= 0xff
		}
		if err := os.WriteFile(pack, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	def := app.StorageRef{Storage: s.DefaultStorage}
	var heard int
	ver, err := s.Verify(ctx, def, true, func(vault.Problem) { heard++ })
	if err != nil || ver.Healthy() || heard == 0 || heard != len(ver.Problems) {
		t.Fatalf("verify a damaged storage: healthy %v, heard %d of %d, %v", ver.Healthy(), heard, len(ver.Problems), err)
	}
	var lost int
	rep2, err := s.Repair(ctx, def, false, func(vault.Version) { lost++ })
	if err != nil || rep2.RepairResult.Lost == 0 || lost != rep2.RepairResult.Lost || len(rep2.Lost) != lost {
		t.Fatalf("repair: lost %d (heard %d), %v; verify found %+v; repair %+v", rep2.RepairResult.Lost, lost, err, ver.Problems, rep2.RepairResult)
	}
	if ver, err := s.Verify(ctx, def, true, nil); err != nil || !ver.Healthy() {
		t.Fatalf("verify after repair: %+v, %v", ver.VerifyResult, err)
	}
	recorded := 0
	err = s.Log.Scan(eventlog.Topic(domain.TopicOps), 0, func(rec eventlog.Record) error {
		if rec.Metadata[eventlog.MetaType] == string(domain.VersionLost) {
			recorded++
		}
		return nil
	})
	if err != nil || recorded != lost {
		t.Fatalf("lost versions recorded: %d of %d, %v", recorded, lost, err)
	}
}

// A daemon job's cycle opens the job's connection for the job's mailboxes
// and backs up into the job's storage.
func TestRunJobCycleUsesTheJobsDefinition(t *testing.T) {
	ctx := context.Background()
	s, conn, dir := operationsService(t)
	if err := s.AddConnection(ctx, "tenant", graphConn(), credential.New("secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddStorage(ctx, app.AddStorage{Name: "nas", Path: filepath.Join(dir, "nas")}); err != nil {
		t.Fatal(err)
	}
	v, _, err := vault.Create(filepath.Join(dir, "nas"), vault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	rep, err := s.RunJobCycle(ctx, "nightly", domain.Job{Connection: "tenant", Storage: "nas", Mailboxes: []string{"ann@contoso.test"}}, "cycle-1")
	if err != nil || rep.RunID != "cycle-1" || rep.State != domain.StateWarnings || rep.ItemsStored != 51 {
		t.Fatalf("cycle: %+v, %v", rep, err)
	}
	if len(conn.opened) != 1 || strings.Join(conn.opened[0].Mailboxes, ",") != "ann@contoso.test" {
		t.Fatalf("opened for %+v", conn.opened)
	}
	// A daemon runs cycles for ever: each closes what it opened, or its
	// kept-alive connections pile up.
	if conn.closed != 1 {
		t.Fatalf("the cycle's server was closed %d times", conn.closed)
	}
	if _, err := s.TestConnection(ctx, "tenant", "", false); err != nil || conn.closed != 2 {
		t.Fatalf("connection test: closed %d, %v", conn.closed, err)
	}
	groups, err := s.Groups(ctx, app.StorageRef{Storage: "nas"}, app.Selection{})
	if err != nil || len(groups) != 2 || groups[0].Items != 40 {
		t.Fatalf("the job's storage holds %+v, %v", groups, err)
	}
	if _, err := os.Stat(s.DefaultStorage); !os.IsNotExist(err) {
		t.Fatalf("the default storage was used: %v", err)
	}
}

type progress struct {
	total, done int
	stopped     bool
}

func (p *progress) Start(total int) { p.total = total }
func (p *progress) Add(int64)       { p.done++ }
func (p *progress) Stop()           { p.stopped = true }

func ptr[T any](v T) *T { return &v }
