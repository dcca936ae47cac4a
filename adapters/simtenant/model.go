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
)

// Tenant is the parsed tenant file.
type Tenant struct {
	Seed      int64     `yaml:"seed"`
	Limits    *Limits   `yaml:"limits"`
	Latency   Duration  `yaml:"latency"`
	Mailboxes []Mailbox `yaml:"mailboxes"`
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
}

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

// Kinds of folder content.
const (
	KindMail     = "mail"
	KindCalendar = "calendar"
	KindContacts = "contacts"
)

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
	if t.Limits.Requests < 1 {
		return bad("limits.requests must be at least 1", "limits", "requests")
	}
	if t.Limits.Window <= 0 {
		return bad("limits.window must be a positive duration", "limits", "window")
	}
	if t.Latency < 0 {
		return bad("latency must not be negative", "latency")
	}
	if len(t.Mailboxes) == 0 {
		return bad("the tenant has no mailboxes", "mailboxes")
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
		paths := map[string]bool{}
		for j := range m.Folders {
			f := &m.Folders[j]
			at := func(field string) []any { return []any{"mailboxes", i, "folders", j, field} }
			if err := validFolderPath(f.Path); err != nil {
				return bad(err.Error(), at("path")...)
			}
			if paths[strings.ToLower(f.Path)] {
				return bad(fmt.Sprintf("folder %q is listed twice in %s", f.Path, m.Address), at("path")...)
			}
			paths[strings.ToLower(f.Path)] = true
			switch f.Kind {
			case "":
				f.Kind = KindMail
			case KindMail, KindCalendar, KindContacts:
			default:
				return bad(fmt.Sprintf("folder %q: kind %q is not mail, calendar or contacts", f.Path, f.Kind), at("kind")...)
			}
			if f.Items < 0 {
				return bad(fmt.Sprintf("folder %q: items must not be negative", f.Path), at("items")...)
			}
			dirty := map[int]bool{}
			for k, p := range f.Dirty {
				if p < 1 || p > f.Items {
					return bad(fmt.Sprintf("folder %q: dirty position %d is outside 1..%d", f.Path, p, f.Items), "mailboxes", i, "folders", j, "dirty", k)
				}
				if dirty[p] {
					return bad(fmt.Sprintf("folder %q: dirty position %d is listed twice", f.Path, p), "mailboxes", i, "folders", j, "dirty", k)
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
		}
	}
	return nil
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
