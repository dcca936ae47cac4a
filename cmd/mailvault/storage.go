package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/s3store"
	"github.com/mailvault/mailvault/adapters/vault"
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

// key reads the password and the recovery key the flags name.
func (a storageAccess) key() (app.StorageKey, error) {
	pw, err := a.password()
	if err != nil {
		return app.StorageKey{}, err
	}
	k := app.StorageKey{Password: pw}
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
	s, err := loadSecret("storage password", a.passwordFile, a.passwordEnv)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return []byte(s.Reveal()), nil
}

func newStorageCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "storage", Short: "Named backup storages: encrypted, deduplicated, versioned"}
	var path, keepDeleted string
	var unencrypted, noCompression bool
	var keepVersions int
	var access storageAccess
	var remote remoteFlags
	add := &cobra.Command{Use: "add NAME --path DIR (--storage-password-file F | --storage-password-env V | --unencrypted) [--s3 s3://BUCKET/PREFIX --s3-endpoint HOST:PORT [--lock-days N]]",
		Short: "Create a storage (or adopt an existing one) and name it", Args: cobra.ExactArgs(1),
		Long: `Create a storage in DIR, or adopt the storage already there (its password must be right).
A new password-protected storage prints its recovery key once: keep it somewhere safe; it opens
the storage if the password is lost. The password is kept in the data directory's encrypted
secret store, so scheduled jobs can open the storage.

With --s3 the storage lives in an S3-compatible bucket (packs and settings, the same format as
a local storage) and DIR keeps its index and the pack being written; a storage already in the
bucket is attached (its index built from its packs). Credentials come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (or the AWS credentials file) of the process that opens the storage: the
daemon's too. With --lock-days every object is written with S3 Object Lock for that many days
(the bucket must have been created with Object Lock); prune leaves locked packs until then.`,
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
			ret, err := app.ParseRetention(keepVersions, keepDeleted)
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return usageErr("--path: %v", err)
			}
			rc, err := remote.config()
			if err != nil {
				return err
			}
			return withApp(g, func(s application) error {
				recovery, err := s.AddStorage(cmd.Context(), app.AddStorage{Name: args[0], Path: abs, Password: pw,
					Options: app.StorageOptions{NoCompression: noCompression, Retention: ret, Remote: rc}})
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
	remote.register(add.Flags())
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
			return storageStatsOperation(cmd, g, app.StorageRef{Storage: nameOrPath(args[0]), Key: key})
		}}
	statsAccess.register(stats.Flags())

	var pwAccess storageAccess
	var newFile, newEnv string
	passwd := &cobra.Command{Use: "passwd NAME|DIR --new-password-file F", Short: "Change a storage's password (no data is rewritten)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			next, err := loadSecret("new password", newFile, newEnv)
			if err != nil {
				return usageErr("%v", err)
			}
			key, err := pwAccess.key()
			if err != nil {
				return err
			}
			return storagePasswdOperation(cmd, g, passwdInput{StorageRef: app.StorageRef{Storage: nameOrPath(args[0]), Key: key}, NewPassword: next.Reveal()})
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
			in := retentionInput{StorageRef: app.StorageRef{Storage: nameOrPath(args[0]), Key: key}}
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

type passwdInput struct {
	app.StorageRef
	NewPassword string `json:"new_password"`
}

// retentionInput sets what it holds (nil: keep the current setting) and
// shows the policy.
type retentionInput struct {
	app.StorageRef
	app.RetentionChange
}

var storageStatsOperation = operation("storage-stats", func(ctx context.Context, g *globalFlags, in app.StorageRef, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		st, err := s.StorageStats(ctx, in)
		if err != nil {
			return err
		}
		writeStats(out, st)
		return nil
	})
})

var storagePasswdOperation = operation("storage-passwd", func(ctx context.Context, g *globalFlags, in passwdInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		if err := s.ChangeStoragePassword(ctx, in.StorageRef, credential.New(in.NewPassword)); err != nil {
			return err
		}
		fmt.Fprintln(out, "password changed")
		return nil
	})
})

var storageRetentionOperation = operation("storage-retention", func(ctx context.Context, g *globalFlags, in retentionInput, out, _ io.Writer) error {
	return withService(g, func(s *app.Service) error {
		r, err := s.StorageRetention(ctx, in.StorageRef, in.RetentionChange)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, r.String())
		return nil
	})
})

func writeStats(w io.Writer, st app.StorageStats) {
	enc := "unencrypted"
	if st.Encrypted {
		enc = "encrypted (AES-256-GCM)"
	}
	saved := 0.0
	if st.Logical > 0 {
		saved = 100 * (1 - float64(st.Stored)/float64(st.Logical))
	}
	fmt.Fprintf(w, "storage:       %s, %s\nitems:         %d (%d versions)\nitem bytes:    %s\nunique chunks: %d (%s)\non disk:       %s\ndedup ratio:   %s\nsaved:         %.1f%% (dedup and compression)\nretention:     %s\n",
		st.Dir, enc, st.Items, st.Versions, projections.HumanBytes(st.Logical), st.Chunks, projections.HumanBytes(st.Unique), projections.HumanBytes(st.Stored),
		strconv.FormatFloat(st.DedupRatio(), 'f', 2, 64), saved, st.Retention)
	if st.Objects != "" {
		fmt.Fprintf(w, "objects:       %s (the directory keeps the index)\n", st.Objects)
	}
}

// remoteFlags say where in object storage a storage lives.
type remoteFlags struct {
	url, endpoint, region, caFile, lockMode string
	insecure                                bool
	lockDays                                int
}

func (r *remoteFlags) register(f *pflag.FlagSet) {
	f.StringVar(&r.url, "s3", "", "keep the storage in S3: s3://BUCKET or s3://BUCKET/PREFIX")
	f.StringVar(&r.endpoint, "s3-endpoint", "s3.amazonaws.com", "the S3 server: HOST or HOST:PORT")
	f.StringVar(&r.region, "s3-region", "", "the bucket's region (default: asked of the server)")
	f.BoolVar(&r.insecure, "s3-insecure", false, "talk plain HTTP to the S3 server (a test server on loopback only)")
	f.StringVar(&r.caFile, "s3-ca-file", "", "PEM file of extra certificate authorities to trust for the S3 server")
	f.IntVar(&r.lockDays, "lock-days", 0, "S3 Object Lock: every pack and settings object undeletable for N days (the bucket must have Object Lock)")
	f.StringVar(&r.lockMode, "lock-mode", "governance", "S3 Object Lock mode: governance (an account with the bypass permission may delete) or compliance (nobody may)")
}

// config is the remote the flags describe (nil without --s3).
func (r remoteFlags) config() (*vault.RemoteConfig, error) {
	if r.url == "" {
		if r.lockDays != 0 {
			return nil, usageErr("--lock-days needs --s3: a local storage has no object lock")
		}
		return nil, nil
	}
	rest, ok := strings.CutPrefix(r.url, "s3://")
	if !ok {
		return nil, usageErr("--s3 %q: want s3://BUCKET or s3://BUCKET/PREFIX", r.url)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, usageErr("--s3 %q: no bucket", r.url)
	}
	for _, part := range strings.Split(prefix, "/") {
		if part == ".." || part == "." {
			return nil, usageErr("--s3 %q: the prefix must not hold . or .. parts", r.url)
		}
	}
	c := &vault.RemoteConfig{Kind: s3store.Kind, Endpoint: r.endpoint, Bucket: bucket, Prefix: strings.Trim(prefix, "/"), Region: r.region, Insecure: r.insecure, CAFile: r.caFile}
	if r.lockDays != 0 {
		c.Lock = &vault.LockPolicy{Mode: r.lockMode, Days: r.lockDays}
		if err := c.Lock.Validate(); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	return c, nil
}
