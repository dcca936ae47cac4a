package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/vault"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// storageAccess are the flags that unlock a storage given by path (a named
// storage's password is in the secret store).
type storageAccess struct {
	passwordFile, passwordEnv, recoveryKeyFile string
}

func (a *storageAccess) register(f *pflag.FlagSet) {
	f.StringVar(&a.passwordFile, "storage-password-file", "", "file holding the storage's password (for a storage given by path)")
	f.StringVar(&a.passwordEnv, "storage-password-env", "", "environment variable holding the storage's password")
	f.StringVar(&a.recoveryKeyFile, "recovery-key-file", "", "open the storage with its recovery key instead of its password")
}

// storageKey is what unlocks a storage given by path, read by the caller
// (a file, or an environment variable of the caller's environment): an
// operation the daemon runs gets the key, never a file name to read.
type storageKey struct {
	Password    []byte `json:"password,omitempty"`
	RecoveryKey string `json:"recovery_key,omitempty"`
}

// key reads the password and the recovery key the flags name.
func (a storageAccess) key() (storageKey, error) {
	pw, err := a.password()
	if err != nil {
		return storageKey{}, err
	}
	k := storageKey{Password: pw}
	if a.recoveryKeyFile != "" {
		b, err := os.ReadFile(a.recoveryKeyFile)
		if err != nil {
			return k, usageErr("read the recovery key: %v", err)
		}
		k.RecoveryKey = string(b)
	}
	return k, nil
}

func (a storageAccess) password() ([]byte, error) {
	if a.passwordFile == "" && a.passwordEnv == "" {
		return nil, nil
	}
	s, err := credential.Load("storage password", a.passwordFile, a.passwordEnv)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return []byte(s.Reveal()), nil
}

// vaultPool shares open storages within the process: Badger allows one
// opener per directory, and the daemon may run two jobs into one storage.
var vaultPool = struct {
	sync.Mutex
	open map[string]*pooledVault
}{open: map[string]*pooledVault{}}

type pooledVault struct {
	v    *vault.Vault
	refs int
	mode storageMode
}

// storageMode is how a command uses a storage.
type storageMode int

const (
	// storageWrite backs up, prunes: a damaged storage is refused.
	storageWrite storageMode = iota
	// storageRead lists, exports, restores: nothing in the storage changes.
	storageRead
	// storageCheck verifies: a damaged index is reported, not refused.
	storageCheck
	// storageRepair repairs: alone, writing, whatever the damage.
	storageRepair
)

// storageRef is a storage to open: a name from `storage add` or a path.
type storageRef struct {
	dir      string
	password []byte
	recovery string
	// create makes an unencrypted storage at dir when none is there (the
	// default DATA/storage of plain backups).
	create bool
	mode   storageMode
}

// resolveStorage turns a NAME or a PATH into what opens it.
func resolveStorage(g *globalFlags, ref string, k storageKey) (storageRef, error) {
	r := storageRef{dir: ref, password: k.Password, recovery: k.RecoveryKey}
	if !strings.ContainsAny(ref, `/\`) && !vault.Exists(ref) {
		err := withService(g, func(svc *app.Service) error {
			spec, pw, err := svc.OpenStorage(ref)
			if errors.Is(err, app.ErrNotFound) {
				return usageErr("no storage named %q and no storage in a directory %q (see mailvault storage list)", ref, ref)
			}
			if err != nil && r.password == nil && r.recovery == "" {
				return fmt.Errorf("%w; give --storage-password-file", err)
			}
			r.dir = spec.Path
			if r.password == nil && r.recovery == "" {
				r.password = pw
			}
			return nil
		})
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// openStorage opens (or shares) the storage of r. A handle open for
// writing serves readers and checks too; one open for reading cannot be
// shared by a writer (Badger allows one writer per directory).
func openStorage(r storageRef) (*vault.Vault, error) {
	abs, err := filepath.Abs(r.dir)
	if err != nil {
		return nil, usageErr("storage %s: %v", r.dir, err)
	}
	vaultPool.Lock()
	defer vaultPool.Unlock()
	if p, ok := vaultPool.open[abs]; ok {
		switch {
		case r.mode == storageRepair:
			return nil, &exitError{code: exitErrors, err: fmt.Errorf("storage %s is in use (a job or command has it open): stop it before repairing", r.dir)}
		case r.mode == storageWrite && p.mode != storageWrite:
			return nil, &exitError{code: exitErrors, err: fmt.Errorf("storage %s is open for reading by another command; try again when it has finished", r.dir)}
		}
		if p.v.Encrypted() && r.recovery == "" {
			// Shared handles still need the right password.
			if err := vault.CheckPassword(abs, r.password); err != nil {
				return nil, storageErrExit(err)
			}
		}
		p.refs++
		return p.v, nil
	}
	var v *vault.Vault
	if r.create && !vault.Exists(abs) {
		v, _, err = vault.Create(abs, vault.CreateOptions{})
	} else {
		v, err = vault.OpenWith(abs, vault.OpenOptions{Password: r.password, RecoveryKey: r.recovery,
			ReadOnly: r.mode == storageRead || r.mode == storageCheck, ForCheck: r.mode == storageCheck || r.mode == storageRepair})
	}
	if err != nil {
		return nil, storageErrExit(err)
	}
	mode := r.mode
	if r.create {
		mode = storageWrite
	}
	vaultPool.open[abs] = &pooledVault{v: v, refs: 1, mode: mode}
	return v, nil
}

func closeStorage(v *vault.Vault) {
	vaultPool.Lock()
	defer vaultPool.Unlock()
	for dir, p := range vaultPool.open {
		if p.v == v {
			if p.refs--; p.refs == 0 {
				delete(vaultPool.open, dir)
				v.Close()
			}
			return
		}
	}
}

// storageErrExit makes a storage error the command's (exit 1); a storage
// held by another process says what to do.
func storageErrExit(err error) error {
	if errors.Is(err, vault.ErrLocked) {
		err = fmt.Errorf("%w: another mailvault process is using this storage; wait for it to finish", err)
	}
	return &exitError{code: exitErrors, err: err}
}

// withStorage opens the storage named by ref for one command.
func withStorage(g *globalFlags, ref string, k storageKey, mode storageMode, fn func(v *vault.Vault) error) error {
	r, err := resolveStorage(g, ref, k)
	if err != nil {
		return err
	}
	r.mode = mode
	return withResolved(r, fn)
}

// withStorageAndLog opens a storage for an operation that records its work
// in the log (prune, repair): the storage is resolved first, since a name
// is looked up in the configuration, which is in the log; then the log is
// held while fn runs.
func withStorageAndLog(g *globalFlags, storage string, k storageKey, mode storageMode, fn func(v *vault.Vault, lg *eventlog.Log) error) error {
	ref, err := resolveStorage(g, storage, k)
	if err != nil {
		return err
	}
	ref.mode = mode
	lg, err := openLog(g)
	if err != nil {
		return err
	}
	defer releaseLog(g, lg)
	return withResolved(ref, func(v *vault.Vault) error { return fn(v, lg) })
}

// withResolved opens a resolved storage for one command. Commands that
// also hold the event log resolve first: resolving a storage by name reads
// the configuration, which is in the log.
func withResolved(r storageRef, fn func(v *vault.Vault) error) error {
	v, err := openStorage(r)
	if err != nil {
		return err
	}
	defer closeStorage(v)
	return fn(v)
}

func parseRetention(keepVersions int, keepDeleted string) (domain.Retention, error) {
	r := domain.Retention{KeepVersions: keepVersions}
	if keepDeleted != "" && keepDeleted != "forever" {
		p, err := domain.ParsePeriod(keepDeleted)
		if err != nil {
			return r, usageErr("--keep-deleted: %v", err)
		}
		r.KeepDeletedFor = &p
	}
	if err := r.Validate(); err != nil {
		return r, usageErr("%v", err)
	}
	return r, nil
}

func newStorageCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "storage", Short: "Named backup storages: encrypted, deduplicated, versioned"}
	var path, keepDeleted string
	var unencrypted, noCompression bool
	var keepVersions int
	var access storageAccess
	add := &cobra.Command{Use: "add NAME --path DIR (--storage-password-file F | --storage-password-env V | --unencrypted)",
		Short: "Create a storage (or adopt an existing one) and name it", Args: cobra.ExactArgs(1),
		Long: `Create a storage in DIR, or adopt the storage already there (its password must be right).
A new password-protected storage prints its recovery key once: keep it somewhere safe; it opens
the storage if the password is lost. The password is kept in the data directory's encrypted
secret store, so scheduled jobs can open the storage.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usageErr("--path DIR is required")
			}
			pw, err := access.password()
			if err != nil {
				return err
			}
			if pw == nil && !unencrypted {
				return usageErr("give the storage a password (--storage-password-file or --storage-password-env), or say --unencrypted")
			}
			ret, err := parseRetention(keepVersions, keepDeleted)
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return usageErr("--path: %v", err)
			}
			return withApp(g, func(s application) error {
				recovery, err := s.AddStorage(cmd.Context(), app.AddStorage{Name: args[0], Path: abs, Password: pw,
					Options: app.StorageOptions{NoCompression: noCompression, Retention: ret}})
				if err != nil {
					return err
				}
				if recovery != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "storage %s created in %s, encrypted (AES-256-GCM, key from argon2id)\nrecovery key (shown once; it opens the storage without the password):\n  %s\n", args[0], abs, recovery)
				}
				return nil
			})
		}}
	access.register(add.Flags())
	add.Flags().StringVar(&path, "path", "", "directory of the storage")
	add.Flags().BoolVar(&unencrypted, "unencrypted", false, "create the storage without a password")
	add.Flags().BoolVar(&noCompression, "no-compression", false, "store chunks without zstd compression")
	add.Flags().IntVar(&keepVersions, "keep-versions", 0, "retention: keep the last N versions of each item (0: all)")
	add.Flags().StringVar(&keepDeleted, "keep-deleted", "", "retention: keep items deleted at the source for this long after deletion (90d, 6m, 7y; default forever)")

	var listFormat string
	list := &cobra.Command{Use: "list", Short: "List storages", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(listFormat, listFormats...); err != nil {
				return err
			}
			return withApp(g, func(s application) error {
				rows, err := s.ListStorages(cmd.Context())
				if err != nil {
					return err
				}
				return writeList(cmd.OutOrStdout(), listFormat, rows, []string{"NAME", "PATH", "ENCRYPTION"}, func(r app.Storage) []string {
					enc := "unencrypted"
					if r.Encrypted {
						enc = "encrypted"
					}
					return []string{r.Name, r.Path, enc}
				})
			})
		}}
	list.Flags().StringVar(&listFormat, "format", "text", "output format: text or json")
	remove := &cobra.Command{Use: "remove NAME", Short: "Remove a storage's name (its data stays on disk)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withApp(g, func(s application) error { return s.RemoveStorage(cmd.Context(), args[0]) })
		}}

	var statsAccess storageAccess
	stats := &cobra.Command{Use: "stats NAME|DIR", Short: "Items, versions, bytes and the deduplication saving", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := statsAccess.key()
			if err != nil {
				return err
			}
			return storageStatsOperation(cmd, g, storageInput{Storage: nameOrPath(args[0]), Key: key})
		}}
	statsAccess.register(stats.Flags())

	var pwAccess storageAccess
	var newFile, newEnv string
	passwd := &cobra.Command{Use: "passwd NAME|DIR --new-password-file F", Short: "Change a storage's password (no data is rewritten)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			next, err := credential.Load("new password", newFile, newEnv)
			if err != nil {
				return usageErr("%v", err)
			}
			key, err := pwAccess.key()
			if err != nil {
				return err
			}
			return storagePasswdOperation(cmd, g, passwdInput{storageInput: storageInput{Storage: nameOrPath(args[0]), Key: key}, NewPassword: next.Reveal()})
		}}
	pwAccess.register(passwd.Flags())
	passwd.Flags().StringVar(&newFile, "new-password-file", "", "file holding the new password")
	passwd.Flags().StringVar(&newEnv, "new-password-env", "", "environment variable holding the new password")

	var retAccess storageAccess
	var retVersions int
	var retDeleted string
	retention := &cobra.Command{Use: "retention NAME|DIR [--keep-versions N] [--keep-deleted P|forever]", Short: "Show or set the retention policy that prune applies", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := retAccess.key()
			if err != nil {
				return err
			}
			in := retentionInput{storageInput: storageInput{Storage: nameOrPath(args[0]), Key: key}}
			if cmd.Flags().Changed("keep-versions") {
				in.KeepVersions = &retVersions
			}
			if cmd.Flags().Changed("keep-deleted") {
				in.KeepDeleted = &retDeleted
			}
			return storageRetentionOperation(cmd, g, in)
		}}
	retAccess.register(retention.Flags())
	retention.Flags().IntVar(&retVersions, "keep-versions", 0, "keep the last N versions of each item (0: all)")
	retention.Flags().StringVar(&retDeleted, "keep-deleted", "", "keep items deleted at the source this long (90d, 6m, 7y, or forever)")

	cmd.AddCommand(add, list, remove, stats, passwd, retention)
	return cmd
}

// storageInput names a storage and holds its key.
type storageInput struct {
	Storage string     `json:"storage"`
	Key     storageKey `json:"key"`
}

type passwdInput struct {
	storageInput
	NewPassword string `json:"new_password"`
}

// retentionInput sets what it holds (nil: keep the current setting) and
// shows the policy.
type retentionInput struct {
	storageInput
	KeepVersions *int    `json:"keep_versions,omitempty"`
	KeepDeleted  *string `json:"keep_deleted,omitempty"`
}

var storageStatsOperation = operation("storage-stats", func(_ context.Context, g *globalFlags, in storageInput, out, _ io.Writer) error {
	return withStorage(g, in.Storage, in.Key, storageRead, func(v *vault.Vault) error {
		st, err := v.Stats()
		if err != nil {
			return &exitError{code: exitErrors, err: err}
		}
		writeStats(out, v, st)
		return nil
	})
})

var storagePasswdOperation = operation("storage-passwd", func(_ context.Context, g *globalFlags, in passwdInput, out, _ io.Writer) error {
	r, err := resolveStorage(g, in.Storage, in.Key)
	if err != nil {
		return err
	}
	r.mode = storageRead // the key record changes, not the index
	v, err := openStorage(r)
	if err != nil {
		return err
	}
	defer closeStorage(v)
	if err := v.ChangePassword(r.password, []byte(in.NewPassword)); err != nil {
		return storageErrExit(err)
	}
	if !strings.ContainsAny(in.Storage, `/\`) && !vault.Exists(in.Storage) {
		if err := secretStore(g).Put(app.StorageSecretName(in.Storage), credential.New(in.NewPassword)); err != nil {
			return &exitError{code: exitErrors, err: fmt.Errorf("the password changed, but keeping it in the secret store failed: %w", err)}
		}
	}
	fmt.Fprintln(out, "password changed")
	return nil
})

var storageRetentionOperation = operation("storage-retention", func(_ context.Context, g *globalFlags, in retentionInput, out, _ io.Writer) error {
	return withStorage(g, in.Storage, in.Key, storageWrite, func(v *vault.Vault) error {
		if in.KeepVersions != nil || in.KeepDeleted != nil {
			cur := v.Retention()
			versions, deleted := cur.KeepVersions, ""
			if cur.KeepDeletedFor != nil {
				deleted = cur.KeepDeletedFor.String()
			}
			if in.KeepVersions != nil {
				versions = *in.KeepVersions
			}
			if in.KeepDeleted != nil {
				deleted = *in.KeepDeleted
			}
			r, err := parseRetention(versions, deleted)
			if err != nil {
				return err
			}
			if err := v.SetRetention(r); err != nil {
				return &exitError{code: exitErrors, err: err}
			}
		}
		fmt.Fprintln(out, v.Retention().String())
		return nil
	})
})

func writeStats(w io.Writer, v *vault.Vault, st vault.Stats) {
	enc := "unencrypted"
	if v.Encrypted() {
		enc = "encrypted (AES-256-GCM)"
	}
	saved := 0.0
	if st.Logical > 0 {
		saved = 100 * (1 - float64(st.Stored)/float64(st.Logical))
	}
	fmt.Fprintf(w, "storage:       %s, %s\nitems:         %d (%d versions)\nitem bytes:    %s\nunique chunks: %d (%s)\non disk:       %s\ndedup ratio:   %s\nsaved:         %.1f%% (dedup and compression)\nretention:     %s\n",
		v.Dir(), enc, st.Items, st.Versions, projections.HumanBytes(st.Logical), st.Chunks, projections.HumanBytes(st.Unique), projections.HumanBytes(st.Stored),
		strconv.FormatFloat(st.DedupRatio(), 'f', 2, 64), saved, v.Retention())
}
