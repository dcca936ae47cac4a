package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// memRemote is an object store in memory that keeps locks as S3 does:
// a locked object's deletion is refused until its date. down makes every
// request fail, as a server that is gone.
type memRemote struct {
	mu      sync.Mutex
	objects map[string][]byte
	until   map[string]time.Time
	down    bool
	// refusePuts fails writes only (a bucket the credentials may read).
	refusePuts bool
	puts       int
}

func newMemRemote() *memRemote {
	return &memRemote{objects: map[string][]byte{}, until: map[string]time.Time{}}
}

var errDown = errors.New("connection refused")

func (m *memRemote) Put(_ context.Context, name string, body io.Reader, size int64, retainUntil time.Time) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down || m.refusePuts {
		return "", errDown
	}
	if int64(len(b)) != size {
		return "", fmt.Errorf("put %s: %d bytes, said %d", name, len(b), size)
	}
	// A versioned bucket: a new version over a locked one is allowed
	// (the locked one stays); this store keeps only the newest.
	m.objects[name], m.puts = b, m.puts+1
	if !retainUntil.IsZero() {
		m.until[name] = retainUntil
	}
	return "v1", nil
}

func (m *memRemote) Get(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	b, ok := m.objects[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(b), nil
}

func (m *memRemote) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	b, err := m.Get(ctx, name)
	if err != nil {
		return err
	}
	if off+int64(len(p)) > int64(len(b)) {
		return io.ErrUnexpectedEOF
	}
	copy(p, b[off:])
	return nil
}

func (m *memRemote) List(_ context.Context, prefix string, fn func(string, int64) error) error {
	m.mu.Lock()
	if m.down {
		m.mu.Unlock()
		return errDown
	}
	var names []string
	for n := range m.objects {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	sizes := map[string]int64{}
	for _, n := range names {
		sizes[n] = int64(len(m.objects[n]))
	}
	m.mu.Unlock()
	for _, n := range names {
		if err := fn(n, sizes[n]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memRemote) Delete(_ context.Context, name, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errDown
	}
	if u, ok := m.until[name]; ok && time.Now().Before(u) {
		return fmt.Errorf("delete %s: %w", name, ErrRetained)
	}
	if _, ok := m.objects[name]; !ok {
		return fs.ErrNotExist
	}
	delete(m.objects, name)
	return nil
}

func (m *memRemote) Locking(context.Context) (bool, error) { return true, nil }
func (m *memRemote) Where() string                         { return "mem://test" }

func (m *memRemote) packs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for name := range m.objects {
		if strings.HasPrefix(name, "data/") {
			n++
		}
	}
	return n
}

// useMemRemote registers a fresh in-memory store as the "mem" kind.
func useMemRemote(t *testing.T) *memRemote {
	m := newMemRemote()
	kind := "mem-" + strings.ReplaceAll(t.Name(), "/", "-")
	RegisterRemote(kind, func(RemoteConfig) (Remote, error) { return m, nil })
	return m
}

func memConfig(t *testing.T, lock *LockPolicy) *RemoteConfig {
	return &RemoteConfig{Kind: "mem-" + strings.ReplaceAll(t.Name(), "/", "-"), Endpoint: "mem", Bucket: "b", Lock: lock}
}

// A storage in object storage: sealed packs go up and leave the local
// directory, reads come from the store, a new directory attached to the
// same store rebuilds the index from its packs and reads everything;
// prune leaves locked packs (and counts them); a store that is down makes
// Seal fail, and the sealed pack goes up at the next open.
func TestObjectStorage(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprint("encrypted=", encrypted), func(t *testing.T) {
			m := useMemRemote(t)
			var pw []byte
			if encrypted {
				pw = []byte("pw")
			}
			dir := t.TempDir()
			v, _, err := Create(dir, CreateOptions{Password: pw, KDF: cheap, Remote: memConfig(t, &LockPolicy{Mode: "compliance", Days: 1}),
				Retention: domain.Retention{KeepVersions: 1}})
			if err != nil {
				t.Fatal(err)
			}
			v.packSize = 64 << 10
			put := func(ck string, n int) {
				for i := range n {
					if _, err := v.Put(key("a@x", fmt.Sprint("i", i), ck), message(uint64(i), randomBytes(uint64(i)+uint64(ck[1]-'0')*1000, 20<<10))); err != nil {
						t.Fatal(err)
					}
				}
			}
			put("c1", 20)
			if err := v.Seal(); err != nil {
				t.Fatal(err)
			}
			if n := countPackFiles(t, dir); n != 0 {
				t.Fatalf("%d pack files left local after Seal", n)
			}
			if m.packs() < 3 {
				t.Fatalf("%d packs in the store, want several (64 KiB packs)", m.packs())
			}
			ver, err := v.Lookup(VersionID("graph:t", "a@x", "f1", "i7", "c1"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := v.Read(ver); err != nil || !bytes.Equal(got, message(7, randomBytes(7+1000, 20<<10))) {
				t.Fatalf("read from the store: %v", err)
			}
			put("c2", 20) // every item changes: the first packs hold only old versions
			if err := v.Seal(); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Prune(time.Now(), false, func(Pruned) error { return nil }); !errors.Is(err, ErrInUse) {
				t.Fatalf("prune of a storage open beside others: %v", err)
			}
			v.Close()
			if v, err = OpenWith(dir, OpenOptions{Password: pw, Exclusive: true}); err != nil {
				t.Fatal(err)
			}
			before := m.packs()
			res, err := v.Prune(time.Now(), false, func(Pruned) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if res.Versions != 20 || res.Locked == 0 || res.Unreferenced != 0 || m.packs() < before {
				t.Fatalf("prune under lock: %+v, packs %d -> %d", res, before, m.packs())
			}
			vr, err := v.Verify(true, func(p Problem) {
				if p.Damage || p.Lost || !strings.Contains(p.Problem, "locked until") {
					t.Errorf("verify: %+v", p)
				}
			})
			if err != nil || vr.DamagedItems+vr.DamagedChunks+vr.DamagedPacks != 0 {
				t.Fatalf("verify: %+v %v", vr, err)
			}
			v.Close()
			if v, err = OpenWith(dir, OpenOptions{Password: pw}); err != nil {
				t.Fatal(err)
			}

			// The store is down when the run's last pack is sealed: Seal
			// fails, the pack stays local and sealed, and goes up when the
			// storage is opened again.
			put("c3", 2)
			m.mu.Lock()
			m.down = true
			m.mu.Unlock()
			if err := v.Seal(); err == nil || !strings.Contains(err.Error(), "mem://test") {
				t.Fatalf("Seal with the store down: %v", err)
			}
			v.Close()
			if countPackFiles(t, dir) == 0 {
				t.Fatal("the pack that could not go up is not kept locally")
			}
			m.mu.Lock()
			m.down = false
			m.mu.Unlock()
			v, err = Open(dir, pw)
			if err != nil {
				t.Fatal(err)
			}
			if n := countPackFiles(t, dir); n != 0 {
				t.Fatalf("%d packs still local after the open", n)
			}
			v.Close()

			// Another machine: a new directory attached to the store.
			other := filepath.Join(t.TempDir(), "other")
			if err := Attach(other, *memConfig(t, nil)); err != nil {
				t.Fatal(err)
			}
			w, err := OpenWith(other, OpenOptions{Password: pw, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			st, err := w.Stats()
			if err != nil || st.Versions != 22 {
				t.Fatalf("attached storage: %+v %v (want the 20 kept versions and 2 new)", st, err)
			}
			ver, err = w.Lookup(VersionID("graph:t", "a@x", "f1", "i1", "c3"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := w.Read(ver); err != nil || !bytes.Equal(got, message(1, randomBytes(1+3000, 20<<10))) {
				t.Fatalf("read from the attached storage: %v", err)
			}
		})
	}
}

// A lock asked of a store that cannot lock, and a second storage in a
// place that holds one, are refused before anything is written.
func TestObjectStorageRefusals(t *testing.T) {
	useMemRemote(t)
	if _, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, &LockPolicy{Mode: "forever", Days: 1})}); err == nil || !strings.Contains(err.Error(), "lock mode") {
		t.Fatalf("a bad lock mode: %v", err)
	}
	v, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if _, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, nil)}); err == nil || !strings.Contains(err.Error(), "exists there already") {
		t.Fatalf("a second storage in the same place: %v", err)
	}
	if err := Attach(filepath.Join(t.TempDir(), "x"), RemoteConfig{Kind: "nothing-like-it", Bucket: "b"}); err == nil {
		t.Fatal("an unknown kind of store was attached")
	}
}

func countPackFiles(t *testing.T, dir string) int {
	n := 0
	_ = filepath.WalkDir(filepath.Join(dir, "data"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// Two writers share one object storage, each with its own directory (the
// workers of a cluster): each adopts what the other stored, so both list
// everything, a version the other stored is not stored again, and both
// verify clean.
func TestObjectStorageTwoWriters(t *testing.T) {
	useMemRemote(t)
	a, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	otherDir := filepath.Join(t.TempDir(), "b")
	if err := Attach(otherDir, *memConfig(t, nil)); err != nil {
		t.Fatal(err)
	}
	b, err := Open(otherDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	shared := randomBytes(99, 64<<10) // one attachment in both writers' items
	for i := range 10 {
		if _, err := a.Put(key("a@x", fmt.Sprint("i", i), "c1"), message(uint64(i), shared)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(key("b@x", fmt.Sprint("i", i), "c1"), message(uint64(i+100), shared)); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []*Vault{a, b} {
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	for name, w := range map[string]*Vault{"a": a, "b": b} {
		n, err := w.Refresh()
		if err != nil || n != 1 {
			t.Fatalf("%s adopted %d packs: %v", name, n, err)
		}
		st, err := w.Stats()
		if err != nil || st.Versions != 20 {
			t.Fatalf("%s: %+v %v", name, st, err)
		}
		if ok, err := w.Has(key("a@x", "i3", "c1")); !ok || err != nil {
			t.Fatalf("%s does not have a's item: %v", name, err)
		}
		res, err := w.Put(key("b@x", "i4", "c1"), message(104, shared))
		if err != nil || !res.Existed {
			t.Fatalf("%s stored b's version again: %+v %v", name, res, err)
		}
		vr, err := w.Verify(true, func(p Problem) {
			if p.Damage || p.Lost {
				t.Errorf("%s verify: %+v", name, p)
			}
		})
		if err != nil || vr.Versions != 20 {
			t.Fatalf("%s verify: %+v %v", name, vr, err)
		}
		if n, err := w.Refresh(); err != nil || n != 0 {
			t.Fatalf("%s adopted %d packs again: %v", name, n, err)
		}
	}
}

// A local storage's Seal syncs the pack being written and keeps writing
// it: a daemon's frequent small cycles share packs instead of leaving one
// small pack each.
func TestLocalSealKeepsThePack(t *testing.T) {
	v, _, err := Create(t.TempDir(), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Put(key("a@x", "i1", "c1"), message(1, nil)); err != nil {
		t.Fatal(err)
	}
	first := v.currentPack()
	if err := v.Seal(); err != nil || v.currentPack() != first || first == "" {
		t.Fatalf("seal: %v; pack %q then %q", err, first, v.currentPack())
	}
	if _, err := v.Put(key("a@x", "i2", "c1"), message(2, nil)); err != nil {
		t.Fatal(err)
	}
	if v.currentPack() != first || countPackFiles(t, v.Dir()) != 1 {
		t.Fatalf("a write after the seal started pack %q (%d files)", v.currentPack(), countPackFiles(t, v.Dir()))
	}
}

// A storage whose settings cannot be written to the bucket is not
// created, and leaves nothing in its directory: the same add, once the
// bucket takes writes, creates it.
func TestObjectStorageCreateFailsClean(t *testing.T) {
	m := useMemRemote(t)
	m.refusePuts = true
	dir := t.TempDir()
	if _, _, err := Create(dir, CreateOptions{Remote: memConfig(t, nil)}); err == nil || !strings.Contains(err.Error(), "mem://test") {
		t.Fatalf("create with writes refused: %v", err)
	}
	if Exists(dir) {
		t.Fatal("a failed create left a storage behind")
	}
	m.refusePuts = false
	v, _, err := Create(dir, CreateOptions{Remote: memConfig(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
}
