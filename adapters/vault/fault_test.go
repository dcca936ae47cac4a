package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

// faultStorage builds a storage with every kind of pack entry in several
// packs (chunks shared between items, versions, deletion marks, pruned
// versions and their tombstones), closes it cleanly and returns the content
// of every version it holds.
func faultStorage(t *testing.T, dir string, pw []byte) map[string][]byte {
	t.Helper()
	v, _, err := Create(dir, CreateOptions{Password: pw, KDF: cheap})
	if err != nil {
		t.Fatal(err)
	}
	v.packSize = 96 << 10
	shared := randomBytes(77, 40<<10)
	for i := range 60 {
		mb := []string{"a@x", "b@x"}[i%2]
		body := randomBytes(uint64(i), 1000+i*97)
		if i%5 == 0 {
			body = append(body, shared...) // deduplicated across items
		}
		for _, ck := range []string{"c1", "c2"}[:1+i%2] {
			if _, err := v.Put(key(mb, fmt.Sprint("i", i), ck), message(uint64(i), append([]byte(ck), body...))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // distinct stored-at times for retention; not a timing assertion
		}
		if i%7 == 0 {
			if err := v.MarkDeleted(key(mb, fmt.Sprint("i", i), ""), time.Now().AddDate(0, 0, -1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := v.SetRetention(domain.Retention{KeepVersions: 1}); err != nil {
		t.Fatal(err)
	}
	if res, err := v.Prune(time.Now(), false, func(Pruned) error { return nil }); err != nil || res.Versions == 0 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if err := v.SetRetention(domain.Retention{}); err != nil {
		t.Fatal(err)
	}
	contents := map[string][]byte{}
	if err := v.Walk("", func(ver Version) error {
		b, err := v.Read(ver)
		contents[ver.ID] = b
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	return contents
}

// copyTree copies a storage with the files' modification times, which the
// index's checksum record holds.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, 0o600); err != nil {
			return err
		}
		info, _ := d.Info()
		return os.Chtimes(target, info.ModTime(), info.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func storageFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// Every single-file fault, in every file of a storage: verify reports
// damage and names every item whose content is lost; repair loses exactly
// those, and afterwards the storage verifies clean and every other version
// reads back byte for byte. Nothing is lost silently.
func TestEverySingleFileFaultIsFoundAndRepaired(t *testing.T) {
	faults := []string{"delete", "truncate", "flip-first", "flip-random", "flip-random", "flip-last"}
	encryptions := []bool{false, true}
	if raceEnabled {
		faults, encryptions = []string{"truncate", "flip-random"}, []bool{true}
	}
	for _, encrypted := range encryptions {
		var pw []byte
		if encrypted {
			pw = []byte("pw")
		}
		master := t.TempDir()
		contents := faultStorage(t, master, pw)
		files := storageFiles(t, master)
		if packs := countPrefix(files, "data"+string(filepath.Separator)); packs < 4 {
			t.Fatalf("only %d packs: %v", packs, files)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for _, file := range files {
			for _, fault := range faults {
				name := fmt.Sprintf("encrypted=%v/%s/%s", encrypted, file, fault)
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					copyTree(t, master, dir)
					injectFault(t, filepath.Join(dir, file), fault, rng)
					checkFaultRepaired(t, dir, pw, contents)
				})
			}
		}
	}
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func injectFault(t *testing.T, path, fault string, rng *rand.Rand) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	switch fault {
	case "delete":
		os.Remove(path)
		return
	case "truncate":
		b = b[:len(b)/2]
	default:
		if len(b) == 0 {
			t.Skip("empty file")
		}
		i := map[string]int{"flip-first": 0, "flip-last": len(b) - 1, "flip-random": rng.IntN(len(b))}[fault]
		b[i] ^= byte(1 + rng.IntN(255))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Keep the modification time: damage that no write announces (bit
	// rot, a restored copy) must be found too.
	os.Chtimes(path, info.ModTime(), info.ModTime())
}

func checkFaultRepaired(t *testing.T, dir string, pw []byte, contents map[string][]byte) {
	t.Helper()
	v, err := OpenWith(dir, OpenOptions{Password: pw, ReadOnly: true, ForCheck: true})
	if err != nil {
		t.Fatalf("open for check: %v", err)
	}
	named := map[string]bool{}
	var problems []string
	res, err := v.Verify(true, func(p Problem) {
		problems = append(problems, p.Problem)
		if p.Lost {
			named[p.Item.ID] = true
		}
	})
	v.Close()
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Healthy() {
		t.Fatalf("verify found nothing: %+v %v", res, problems)
	}
	if len(named) != res.DamagedItems {
		t.Fatalf("verify counts %d damaged items, names %d", res.DamagedItems, len(named))
	}

	v, err = OpenWith(dir, OpenOptions{Password: pw, ForCheck: true})
	if err != nil {
		t.Fatalf("open for repair: %v", err)
	}
	lost := map[string]bool{}
	rep, err := v.Repair(false, func(ver Version) error {
		lost[ver.ID] = true
		return nil
	})
	v.Close()
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if fmt.Sprint(sortedKeys(lost)) != fmt.Sprint(sortedKeys(named)) {
		t.Fatalf("repair lost %v, verify named %v (%+v)", sortedKeys(lost), sortedKeys(named), rep)
	}

	v, err = Open(dir, pw)
	if err != nil {
		t.Fatalf("open after repair: %v", err)
	}
	defer v.Close()
	var after []string
	if res, err := v.Verify(true, func(p Problem) {
		if p.Damage {
			after = append(after, p.Problem)
		}
	}); err != nil || !res.Healthy() || len(after) > 0 {
		t.Fatalf("verify after repair: %+v %v %v", res, after, err)
	}
	for id, want := range contents {
		ver, err := v.Lookup(id)
		if lost[id] {
			if !errors.Is(err, ErrNoVersion) {
				t.Fatalf("lost version %s still listed: %v", id, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("version %s gone though not named lost: %v", id, err)
		}
		got, err := v.Read(ver)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("version %s reads back wrong: %v", id, err)
		}
	}
	if st, _ := v.Stats(); st.Versions != len(contents)-len(lost) {
		t.Fatalf("%d versions after repair, want %d", st.Versions, len(contents)-len(lost))
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestBatchEntriesAreInThePackBeforeTheIndex: a batch's entries are
// buffered and written together, and they are in the pack file when
// PutBatch returns, whatever the index now refers to (a process killed
// after it loses nothing the index knows of).
func TestBatchEntriesAreInThePackBeforeTheIndex(t *testing.T) {
	dir := t.TempDir()
	v, _, err := Create(dir, CreateOptions{Password: []byte("pw"), KDF: cheap})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.packSize = 64 << 10 // several packs: a batch crosses pack boundaries
	var keys []domain.ItemKey
	var contents [][]byte
	for i := range 40 {
		keys = append(keys, key("a@x", fmt.Sprint("i", i), "c1"))
		contents = append(contents, message(uint64(i), randomBytes(uint64(i), 3000)))
	}
	if _, err := v.PutBatch(keys, contents); err != nil {
		t.Fatal(err)
	}
	v.packs.mu.Lock()
	id, size, pending := v.packs.id, v.packs.size, len(v.packs.pending)
	v.packs.mu.Unlock()
	info, err := os.Stat(v.packPath(id))
	if err != nil {
		t.Fatal(err)
	}
	if pending != 0 || info.Size() != size {
		t.Fatalf("after PutBatch: %d bytes still buffered, pack file %d bytes of %d", pending, info.Size(), size)
	}
	for i, k := range keys {
		ver, err := v.Lookup(VersionID(k.Source, k.Mailbox, k.FolderID, k.ItemID, k.ChangeKey))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := v.Read(ver); err != nil || !bytes.Equal(got, contents[i]) {
			t.Fatalf("item %d: %v", i, err)
		}
	}
}
