package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mailvault/mailvault/domain"
)

func putLock(t *testing.T, m *memRemote, name string, rec lockRecord) {
	t.Helper()
	b, _ := json.Marshal(rec)
	if _, err := m.Put(context.Background(), locksPrefix+name, bytes.NewReader(b), int64(len(b)), time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// attachAnother attaches a new directory to the test's store (another
// machine) and opens it.
func attachAnother(t *testing.T) (string, *Vault) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	if err := Attach(dir, *memConfig(t, nil)); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, v
}

func (m *memRemote) names(prefix string) []string {
	var out []string
	_ = m.List(context.Background(), prefix, func(n string, _ int64) error {
		out = append(out, n)
		return nil
	})
	return out
}

// Processes sharing a storage in object storage: any number of them may
// have it open together; a prune (exclusive) is refused while another
// has it open, and everything else while a prune has it; a lock left by
// a process that stopped is taken as stale after lockStaleAfter and
// removed by the next prune; a lock that does not read counts as live;
// a closed storage leaves no lock behind.
func TestObjectStorageLocks(t *testing.T) {
	m := useMemRemote(t)
	a, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	bDir, b := attachAnother(t)
	if n := len(m.names(locksPrefix)); n != 2 {
		t.Fatalf("%d locks for two open storages", n)
	}
	b.Close()
	if _, err := OpenWith(bDir, OpenOptions{Exclusive: true}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "a backup, restore or check") {
		t.Fatalf("prune beside an open storage: %v", err)
	}
	if n := len(m.names(locksPrefix)); n != 1 {
		t.Fatalf("a refused prune left its lock: %d locks", n)
	}
	a.Close()
	if n := len(m.names(locksPrefix)); n != 0 {
		t.Fatalf("closed storages left %d locks", n)
	}
	p, err := OpenWith(bDir, OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []OpenOptions{{}, {ReadOnly: true}} {
		if _, err := OpenWith(bDir+"-not-there", o); err == nil {
			t.Fatal("opened a directory that is no storage")
		}
		if _, err := OpenWith(a.Dir(), o); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "a prune or repair") {
			t.Fatalf("open %+v during a prune: %v", o, err)
		}
	}
	p.Close()

	// A stopped process's locks: stale ones go with the next prune; a
	// live one (or one that does not read) refuses it.
	putLock(t, m, "stale", lockRecord{Holder: "gone pid 1", Time: time.Now().Add(-lockStaleAfter - time.Minute)})
	putLock(t, m, "stale-x", lockRecord{Holder: "gone pid 2", Exclusive: true, Time: time.Now().Add(-2 * lockStaleAfter)})
	v, err := OpenWith(a.Dir(), OpenOptions{})
	if err != nil {
		t.Fatalf("a stale exclusive lock refused a backup: %v", err)
	}
	v.Close()
	p, err = OpenWith(a.Dir(), OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatalf("stale locks refused a prune: %v", err)
	}
	if got := m.names(locksPrefix); len(got) != 1 {
		t.Fatalf("locks during the prune: %v (the stale ones should be gone)", got)
	}
	p.Close()
	m.mu.Lock()
	m.objects[locksPrefix+"garbled"] = []byte("{not json")
	m.mu.Unlock()
	if _, err := OpenWith(a.Dir(), OpenOptions{}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("an unreadable lock: %v", err)
	}
}

// A lock renewed in the background stays fresh; one that could not be
// renewed for too long stops writing (Seal and Refresh fail), since a
// prune may have taken it for a stopped process's.
func TestObjectStorageLockRenewal(t *testing.T) {
	renew, stale := lockRenewEvery, lockStaleAfter
	lockRenewEvery, lockStaleAfter = 10*time.Millisecond, time.Hour
	defer func() { lockRenewEvery, lockStaleAfter = renew, stale }()
	m := useMemRemote(t)
	v, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first := m.names(locksPrefix)
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := m.names(locksPrefix)
		if len(now) == 1 && now[0] != first[0] {
			break // renewed: a new object, the old one removed
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock was not renewed: %v then %v", first, now)
		}
		time.Sleep(5 * time.Millisecond)
	}
	v.lock.mu.Lock()
	v.lock.renewed = time.Now().Add(-2 * time.Hour) // as if every renewal failed
	v.lock.mu.Unlock()
	m.mu.Lock()
	m.refusePuts = true
	m.mu.Unlock()
	if _, err := v.Put(key("a@x", "i1", "c1"), []byte("Subject: x\r\n\r\nbody")); err != nil {
		t.Fatal(err)
	}
	if err := v.Seal(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("seal without a live lock: %v", err)
	}
	if _, err := v.Refresh(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("refresh without a live lock: %v", err)
	}
	m.mu.Lock()
	m.refusePuts = false
	m.mu.Unlock()
}

// One process prunes a storage another process shares (both with their
// own directory and index): the other's index, which still points into
// the packs the prune deleted, takes the prune in when it opens the
// storage again (it is not refused as damaged): it lists what the prune
// kept, reads every item, verifies clean, finds stored what is stored,
// and its counts of references let its own later prune keep what lives.
// A pack missing without a prune's marker stays damage.
func TestObjectStoragePrunedByAnotherProcess(t *testing.T) {
	m := useMemRemote(t)
	aDir := t.TempDir()
	a, _, err := Create(aDir, CreateOptions{Remote: memConfig(t, nil), Retention: domain.Retention{KeepVersions: 1}})
	if err != nil {
		t.Fatal(err)
	}
	a.packSize = 48 << 10
	bDir, b := attachAnother(t)
	shared := randomBytes(7, 30<<10) // an attachment both writers' items carry
	content := func(mbx string, i int, ck string) []byte {
		return message(uint64(i)*100+uint64(ck[1]), append([]byte(mbx+ck), shared...))
	}
	for i := range 8 {
		if _, err := a.Put(key("a@x", fmt.Sprint("i", i), "c1"), content("a", i, "c1")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(key("b@x", fmt.Sprint("i", i), "c1"), content("b", i, "c1")); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []*Vault{a, b} {
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.Refresh(); err != nil || n == 0 {
		t.Fatalf("b adopted %d of a's packs: %v", n, err)
	}
	b.Close()
	// a's items all change: the first versions are pruned.
	if _, err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := a.Put(key("a@x", fmt.Sprint("i", i), "c2"), content("a", i, "c2")); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	a, err = OpenWith(aDir, OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	a.packSize = 48 << 10
	res, err := a.Prune(time.Now(), false, func(Pruned) error { return nil })
	if err != nil || res.Versions != 8 || res.Unreferenced == 0 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	a.Close()
	if got := m.names(rewritesPrefix); len(got) != 1 {
		t.Fatalf("rewrite markers after the prune: %v", got)
	}

	b, err = Open(bDir, nil)
	if err != nil {
		t.Fatalf("the other process after the prune: %v", err)
	}
	st, err := b.Stats()
	if err != nil || st.Versions != 16 {
		t.Fatalf("the other process's index after the prune: %+v %v (want 8 of a's newest and 8 of b's)", st, err)
	}
	for _, it := range []struct {
		mbx, ck string
		ok      bool
	}{{"a@x", "c2", true}, {"b@x", "c1", true}, {"a@x", "c1", false}} {
		for i := range 8 {
			ver, err := b.Lookup(VersionID("graph:t", it.mbx, "f1", fmt.Sprint("i", i), it.ck))
			if !it.ok {
				if err == nil {
					t.Fatalf("a pruned version is still listed: %s %s i%d", it.mbx, it.ck, i)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.Read(ver)
			if err != nil || !bytes.Equal(got, content(it.mbx[:1], i, it.ck)) {
				t.Fatalf("read %s i%d %s after the prune: %v", it.mbx, i, it.ck, err)
			}
		}
	}
	if r, err := b.Put(key("a@x", "i3", "c2"), content("a", 3, "c2")); err != nil || !r.Existed {
		t.Fatalf("a stored version stored again: %+v %v", r, err)
	}
	vr, err := b.Verify(true, func(p Problem) {
		if p.Damage || p.Lost {
			t.Errorf("verify after the prune: %+v", p)
		}
	})
	if err != nil || vr.Versions != 16 {
		t.Fatalf("verify: %+v %v", vr, err)
	}
	b.Close()
	// Its own prune keeps every live version.
	b, err = OpenWith(bDir, OpenOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := b.Prune(time.Now(), false, func(p Pruned) error { return fmt.Errorf("pruned %s", p.Version.ID) }); err != nil || res.Versions != 0 {
		t.Fatalf("the other process's prune: %+v %v", res, err)
	}
	if _, err := b.Verify(true, func(p Problem) {
		if p.Damage || p.Lost {
			t.Errorf("verify after its own prune: %+v", p)
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	// A pack deleted behind every process's back, with no marker: damage.
	packs := m.names("data/")
	m.mu.Lock()
	delete(m.objects, packs[0])
	m.mu.Unlock()
	if _, err := Open(bDir, nil); !errors.Is(err, ErrStorageDamaged) {
		t.Fatalf("a pack gone without a prune: %v", err)
	}
}

// A writer back after others stored much: their packs are adopted one at
// a time (memory holds one pack's records) and the references counted
// again afterwards, also after a crash between the two; the index then
// passes prune's own check, lists everything and finds it stored.
func TestObjectStorageAdoptsManyPacksOneAtATime(t *testing.T) {
	together := adoptTogetherBytes
	adoptTogetherBytes = 1
	defer func() { adoptTogetherBytes = together }()
	useMemRemote(t)
	a, _, err := Create(t.TempDir(), CreateOptions{Remote: memConfig(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.packSize = 40 << 10
	_, b := attachAnother(t)
	defer b.Close()
	shared := randomBytes(3, 24<<10)
	for i := range 24 {
		// Versions whose chunks (the shared attachment) are in an earlier
		// pack than their records.
		if _, err := a.Put(key("a@x", fmt.Sprint("i", i), "c1"), message(uint64(i), shared)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		st, err := b.Stats()
		if err != nil || st.Versions != 24 {
			t.Fatalf("%s: %+v %v", when, st, err)
		}
		if _, err := b.Prune(time.Now(), true, func(Pruned) error { return nil }); err != nil {
			t.Fatalf("%s: the index fails prune's check: %v", when, err)
		}
		if r, err := b.Put(key("a@x", "i5", "c1"), message(5, shared)); err != nil || !r.Existed {
			t.Fatalf("%s: stored again: %+v %v", when, r, err)
		}
	}
	n, err := b.Refresh()
	if err != nil || n < 3 {
		t.Fatalf("adopted %d packs: %v", n, err)
	}
	check("after adopting one pack at a time")
	if pending, err := b.recountPending(); err != nil || pending {
		t.Fatalf("recount still pending: %v %v", pending, err)
	}
	// A crash after the adoption, before the count: the next Refresh
	// counts.
	if err := b.setRecountPending(true); err != nil {
		t.Fatal(err)
	}
	wrong := map[string]chunkRecord{} // counts left wrong by the crash
	if err := b.eachPrefix(prefixChunk, func(k, val []byte) error {
		var rec chunkRecord
		err := json.Unmarshal(val, &rec)
		rec.Refs = 1000
		wrong[string(k)] = rec
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.update(func(txn *badger.Txn) error {
		for k, rec := range wrong {
			if err := putJSON(txn, []byte(k), rec); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	check("after a crash before the count")
}
