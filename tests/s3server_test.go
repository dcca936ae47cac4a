package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mailvault/mailvault/adapters/s3store"
	"github.com/mailvault/mailvault/adapters/vault"
)

// The S3 server the tests run on loopback is the Versity S3 Gateway
// (github.com/versity/versitygw, Apache-2.0) over a directory: a real S3
// implementation written in Go, installed from the Go module proxy like
// the project's own modules, with bucket versioning and S3 Object Lock
// (retention modes, refused deletions) on its POSIX backend. MinIO's server
// is AGPL, and Debian's S3 servers (Ceph's RADOS gateway) need a cluster.
const (
	s3Access = "mailvault-test-access"
	s3Secret = "mailvault-test-S3-secret-key"
)

// tool is a server program the tests run, installed from the Go module
// proxy when it is not on the PATH.
type tool struct {
	name, module, version, env string
	once                       sync.Once
	path                       string
	err                        error
}

var (
	versitygw  = &tool{name: "versitygw", module: "github.com/versity/versitygw/cmd/versitygw", version: "v1.8.0", env: "MAILVAULT_S3_SERVER"}
	natsServer = &tool{name: "nats-server", module: "github.com/nats-io/nats-server/v2", version: "v2.15.3", env: "MAILVAULT_NATS_SERVER"}
)

// binary finds the tool: $ENV, the PATH (CI installs it), or one built
// once into the user's cache.
func (tl *tool) binary(t testing.TB) string {
	t.Helper()
	tl.once.Do(func() {
		if p := os.Getenv(tl.env); p != "" {
			tl.path = p
			return
		}
		if p, err := exec.LookPath(tl.name); err == nil {
			tl.path = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			tl.err = err
			return
		}
		bin := filepath.Join(cache, "mailvault-test-tools", tl.name+"-"+tl.version)
		tl.path = filepath.Join(bin, tl.name)
		if _, err := os.Stat(tl.path); err == nil {
			return
		}
		install := exec.Command("go", "install", tl.module+"@"+tl.version)
		install.Env = append(os.Environ(), "GOBIN="+bin)
		install.Stdout, install.Stderr = os.Stderr, os.Stderr
		tl.err = install.Run()
	})
	mustf(t, tl.err == nil, "install %s (%s@%s): %v", tl.name, tl.module, tl.version, tl.err)
	return tl.path
}

// s3Server is a versitygw process serving a directory on loopback.
type s3Server struct {
	bin, addr, root, versions string
	cmd                       *exec.Cmd
	logs                      *os.File
}

func startS3(t testing.TB) *s3Server {
	t.Helper()
	vault.RegisterRemote(s3store.Kind, s3store.Open) // for the tests' own storage reads
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(t, err == nil, "listen: %v", err)
	addr := l.Addr().String()
	l.Close()
	s := &s3Server{bin: versitygw.binary(t), addr: addr, root: filepath.Join(dir, "root"), versions: filepath.Join(dir, "versions")}
	for _, d := range []string{s.root, s.versions} {
		mustf(t, os.MkdirAll(d, 0o700) == nil, "mkdir %s", d)
	}
	s.logs, err = os.Create(filepath.Join(dir, "versitygw.log"))
	mustf(t, err == nil, "log file: %v", err)
	t.Cleanup(func() {
		s.stop()
		s.logs.Close()
		if t.Failed() {
			b, _ := os.ReadFile(s.logs.Name())
			t.Logf("S3 server log:\n%s", tail(string(b), 4000))
		}
	})
	s.start(t)
	// mailvault finds its S3 credentials where every S3 tool does.
	t.Setenv("AWS_ACCESS_KEY_ID", s3Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials-file"))
	return s
}

// start runs the server and waits until it answers.
func (s *s3Server) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "--port", s.addr, "--access", s3Access, "--secret", s3Secret, "--quiet",
		"posix", "--versioning-dir", s.versions, s.root)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	mustf(t, s.cmd.Start() == nil, "start the S3 server")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.client(t).ListBuckets(ctx)
		cancel()
		if err == nil {
			return
		}
		mustf(t, time.Now().Before(deadline), "the S3 server did not answer in a minute: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
}

// stop kills the server the hard way (a crash, not a shutdown).
func (s *s3Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *s3Server) client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	mustf(t, err == nil, "S3 client: %v", err)
	c.SetAppInfo("mailvault-tests", "1")
	return c
}

func (s *s3Server) makeBucket(t testing.TB, name string, lock bool) {
	t.Helper()
	err := s.client(t).MakeBucket(context.Background(), name, minio.MakeBucketOptions{ObjectLocking: lock})
	mustf(t, err == nil, "make bucket %s: %v", name, err)
}

// objects lists the keys under prefix with their sizes.
func (s *s3Server) objects(t testing.TB, bucket, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for o := range s.client(t).ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		mustf(t, o.Err == nil, "list %s/%s: %v", bucket, prefix, o.Err)
		out[o.Key] = o.Size
	}
	return out
}

// packObjects counts the pack objects under a storage's prefix.
func (s *s3Server) packObjects(t testing.TB, bucket, prefix string) []string {
	var packs []string
	for k := range s.objects(t, bucket, prefix+"/data/") {
		packs = append(packs, k)
	}
	return packs
}

// packBytes sums the sizes of a storage's pack objects.
func (s *s3Server) packBytes(t testing.TB, bucket, prefix string) int64 {
	var n int64
	for _, size := range s.objects(t, bucket, prefix+"/data/") {
		n += size
	}
	return n
}

// s3Args are the storage add flags for bucket/prefix on this server.
func (s *s3Server) s3Args(bucket, prefix string) []string {
	return []string{"--s3", fmt.Sprintf("s3://%s/%s", bucket, prefix), "--s3-endpoint", s.addr, "--s3-insecure", "--s3-region", "us-east-1"}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// localPacks counts pack files in a storage's local directory.
func localPacks(t testing.TB, dir string) int {
	n := 0
	_ = filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}
