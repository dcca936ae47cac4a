package domain

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The kinds of refusal a configuration command can meet. Callers match them
// with errors.Is; the command line turns them into its usage exit code and
// the local API into HTTP statuses, so each port decides its own wording of
// failure while the rule is decided here, once.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("exists already")
	ErrInUse    = errors.New("in use")
	ErrRunning  = errors.New("running")
	ErrInvalid  = errors.New("invalid")
)

// ConfigError is a refused configuration change: which object, and why.
type ConfigError struct {
	Kind string // connection, storage or job
	Name string
	// Err is one of the sentinels above.
	Err error
	// Msg says it in words a user acts on.
	Msg string
}

func (e *ConfigError) Error() string { return e.Msg }
func (e *ConfigError) Unwrap() error { return e.Err }

func refuse(kind, name string, err error, format string, a ...any) error {
	return &ConfigError{Kind: kind, Name: name, Err: err, Msg: fmt.Sprintf(format, a...)}
}

// JobRefs are what a job definition points at.
type JobRefs struct {
	Connection string
	Storage    string
}

// Configuration holds the names of what is configured and what each job
// refers to: enough to decide every rule a change must keep (names unique,
// references resolvable, nothing removed while a job uses it, a busy job
// left alone). The definitions themselves are opaque here.
type Configuration struct {
	Connections map[string]bool
	Storages    map[string]bool
	Jobs        map[string]JobRefs
}

// ValidName is the rule for every configured object's name: it becomes a
// file name (secrets) and an argument, so no separators and no NUL.
func ValidName(kind, name string) error {
	if strings.TrimSpace(name) == "" || strings.ContainsAny(name, "/\\\x00") || len(name) > 100 {
		return refuse(kind, name, ErrInvalid, "%s name %q: give 1 to 100 characters without slashes", kind, name)
	}
	return nil
}

// AddConnection checks a new connection's name.
func (c Configuration) AddConnection(name string) error {
	if err := ValidName("connection", name); err != nil {
		return err
	}
	if c.Connections[name] {
		return refuse("connection", name, ErrExists, "a connection named %q exists already", name)
	}
	return nil
}

// RemoveConnection refuses to leave a job without its connection.
func (c Configuration) RemoveConnection(name string) error {
	if !c.Connections[name] {
		return refuse("connection", name, ErrNotFound, "no connection named %q", name)
	}
	if users := c.jobsUsing(func(r JobRefs) bool { return r.Connection == name }); len(users) > 0 {
		return refuse("connection", name, ErrInUse, "connection %q is used by jobs %s; delete or edit them first", name, strings.Join(users, ", "))
	}
	return nil
}

// HasConnection is the lookup every command naming a connection starts with.
func (c Configuration) HasConnection(name string) error {
	if !c.Connections[name] {
		return refuse("connection", name, ErrNotFound, "no connection named %q (see mailvault connection list)", name)
	}
	return nil
}

// AddStorage checks a new storage's name.
func (c Configuration) AddStorage(name string) error {
	if err := ValidName("storage", name); err != nil {
		return err
	}
	if c.Storages[name] {
		return refuse("storage", name, ErrExists, "a storage named %q exists already", name)
	}
	return nil
}

// HasStorage is the lookup of a command naming a storage.
func (c Configuration) HasStorage(name string) error {
	if !c.Storages[name] {
		return refuse("storage", name, ErrNotFound, "no storage named %q", name)
	}
	return nil
}

// RemoveStorage refuses to leave a job without its storage.
func (c Configuration) RemoveStorage(name string) error {
	if err := c.HasStorage(name); err != nil {
		return err
	}
	if users := c.jobsUsing(func(r JobRefs) bool { return r.Storage == name }); len(users) > 0 {
		return refuse("storage", name, ErrInUse, "storage %q is used by jobs %s; delete or edit them first", name, strings.Join(users, ", "))
	}
	return nil
}

// CreateJob checks a new job: a unique name and references that resolve.
func (c Configuration) CreateJob(name string, refs JobRefs) error {
	if err := ValidName("job", name); err != nil {
		return err
	}
	if _, ok := c.Jobs[name]; ok {
		return refuse("job", name, ErrExists, "a job named %q exists already (job names are unique; use job edit)", name)
	}
	return c.resolves(name, refs)
}

// EditJob checks a changed job. A job the daemon is running or has active
// is refused: its cycle would go on with the old definition.
func (c Configuration) EditJob(name string, refs JobRefs, busy bool) error {
	if err := c.HasJob(name); err != nil {
		return err
	}
	if busy {
		return refuse("job", name, ErrRunning, "job %q is running: stop it (mailvault job stop %s) before editing it", name, name)
	}
	return c.resolves(name, refs)
}

// DeleteJob refuses to delete a job while the daemon has it busy: its
// cycle would run on without a definition.
func (c Configuration) DeleteJob(name string, busy bool) error {
	if err := c.HasJob(name); err != nil {
		return err
	}
	if busy {
		return refuse("job", name, ErrRunning, "job %q is running: stop it (mailvault job stop %s) before deleting it", name, name)
	}
	return nil
}

// HasJob is the lookup of job show, delete, start and stop.
func (c Configuration) HasJob(name string) error {
	if _, ok := c.Jobs[name]; !ok {
		return refuse("job", name, ErrNotFound, "no job named %q", name)
	}
	return nil
}

func (c Configuration) resolves(name string, refs JobRefs) error {
	if !c.Connections[refs.Connection] {
		return refuse("job", name, ErrNotFound, "job %q: no connection named %q (see mailvault connection list)", name, refs.Connection)
	}
	if !c.Storages[refs.Storage] {
		return refuse("job", name, ErrNotFound, "job %q: no storage named %q (see mailvault storage list)", name, refs.Storage)
	}
	return nil
}

// JobsUsingStorage names the jobs that back up into a storage, in order.
func (c Configuration) JobsUsingStorage(storage string) []string {
	return c.jobsUsing(func(r JobRefs) bool { return r.Storage == storage })
}

func (c Configuration) jobsUsing(match func(JobRefs) bool) []string {
	var out []string
	for name, refs := range c.Jobs {
		if match(refs) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
