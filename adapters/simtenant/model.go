// Package simtenant is the simulated Exchange tenant: a YAML model of
// mailboxes, folders, dirty items and throttling, an item generator with
// realistic MIME, and an in-process source that enforces the model's limits on
// its own. The Graph and EWS simulators serve the same model over the wire.
package simtenant

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mailvault/mailvault/domain"
)

// Tenant is the parsed tenant file.
type Tenant struct {
	Seed      int64     `yaml:"seed"`
	Limits    *Limits   `yaml:"limits"`
	Latency   Duration  `yaml:"latency"`
	Mailboxes []Mailbox `yaml:"mailboxes"`
	// PublicFolders are the organisation's public folders (EWS), listed
	// like a mailbox's folders.
	PublicFolders []Folder `yaml:"public_folders"`
	// Global limits the app across all mailboxes (Graph's per-app limit);
	// nil means none.
	Global *Limits `yaml:"global"`
	// Load changes the server's capacity during a run, as Exchange's
	// resource-based throttling does under load: each step scales the
	// request limits (per mailbox and global) for a while, counted from the
	// first request the server admits.
	Load []LoadStep `yaml:"load"`
	// Faults are injected by the wire simulators (Graph, EWS).
	Faults *Faults `yaml:"faults"`
	// Graph are settings of the Graph simulator only.
	Graph *GraphOptions `yaml:"graph"`
	// EWS are settings of the EWS simulator only.
	EWS *EWSOptions `yaml:"ews"`
}

// EWSOptions configure the EWS simulator.
type EWSOptions struct {
	// MaxConcurrency is EWSMaxConcurrency: requests one account may have
	// running at once (default 27); more get ErrorExceededConnectionCount.
	MaxConcurrency int `yaml:"max_concurrency"`
	// ThrottleShape is how overload is answered: server_busy (HTTP 500,
	// ErrorServerBusy with BackOffMilliseconds; the default), http503 (IIS's
	// queue is full), or internal_error (HTTP 200, ErrorInternalServerError
	// wrapping ErrorServerBusy).
	ThrottleShape string `yaml:"throttle_shape"`
	// BackOff fixes the BackOffMilliseconds sent; default the exact time
	// until the request window has room again.
	BackOff Duration `yaml:"backoff"`
	// Budget, when set, replaces the request window with Exchange
	// Server's throttling budget (see Budget).
	Budget *Budget `yaml:"budget"`
}

// EWS throttle shapes.
const (
	ShapeServerBusy    = "server_busy"
	ShapeHTTP503       = "http503"
	ShapeInternalError = "internal_error"
)

// GraphOptions configure the Graph simulator.
type GraphOptions struct {
	// ExportItems grants MailboxItem.Export.All: without it exportItems is
	// answered 403 and clients fall back to MIME. Default true.
	ExportItems *bool `yaml:"export_items"`
	// MailboxFolders grants MailboxFolder.Read.All: without it the mailbox
	// API's folder routes (folders/delta) are answered 403 and clients walk
	// the per-kind folder lists. Default true.
	MailboxFolders *bool `yaml:"mailbox_folders"`
	// ResyncCode is the error a stale delta token gets (SyncStateNotFound,
	// ResyncRequired or SyncStateInvalid). Default SyncStateNotFound.
	ResyncCode string `yaml:"resync_code"`
	// ThrottlePush punishes a client that keeps pushing: a request to a
	// mailbox sent before the Retry-After it was given has passed is
	// refused, and lengthens that wait by this much. Default 0: such a
	// request is judged by the limits alone.
	ThrottlePush Duration `yaml:"throttle_push"`
	// StreamsAhead makes the export stream of every generated item when
	// the simulator starts, so that answering exportItems costs it no more
	// than its other routes: for benchmarks of a client's pacing that share
	// the machine's cores with the simulator. The streams are the same.
	StreamsAhead bool `yaml:"streams_ahead"`
}

// Faults make the server misbehave on purpose. Every counts requests that
// reach the server (after authentication), across mailboxes.
type Faults struct {
	// Storm: every Every-th request starts a run of Length requests answered
	// with Status (503 or 504), with a Retry-After when RetryAfter is set.
	Storm *Storm `yaml:"storm"`
	// Slow: every Every-th request is answered after Delay.
	Slow *Slow `yaml:"slow"`
	// Drop: every Every-th request has its connection closed without a reply.
	Drop *Every `yaml:"drop"`
	// Truncate: every Every-th success reply is cut off mid-body.
	Truncate *Every `yaml:"truncate"`
}

// Storm is a run of server errors.
type Storm struct {
	Every      int      `yaml:"every"`
	Length     int      `yaml:"length"`
	Status     int      `yaml:"status"`
	RetryAfter Duration `yaml:"retry_after"`
}

// Slow delays some replies.
type Slow struct {
	Every int      `yaml:"every"`
	Delay Duration `yaml:"delay"`
}

// Every is a fault that hits every Every-th request.
type Every struct {
	Every int `yaml:"every"`
}

// LoadStep scales the request limits to Capacity (0 to 1) from At after
// the first admitted request, for For.
type LoadStep struct {
	At       Duration `yaml:"at"`
	For      Duration `yaml:"for"`
	Capacity float64  `yaml:"capacity"`
}

// Capacity is the share of its limits the server grants at since after its
// first admitted request: the lowest of the load steps in force, else 1.
func (t *Tenant) Capacity(since time.Duration) float64 {
	c := 1.0
	for _, st := range t.Load {
		if since >= time.Duration(st.At) && since < time.Duration(st.At+st.For) {
			c = min(c, st.Capacity)
		}
	}
	return c
}

// Domains are the domains of the tenant's mailboxes, as Entra knows the
// tenant by them too.
func (t *Tenant) Domains() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range t.Mailboxes {
		if at := strings.LastIndexByte(m.Address, '@'); at >= 0 {
			d := strings.ToLower(m.Address[at+1:])
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// CapacityAt is Capacity as a function of the time, for a server whose
// first request was admitted at first (zero: none yet, all is granted).
func (t *Tenant) CapacityAt(first time.Time) func(time.Time) float64 {
	return func(at time.Time) float64 {
		if first.IsZero() {
			return 1
		}
		return t.Capacity(at.Sub(first))
	}
}

// Limits are enforced per mailbox by the simulator.
type Limits struct {
	Concurrency int      `yaml:"concurrency"`
	Requests    int      `yaml:"requests"`
	Window      Duration `yaml:"window"`
}

// Mailbox is one mailbox of the tenant.
type Mailbox struct {
	Address string   `yaml:"address"`
	Folders []Folder `yaml:"folders"`
	// Archive holds the folders of the mailbox's archive (In-Place
	// Archive), a mailbox of its own that only the mailbox API reaches.
	Archive []Folder `yaml:"archive"`
}

// Folder is one folder; Path uses "/" between levels.
type Folder struct {
	Path      string     `yaml:"path"`
	Kind      string     `yaml:"kind"`
	Items     int        `yaml:"items"`
	Dirty     []int      `yaml:"dirty"`
	Throttle  *Throttle  `yaml:"throttle"`
	Size      *SizeRange `yaml:"size"`
	Transient *Transient `yaml:"transient"`
	// DirtyMode says how a wire simulator fails a dirty item: "request"
	// (the whole request fails, the default, as the in-process source does)
	// or "item" (only that item's entry in the reply fails).
	DirtyMode string `yaml:"dirty_mode"`
	// Changes alter the folder while it is being listed.
	Changes *Changes `yaml:"changes"`
	// Shared names a distribution list: the folder's items are the same
	// messages, byte for byte, in every mailbox whose folder names the same
	// list (as one message sent to all staff lands in every inbox).
	Shared string `yaml:"shared"`
}

// Changes happen once, right after page AfterPage of the folder's first
// listing has been served: the first Modify live items get a new version,
// the next Delete are deleted, and Add new items are appended.
type Changes struct {
	AfterPage int `yaml:"after_page"`
	Add       int `yaml:"add"`
	Modify    int `yaml:"modify"`
	Delete    int `yaml:"delete"`
}

// Dirty modes.
const (
	DirtyRequest = "request"
	DirtyItem    = "item"
)

// Throttle: the server delivers at most Items items of the folder per Window,
// then answers throttled with a Retry-After until the window ends.
type Throttle struct {
	Items  int      `yaml:"items"`
	Window Duration `yaml:"window"`
}

// SizeRange overrides the generated size spread of a folder's items.
type SizeRange struct {
	Min Size `yaml:"min"`
	Max Size `yaml:"max"`
}

// Transient injects server faults: every Every-th fetch request of the folder
// fails with a 503 that carries no dirty-item code.
type Transient struct {
	Every int `yaml:"every"`
}

// Duration is a YAML duration such as 10m, 1h or 250ms.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use forms like 250ms, 10m, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte size such as 512, 1KB or 2.5MB (binary multiples).
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses 512, 1KB, 2.5MB, 1GB.
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size (use forms like 512, 1KB, 2.5MB)", s)
	}
	return int64(f * float64(mult)), nil
}

// checkKind defaults a folder's kind to mail and names a kind that is none
// of the above.
func (f *Folder) checkKind() string {
	switch f.Kind {
	case "":
		f.Kind = domain.KindMail
	case domain.KindMail, domain.KindCalendar, domain.KindContacts, domain.KindTasks, domain.KindNotes, domain.KindJournal:
	default:
		return fmt.Sprintf("kind %q is not mail, calendar, contacts, tasks, notes or journal", f.Kind)
	}
	return ""
}

// Load reads and validates a tenant file. Errors name the file and line.
func Load(path string) (*Tenant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tenant file: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return t, nil
}

// ValidationError is a problem at a line of the tenant file.
type ValidationError struct {
	Line int
	Msg  string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%d: %s", e.Line, e.Msg) }

// Parse decodes and validates a tenant document. Error messages start with
// the line number ("12: ...") so Load can prefix the file name.
func Parse(data []byte) (*Tenant, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var t Tenant
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Line: 1, Msg: "the tenant file is empty"}
		}
		return nil, yamlError(err)
	}
	if err := t.validate(&root); err != nil {
		return nil, err
	}
	return &t, nil
}

// yamlError turns yaml.v3's "yaml: line 3: ..." into "3: ...".
func yamlError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	if strings.HasPrefix(msg, "line ") {
		rest := strings.TrimPrefix(msg, "line ")
		if i := strings.Index(rest, ":"); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				return &ValidationError{Line: n, Msg: strings.TrimSpace(rest[i+1:])}
			}
		}
	}
	return &ValidationError{Line: 1, Msg: msg}
}

// lineOf finds the line of a value in the document by a path of map keys and
// sequence indexes; it falls back to the nearest ancestor found.
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}

// DefaultLimits mirror Exchange Online: 4 concurrent requests and 10,000
// requests per 10 minutes per mailbox.
var DefaultLimits = Limits{Concurrency: 4, Requests: 10000, Window: Duration(10 * time.Minute)}

func (t *Tenant) validate(root *yaml.Node) error {
	bad := func(msg string, path ...any) error {
		return &ValidationError{Line: lineOf(root, path...), Msg: msg}
	}
	if t.Limits == nil {
		l := DefaultLimits
		t.Limits = &l
	}
	if t.Limits.Concurrency < 1 {
		return bad("limits.concurrency must be at least 1", "limits", "concurrency")
	}
	for i, st := range t.Load {
		switch {
		case st.At < 0 || st.For <= 0:
			return bad("load steps need at: 0 or later and for: a positive duration", "load", i)
		case st.Capacity <= 0 || st.Capacity > 1:
			return bad("a load step's capacity is a share of the limits, above 0 and at most 1", "load", i, "capacity")
		}
	}
	if t.Limits.Requests < 1 {
		return bad("limits.requests must be at least 1", "limits", "requests")
	}
	if t.Limits.Window <= 0 {
		return bad("limits.window must be a positive duration", "limits", "window")
	}
	if t.Latency < 0 || time.Duration(t.Latency) > time.Minute {
		return bad("latency must be between 0 and 1m", "latency")
	}
	if t.Limits.Requests > maxRequests || t.Limits.Concurrency > maxConcurrency || time.Duration(t.Limits.Window) > 24*time.Hour {
		return bad(fmt.Sprintf("limits must stay within %d requests, %d concurrent and a window of 24h", maxRequests, maxConcurrency), "limits")
	}
	if g := t.Global; g != nil && (g.Requests > maxRequests || g.Concurrency > maxConcurrency || time.Duration(g.Window) > 24*time.Hour) {
		return bad(fmt.Sprintf("global must stay within %d requests, %d concurrent and a window of 24h", maxRequests, maxConcurrency), "global")
	}
	if len(t.Mailboxes) > maxMailboxes {
		return bad(fmt.Sprintf("the tenant has more than %d mailboxes", maxMailboxes), "mailboxes")
	}
	for i, st := range t.Load {
		if time.Duration(st.At) > 24*time.Hour || time.Duration(st.For) > 24*time.Hour {
			return bad("load steps must start and last within 24h", "load", i)
		}
	}
	if fs := t.Faults; fs != nil {
		if st := fs.Storm; st != nil && (st.Every > maxEvery || st.Length > maxEvery || time.Duration(st.RetryAfter) > 24*time.Hour) {
			return bad("faults.storm must stay within every and length of 1,000,000,000 and a retry_after of 24h", "faults", "storm")
		}
		if sl := fs.Slow; sl != nil && (sl.Every > maxEvery || time.Duration(sl.Delay) > 10*time.Minute) {
			return bad("faults.slow must stay within every of 1,000,000,000 and a delay of 10m", "faults", "slow")
		}
	}
	total := 0
	if g := t.Global; g != nil && (g.Requests < 1 || g.Window <= 0) {
		return bad("global needs requests >= 1 and a positive window", "global")
	}
	if fs := t.Faults; fs != nil {
		if st := fs.Storm; st != nil && (st.Every < 1 || st.Length < 1 || st.Status != 503 && st.Status != 504 || st.RetryAfter < 0) {
			return bad("faults.storm needs every >= 1, length >= 1 and status 503 or 504", "faults", "storm")
		}
		if sl := fs.Slow; sl != nil && (sl.Every < 1 || sl.Delay <= 0) {
			return bad("faults.slow needs every >= 1 and a positive delay", "faults", "slow")
		}
		if fs.Drop != nil && fs.Drop.Every < 1 {
			return bad("faults.drop.every must be at least 1", "faults", "drop")
		}
		if fs.Truncate != nil && fs.Truncate.Every < 1 {
			return bad("faults.truncate.every must be at least 1", "faults", "truncate")
		}
	}
	if g := t.Graph; g != nil {
		if g.ThrottlePush < 0 || time.Duration(g.ThrottlePush) > time.Hour {
			return bad("graph.throttle_push must be between 0 and 1h", "graph", "throttle_push")
		}
		switch g.ResyncCode {
		case "", "SyncStateNotFound", "ResyncRequired", "SyncStateInvalid":
		default:
			return bad(fmt.Sprintf("graph.resync_code %q is not SyncStateNotFound, ResyncRequired or SyncStateInvalid", g.ResyncCode), "graph", "resync_code")
		}
	}
	if e := t.EWS; e != nil {
		switch e.ThrottleShape {
		case "":
			e.ThrottleShape = ShapeServerBusy
		case ShapeServerBusy, ShapeHTTP503, ShapeInternalError:
		default:
			return bad(fmt.Sprintf("ews.throttle_shape %q is not server_busy, http503 or internal_error", e.ThrottleShape), "ews", "throttle_shape")
		}
		if e.MaxConcurrency < 0 || e.BackOff < 0 {
			return bad("ews.max_concurrency and ews.backoff must not be negative", "ews")
		}
		if b := e.Budget; b != nil {
			if problem, field := b.validate(); problem != "" {
				return bad("ews.budget: "+problem, "ews", "budget", field)
			}
		}
	}
	if len(t.Mailboxes) == 0 && len(t.PublicFolders) == 0 {
		return bad("the tenant has no mailboxes", "mailboxes")
	}
	// checkFolders checks the folders of mailbox i's list where
	// ("folders", or "archive" for its archive mailbox).
	checkFolders := func(i int, where, name string, list []Folder) error {
		paths := map[string]bool{}
		for j := range list {
			f := &list[j]
			at := func(field string) []any { return []any{"mailboxes", i, where, j, field} }
			if err := validFolderPath(f.Path); err != nil {
				return bad(err.Error(), at("path")...)
			}
			if paths[strings.ToLower(f.Path)] {
				return bad(fmt.Sprintf("folder %q is listed twice in %s", f.Path, name), at("path")...)
			}
			paths[strings.ToLower(f.Path)] = true
			if problem := f.checkKind(); problem != "" {
				return bad(fmt.Sprintf("folder %q: %s", f.Path, problem), at("kind")...)
			}
			if problem, field := f.bounds(); problem != "" {
				return bad(fmt.Sprintf("folder %q: %s", f.Path, problem), at(field)...)
			}
			if total += f.Items; total > MaxTenantItems {
				return bad(fmt.Sprintf("the tenant holds more than %d items (the simulators keep every item's state in memory)", MaxTenantItems), at("items")...)
			}
			dirty := map[int]bool{}
			for k, p := range f.Dirty {
				if p < 1 || p > f.Items {
					return bad(fmt.Sprintf("folder %q: dirty position %d is outside 1..%d", f.Path, p, f.Items), "mailboxes", i, where, j, "dirty", k)
				}
				if dirty[p] {
					return bad(fmt.Sprintf("folder %q: dirty position %d is listed twice", f.Path, p), "mailboxes", i, where, j, "dirty", k)
				}
				dirty[p] = true
			}
			if f.Throttle != nil && (f.Throttle.Items < 1 || f.Throttle.Window <= 0) {
				return bad(fmt.Sprintf("folder %q: throttle needs items >= 1 and a positive window", f.Path), at("throttle")...)
			}
			if f.Size != nil && (f.Size.Min < 1 || f.Size.Max < f.Size.Min) {
				return bad(fmt.Sprintf("folder %q: size needs 0 < min <= max", f.Path), at("size")...)
			}
			if f.Transient != nil && f.Transient.Every < 1 {
				return bad(fmt.Sprintf("folder %q: transient.every must be at least 1", f.Path), at("transient")...)
			}
			switch f.DirtyMode {
			case "":
				f.DirtyMode = DirtyRequest
			case DirtyRequest, DirtyItem:
			default:
				return bad(fmt.Sprintf("folder %q: dirty_mode %q is not request or item", f.Path, f.DirtyMode), at("dirty_mode")...)
			}
			if c := f.Changes; c != nil && (c.AfterPage < 1 || c.Add < 0 || c.Modify < 0 || c.Delete < 0 || c.Modify+c.Delete > f.Items) {
				return bad(fmt.Sprintf("folder %q: changes need after_page >= 1 and modify+delete within the folder's items", f.Path), at("changes")...)
			}
		}
		return nil
	}
	seen := map[string]bool{}
	for i := range t.Mailboxes {
		m := &t.Mailboxes[i]
		m.Address = strings.TrimSpace(m.Address)
		if !strings.Contains(m.Address, "@") || strings.ContainsAny(m.Address, "/\\\x00 ") {
			return bad(fmt.Sprintf("mailbox address %q is not an SMTP address", m.Address), "mailboxes", i, "address")
		}
		key := strings.ToLower(m.Address)
		if seen[key] {
			return bad(fmt.Sprintf("mailbox %s is listed twice", m.Address), "mailboxes", i, "address")
		}
		seen[key] = true
		if err := checkFolders(i, "folders", m.Address, m.Folders); err != nil {
			return err
		}
		if err := checkFolders(i, "archive", m.Address+" (archive)", m.Archive); err != nil {
			return err
		}
	}
	pub := map[string]bool{}
	for j := range t.PublicFolders {
		f := &t.PublicFolders[j]
		at := func(field string) []any { return []any{"public_folders", j, field} }
		if err := validFolderPath(f.Path); err != nil {
			return bad(err.Error(), at("path")...)
		}
		if pub[strings.ToLower(f.Path)] {
			return bad(fmt.Sprintf("public folder %q is listed twice", f.Path), at("path")...)
		}
		pub[strings.ToLower(f.Path)] = true
		if problem, field := f.bounds(); problem != "" {
			return bad(fmt.Sprintf("public folder %q: %s", f.Path, problem), at(field)...)
		}
		if total += f.Items; total > MaxTenantItems {
			return bad(fmt.Sprintf("the tenant holds more than %d items (the simulators keep every item's state in memory)", MaxTenantItems), at("items")...)
		}
		if err := f.validate(); err != "" {
			return bad("public folder "+err, at("path")...)
		}
	}
	return nil
}

// The bounds of a tenant file's numbers: what a simulator can hold in
// memory and serve, and what Exchange itself allows (a message of at most
// 150 MB). A number beyond them is a typo, and an error naming its line,
// not a panic or a machine out of memory.
const (
	// MaxTenantItems bounds the items of a tenant; each item's state is
	// kept in memory (some 50 bytes).
	MaxTenantItems = 20_000_000
	maxItemSize    = 150 << 20
	maxRequests    = 10_000_000
	maxConcurrency = 10_000
	maxMailboxes   = 100_000
	maxEvery       = 1_000_000_000
)

// bounds checks a folder's numbers; it returns what is wrong and the
// field it is in, or "".
func (f *Folder) bounds() (problem, field string) {
	switch {
	case f.Items < 0 || f.Items > MaxTenantItems:
		return fmt.Sprintf("items must be between 0 and %d", MaxTenantItems), "items"
	case f.Size != nil && (f.Size.Min > maxItemSize || f.Size.Max > maxItemSize):
		return "an item's size must be at most 150MB (Exchange's largest message)", "size"
	case f.Throttle != nil && f.Throttle.Items > maxEvery:
		return "throttle must stay within 1,000,000,000 items", "throttle"
	case f.Transient != nil && f.Transient.Every > maxEvery:
		return "transient.every must be at most 1,000,000,000", "transient"
	case f.Changes != nil && (f.Changes.Add > MaxTenantItems || f.Changes.AfterPage > maxEvery):
		return fmt.Sprintf("changes must add at most %d items", MaxTenantItems), "changes"
	}
	return "", ""
}

// validate checks and defaults the settings a public folder shares with a
// mailbox folder; it returns a message, or "".
func (f *Folder) validate() string {
	if problem := f.checkKind(); problem != "" {
		return fmt.Sprintf("%q: %s", f.Path, problem)
	}
	if f.Items < 0 {
		return fmt.Sprintf("%q: items must not be negative", f.Path)
	}
	for _, p := range f.Dirty {
		if p < 1 || p > f.Items {
			return fmt.Sprintf("%q: dirty position %d is outside 1..%d", f.Path, p, f.Items)
		}
	}
	if f.DirtyMode == "" {
		f.DirtyMode = DirtyRequest
	}
	if f.DirtyMode != DirtyRequest && f.DirtyMode != DirtyItem {
		return fmt.Sprintf("%q: dirty_mode %q is not request or item", f.Path, f.DirtyMode)
	}
	if f.Throttle != nil && (f.Throttle.Items < 1 || f.Throttle.Window <= 0) {
		return fmt.Sprintf("%q: throttle needs items >= 1 and a positive window", f.Path)
	}
	return ""
}

func validFolderPath(p string) error {
	if strings.TrimSpace(p) == "" {
		return errors.New("folder path is empty")
	}
	if strings.ContainsAny(p, "\x00\\") {
		return fmt.Errorf("folder path %q contains a NUL or backslash", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return fmt.Errorf("folder path %q has an empty level", p)
		}
	}
	return nil
}
