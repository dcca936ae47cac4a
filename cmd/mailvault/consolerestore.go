package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/pipeline"
)

// consoleRestores are the restores started from the console since the
// daemon started, by id: each runs in the background under the daemon's
// context (a daemon that stops leaves it not finished in the log, and the
// same restore again continues it).
type consoleRestores struct {
	ctx context.Context
	mu  sync.Mutex
	all map[string]*consoleRestore
	// running maps a restore's parameters to its id: the same form sent
	// twice follows the restore already going.
	running map[string]string
}

type consoleRestore struct {
	mu sync.Mutex
	st dashboard.RestoreStatus
}

func newConsoleRestores(ctx context.Context) *consoleRestores {
	return &consoleRestores{ctx: ctx, all: map[string]*consoleRestore{}, running: map[string]string{}}
}

// Start, Add and Stop make a console restore the app's Progress.
func (c *consoleRestore) Start(total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Total = total
}

func (c *consoleRestore) Add(bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Done++
	c.st.Bytes += bytes
}

func (c *consoleRestore) Stop() {}

func (c *consoleRestore) status() dashboard.RestoreStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Failures = append([]string(nil), c.st.Failures...)
	return st
}

// finish records how the restore ended.
func (c *consoleRestore) finish(res app.Restored, err error, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Running, c.st.Ended = false, now
	if rep := res.Report; rep != nil {
		c.st.Run, c.st.State = rep.RunID, string(rep.State)
		c.st.Created, c.st.Replaced, c.st.Skipped, c.st.Copied, c.st.Failed = rep.Created, rep.Replaced, rep.Skipped, rep.Copied, rep.Failed
		for _, f := range rep.Failures {
			c.st.Failures = append(c.st.Failures, fmt.Sprintf("%s / %s, item %s: %s %s", f.Mailbox, f.Folder, f.ItemID, f.Code, f.Message))
		}
	}
	c.st.Failures = append(c.st.Failures, res.Damaged...)
	if err != nil {
		c.st.Error = err.Error()
		var nf *app.NotFinished
		if errors.As(err, &nf) {
			c.st.Run = nf.Run
			c.st.Error += " (start the same restore again to continue it)"
		}
		if c.st.State == "" || c.st.State == string(domain.StateRunning) {
			c.st.State = string(domain.StateNotFinished)
		}
	}
}

func (b dashboardBackend) Connections(ctx context.Context) ([]string, error) {
	conns, err := b.svc.Connections(ctx)
	names := make([]string, 0, len(conns))
	for _, c := range conns {
		names = append(names, c.Name)
	}
	return names, err
}

// StartRestore checks the restore (the storage is one added by name, the
// connection exists, the selection reads) and starts it in the background.
func (b dashboardBackend) StartRestore(ctx context.Context, storage string, req dashboard.RestoreRequest) (string, error) {
	ref, err := b.storageRef(ctx, storage)
	if err != nil {
		return "", err
	}
	if _, err := b.connection(ctx, req.To); err != nil {
		return "", fmt.Errorf("restore to: %w", err)
	}
	if req.Collisions == "" {
		req.Collisions = pipeline.CollisionSkip
	}
	switch req.Collisions {
	case pipeline.CollisionSkip, pipeline.CollisionReplace, pipeline.CollisionCopy:
	default:
		return "", fmt.Errorf("collisions %q: choose skip, replace or copy", req.Collisions)
	}
	sel := selectionOf(req.Query)
	sel.Items, sel.AsOf = req.Items, req.AsOf
	if err := sel.Check(); err != nil {
		return "", err
	}
	in := app.RestoreRun{StorageRef: ref, Selection: sel, To: req.To, TargetMailbox: req.TargetMailbox, Collisions: req.Collisions, Into: req.Into}
	key := strings.Join([]string{storage, req.To, sel.Mailbox, sel.Folder, sel.Subject, sel.From, sel.Recipient, sel.After, sel.Before, strings.Join(sel.Items, ","),
		req.TargetMailbox, req.Into, req.Collisions, req.AsOf}, "\x00")
	rs := b.restores
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if id, ok := rs.running[key]; ok {
		return id, nil
	}
	id := app.NewRunID(time.Now())
	c := &consoleRestore{st: dashboard.RestoreStatus{ID: id, Storage: storage, To: req.To, What: restoreWhat(req), Running: true, Started: time.Now()}}
	rs.all[id], rs.running[key] = c, id
	go func() {
		res, err := b.svc.Restore(rs.ctx, in, c)
		c.finish(res, err, time.Now())
		rs.mu.Lock()
		delete(rs.running, key)
		rs.mu.Unlock()
	}()
	return id, nil
}

// restoreWhat says in words what a restore restores.
func restoreWhat(req dashboard.RestoreRequest) string {
	q := req.Query
	var parts []string
	switch {
	case len(req.Items) == 1:
		parts = append(parts, "item "+req.Items[0])
	case q.Folder != "":
		parts = append(parts, q.Mailbox+" / "+q.Folder)
	case q.Mailbox != "":
		parts = append(parts, q.Mailbox)
	default:
		parts = append(parts, "every mailbox")
	}
	for _, f := range []struct{ name, v string }{{"subject", q.Subject}, {"sender", q.From}, {"recipient", q.Recipient}, {"from", q.After}, {"before", q.Before}} {
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f.name, f.v))
		}
	}
	if req.TargetMailbox != "" {
		parts = append(parts, "into "+req.TargetMailbox)
	}
	if req.Into != "" {
		parts = append(parts, "under "+req.Into)
	}
	if req.AsOf != "" {
		parts = append(parts, "as it was on "+req.AsOf)
	}
	return strings.Join(parts, ", ")
}

func (b dashboardBackend) RestoreStatus(id string) (dashboard.RestoreStatus, bool) {
	b.restores.mu.Lock()
	c, ok := b.restores.all[id]
	b.restores.mu.Unlock()
	if !ok {
		return dashboard.RestoreStatus{}, false
	}
	return c.status(), true
}
