// Package s3store keeps a storage's packs and settings in an
// S3-compatible object store (AWS S3, or any server that speaks its API),
// through the MinIO Go client. With S3 Object Lock each object is written
// with a retention date, so that nobody (compliance mode) or only an
// account with the bypass permission (governance mode) can delete or
// overwrite it before then.
//
// Credentials are not part of a storage's settings: they come from the
// standard AWS environment variables (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or the AWS shared credentials
// file, as for every other S3 tool.
package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mailvault/mailvault/adapters/vault"
)

// Kind is the remote kind this package serves.
const Kind = "s3"

// Store is one bucket (and key prefix) of an S3-compatible server.
type Store struct {
	client *minio.Client
	cfg    vault.RemoteConfig
	mode   minio.RetentionMode
}

// Open connects to the place c describes. It sends no request.
func Open(c vault.RemoteConfig) (vault.Remote, error) {
	if c.Endpoint == "" || c.Bucket == "" {
		return nil, errors.New("s3 storage: endpoint and bucket are required")
	}
	if strings.Contains(c.Endpoint, "/") {
		return nil, fmt.Errorf("s3 storage: endpoint %q: want host or host:port, without a scheme or path", c.Endpoint)
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}})
	tr, err := minio.DefaultTransport(!c.Insecure)
	if err != nil {
		return nil, err
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3 storage: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 storage: CA file %s holds no PEM certificate", c.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cl, err := minio.New(c.Endpoint, &minio.Options{Creds: creds, Secure: !c.Insecure, Region: c.Region, Transport: tr, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, fmt.Errorf("s3 storage %s: %w", c.Endpoint, err)
	}
	s := &Store{client: cl, cfg: c}
	if c.Lock != nil {
		s.mode = minio.Governance
		if c.Lock.Mode == "compliance" {
			s.mode = minio.Compliance
		}
	}
	return s, nil
}

func (s *Store) key(name string) string {
	p := strings.Trim(s.cfg.Prefix, "/")
	if p == "" {
		return name
	}
	return p + "/" + name
}

// Where names the bucket and prefix for messages.
func (s *Store) Where() string {
	w := "s3://" + s.cfg.Bucket
	if p := strings.Trim(s.cfg.Prefix, "/"); p != "" {
		w += "/" + p
	}
	return w + " at " + s.cfg.Endpoint
}

// Put stores an object in one request, locked until retainUntil when it
// is set.
func (s *Store) Put(ctx context.Context, name string, body io.Reader, size int64, retainUntil time.Time) (string, error) {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: size < 5<<30, SendContentMd5: true}
	if !retainUntil.IsZero() && s.mode != "" {
		opts.Mode, opts.RetainUntilDate = s.mode, retainUntil.UTC().Truncate(time.Second).Add(time.Second)
	}
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(name), body, size, opts)
	if err != nil {
		return "", s.wrap("put", name, err)
	}
	return info.VersionID, nil
}

// Get reads a whole object.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("get", name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, s.wrap("get", name, err)
	}
	return b, nil
}

// ReadAt reads len(p) bytes at off with one ranged GET.
func (s *Store) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.key(name), opts)
	if err != nil {
		return s.wrap("read", name, err)
	}
	defer obj.Close()
	n, err := io.ReadFull(obj, p)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("read %s: %d of %d bytes at %d: %w", name, n, len(p), off, io.ErrUnexpectedEOF)
	case isRange(err): // the range starts past the object's end
		return fmt.Errorf("read %s at %d: %w", name, off, io.ErrUnexpectedEOF)
	}
	return s.wrap("read", name, err)
}

func isRange(err error) bool {
	return minio.ToErrorResponse(err).Code == "InvalidRange"
}

// List calls fn for each object under prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	base := s.key("")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.key(prefix), Recursive: true}) {
		if obj.Err != nil {
			return s.wrap("list", prefix, obj.Err)
		}
		if err := fn(strings.TrimPrefix(obj.Key, base), obj.Size); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes a version of an object for good. Without a version it
// removes the current one (a plain delete in a versioned bucket only adds
// a delete marker and keeps the data: that is not a deletion).
func (s *Store) Delete(ctx context.Context, name, version string) error {
	if version == "" {
		info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(name), minio.StatObjectOptions{})
		if err != nil {
			return s.wrap("delete", name, err)
		}
		version = info.VersionID
	}
	err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(name), minio.RemoveObjectOptions{VersionID: version})
	if err == nil {
		return nil
	}
	if minio.ToErrorResponse(err).Code == "AccessDenied" {
		// Refused: by the object's lock, or for want of permission.
		// The lock is read from the object's HEAD, which every server
		// that locks answers as AWS documents.
		info, serr := s.client.StatObject(ctx, s.cfg.Bucket, s.key(name), minio.StatObjectOptions{VersionID: version})
		if serr == nil {
			mode := info.Metadata.Get("X-Amz-Object-Lock-Mode")
			until, terr := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
			if mode != "" && terr == nil && time.Now().Before(until) {
				return fmt.Errorf("delete %s in %s: %s lock until %s: %w", name, s.Where(), strings.ToLower(mode), until.UTC().Format(time.RFC3339), vault.ErrRetained)
			}
		}
	}
	return s.wrap("delete", name, err)
}

// Locking reports whether the bucket has Object Lock enabled.
func (s *Store) Locking(ctx context.Context) (bool, error) {
	enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.cfg.Bucket)
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "ObjectLockConfigurationNotFoundError" || code == "ObjectLockConfigurationNotFound" {
			return false, nil
		}
		return false, s.wrap("read the object lock setting of", "", err)
	}
	return enabled == "Enabled", nil
}

// wrap names the operation and the place, and makes a missing object or
// bucket fs.ErrNotExist. MinIO's errors carry the server's code and
// message, never the credentials.
func (s *Store) wrap(op, name string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NoSuchVersion":
		return fmt.Errorf("%s %s in %s: %w", op, name, s.Where(), fs.ErrNotExist)
	case "NoSuchBucket":
		// Not "not found": a storage whose bucket is gone has lost
		// everything, and a new one needs its bucket made first.
		return fmt.Errorf("%s %s: bucket %s does not exist at %s", op, name, s.cfg.Bucket, s.cfg.Endpoint)
	}
	if resp.StatusCode == http.StatusNotFound && resp.Code == "" {
		return fmt.Errorf("%s %s in %s: %w", op, name, s.Where(), fs.ErrNotExist)
	}
	return fmt.Errorf("%s %s in %s: %w", op, name, s.Where(), err)
}
