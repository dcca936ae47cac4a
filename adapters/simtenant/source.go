package simtenant

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// ListPageSize is how many ids one listing request returns, as EWS FindItem's
// 1,000-entry cap.
const ListPageSize = 1000

// Clock is the time the simulator enforces its windows with.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Source serves a tenant in process and enforces its limits itself: it does
// not trust the client to stay inside them.
type Source struct {
	t     *Tenant
	clock Clock

	mu        sync.Mutex
	mailboxes map[string]*simMailbox
	order     []string
}

type simMailbox struct {
	address  string
	inFlight int
	window   *domain.SlidingWindow
	folders  map[string]*simFolder
	order    []string
	stats    Stats
}

type simFolder struct {
	f     *Folder
	id    string
	dirty map[int]bool
	// deleted are positions a user deleted since the tenant was loaded:
	// no longer listed, and gone when fetched.
	deleted   map[int]bool
	winStart  time.Time
	delivered int
	requests  int
}

// Stats are the simulator's own counts for one mailbox.
type Stats struct {
	Requests  int
	Throttled int
	Items     int
}

// NewSource serves t. A nil clock means the wall clock.
func NewSource(t *Tenant, clock Clock) *Source {
	if clock == nil {
		clock = wallClock{}
	}
	s := &Source{t: t, clock: clock, mailboxes: map[string]*simMailbox{}}
	for i := range t.Mailboxes {
		m := &t.Mailboxes[i]
		sm := &simMailbox{address: m.Address, folders: map[string]*simFolder{},
			window: domain.NewSlidingWindow(t.Limits.Requests, time.Duration(t.Limits.Window))}
		for j := range m.Folders {
			f := &m.Folders[j]
			sf := &simFolder{f: f, id: FolderID(m.Address, f.Path), dirty: map[int]bool{}, deleted: map[int]bool{}}
			for _, p := range f.Dirty {
				sf.dirty[p] = true
			}
			sm.folders[sf.id] = sf
			sm.order = append(sm.order, sf.id)
		}
		key := strings.ToLower(m.Address)
		s.mailboxes[key] = sm
		s.order = append(s.order, key)
	}
	return s
}

// Delete deletes the first n live items of a folder, as a user would
// between a listing and a fetch: they are no longer listed, and fetching
// one fails gone.
func (s *Source) Delete(mailbox, path string, n int) error {
	m, err := s.mailbox(mailbox)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range m.order {
		f := m.folders[id]
		if !strings.EqualFold(f.f.Path, path) {
			continue
		}
		for pos := 1; pos <= f.f.Items && n > 0; pos++ {
			if !f.deleted[pos] {
				f.deleted[pos] = true
				n--
			}
		}
		return nil
	}
	return fmt.Errorf("no folder %q in %s", path, mailbox)
}

// Stats returns the simulator's counts per mailbox address.
func (s *Source) Stats() map[string]Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Stats{}
	for _, m := range s.mailboxes {
		out[m.address] = m.stats
	}
	return out
}

// Mailboxes lists the tenant's mailboxes.
func (s *Source) Mailboxes(ctx context.Context) ([]string, error) {
	out := make([]string, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.mailboxes[k].address)
	}
	return out, nil
}

// Folders lists a mailbox's folders, parents before children.
func (s *Source) Folders(ctx context.Context, mailbox string) ([]domain.Folder, error) {
	m, err := s.mailbox(mailbox)
	if err != nil {
		return nil, err
	}
	out := make([]domain.Folder, 0, len(m.order))
	for _, id := range m.order {
		f := m.folders[id]
		out = append(out, domain.Folder{ID: id, Path: f.f.Path, Kind: f.f.Kind})
	}
	return out, nil
}

func (s *Source) mailbox(addr string) (*simMailbox, error) {
	m, ok := s.mailboxes[strings.ToLower(addr)]
	if !ok {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "ErrorNonExistentMailbox", Message: fmt.Sprintf("mailbox %s does not exist", addr)}
	}
	return m, nil
}

// admit applies the per-mailbox limits to a new request and returns a release
// function, or the throttling failure the server answers with.
func (s *Source) admit(m *simMailbox) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	m.stats.Requests++
	if m.inFlight >= s.t.Limits.Concurrency {
		m.stats.Throttled++
		return nil, &domain.Failure{Class: domain.ClassThrottled, Code: "ApplicationThrottled",
			Message: "Application is over its MailboxConcurrency limit.", RetryAfter: time.Second}
	}
	if wait := m.window.Wait(now); wait > 0 {
		m.stats.Throttled++
		return nil, &domain.Failure{Class: domain.ClassThrottled, Code: "TooManyRequests",
			Message: "Application is over its request limit.", RetryAfter: wait}
	}
	m.window.Add(now)
	m.inFlight++
	return func() {
		s.mu.Lock()
		m.inFlight--
		s.mu.Unlock()
	}, nil
}

func (s *Source) latency(ctx context.Context) error {
	d := time.Duration(s.t.Latency)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *simMailbox) folder(id string) (*simFolder, error) {
	f, ok := m.folders[id]
	if !ok {
		return nil, &domain.Failure{Class: domain.ClassFatal, Code: "ErrorFolderNotFound", Message: fmt.Sprintf("folder %s does not exist", id)}
	}
	return f, nil
}

// List returns one page of a folder's item ids. Page tokens are offsets.
func (s *Source) List(ctx context.Context, mailbox, folderID, token string) (domain.Page, error) {
	m, err := s.mailbox(mailbox)
	if err != nil {
		return domain.Page{}, err
	}
	f, err := m.folder(folderID)
	if err != nil {
		return domain.Page{}, err
	}
	release, err := s.admit(m)
	if err != nil {
		return domain.Page{}, err
	}
	defer release()
	if err := s.latency(ctx); err != nil {
		return domain.Page{}, err
	}
	offset := 0
	if token != "" {
		offset, err = strconv.Atoi(strings.TrimPrefix(token, "offset:"))
		if err != nil || offset < 0 || offset > f.f.Items {
			return domain.Page{}, &domain.Failure{Class: domain.ClassFatal, Code: "ErrorInvalidSyncStateData", Message: "page token is not valid"}
		}
	}
	end := min(offset+ListPageSize, f.f.Items)
	page := domain.Page{Items: make([]domain.ItemRef, 0, end-offset)}
	s.mu.Lock()
	deleted := maps.Clone(f.deleted)
	s.mu.Unlock()
	for pos := offset + 1; pos <= end; pos++ {
		if deleted[pos] {
			continue
		}
		page.Items = append(page.Items, domain.ItemRef{
			Position:  pos,
			ID:        ItemID(s.t.Seed, m.address, f.f.Path, pos),
			ChangeKey: ChangeKey(s.t.Seed, m.address, f.f.Path, pos),
			Size:      ItemSize(s.t.Seed, m.address, f.f, pos),
		})
	}
	if end < f.f.Items {
		page.Next = "offset:" + strconv.Itoa(end)
	}
	return page, nil
}

// position recovers an item's position from its id: simulated ids carry their
// position, so no per-folder index is held in memory however big the folder.
func (f *simFolder) position(seed int64, mailbox, id string) (int, bool) {
	if len(id) != len("AAMkAI")+16+8 {
		return 0, false
	}
	p, err := strconv.ParseUint(id[len(id)-8:], 16, 32)
	if err != nil || p < 1 || int(p) > f.f.Items {
		return 0, false
	}
	return int(p), ItemID(seed, mailbox, f.f.Path, int(p)) == id
}

// Fetch serves a batch of items all or nothing, as Exchange does: one dirty
// item fails the whole request with ErrorCorruptData.
func (s *Source) Fetch(ctx context.Context, mailbox, folderID string, items []domain.ItemRef, deliver func(domain.Item) error) error {
	m, err := s.mailbox(mailbox)
	if err != nil {
		return err
	}
	f, err := m.folder(folderID)
	if err != nil {
		return err
	}
	release, err := s.admit(m)
	if err != nil {
		return err
	}
	defer release()
	if err := s.latency(ctx); err != nil {
		return err
	}

	s.mu.Lock()
	now := s.clock.Now()
	f.requests++
	if tr := f.f.Transient; tr != nil && f.requests%tr.Every == 0 {
		s.mu.Unlock()
		return &domain.Failure{Class: domain.ClassTransient, Code: "ServiceUnavailable", Message: "The service is temporarily unavailable."}
	}
	if th := f.f.Throttle; th != nil {
		if f.winStart.IsZero() || !now.Before(f.winStart.Add(time.Duration(th.Window))) {
			f.winStart, f.delivered = now, 0
		}
		if f.delivered >= th.Items {
			m.stats.Throttled++
			wait := f.winStart.Add(time.Duration(th.Window)).Sub(now)
			s.mu.Unlock()
			return &domain.Failure{Class: domain.ClassThrottled, Code: "TooManyRequests",
				Message: "The mailbox is throttled on this folder.", RetryAfter: wait}
		}
	}
	positions := make([]int, len(items))
	for i, it := range items {
		p, ok := f.position(s.t.Seed, m.address, it.ID)
		if !ok {
			s.mu.Unlock()
			return &domain.Failure{Class: domain.ClassFatal, Code: "ErrorInvalidIdMalformed", Message: fmt.Sprintf("item id %q is not in the folder", it.ID)}
		}
		positions[i] = p
	}
	for _, p := range positions {
		if f.deleted[p] {
			s.mu.Unlock()
			return &domain.Failure{Class: domain.ClassGone, Code: "ErrorItemNotFound", Message: "The specified object was not found in the store."}
		}
	}
	for _, p := range positions {
		if f.dirty[p] {
			s.mu.Unlock()
			return &domain.Failure{Class: domain.ClassDirty, Code: "ErrorCorruptData", Message: "Data is corrupt., Invalid global object ID"}
		}
	}
	f.delivered += len(items)
	m.stats.Items += len(items)
	s.mu.Unlock()

	for i, it := range items {
		content := Content(s.t.Seed, m.address, f.f, positions[i])
		ref := it
		ref.Size = int64(len(content))
		if err := deliver(domain.Item{Ref: ref, Content: content}); err != nil {
			return err
		}
	}
	return nil
}
