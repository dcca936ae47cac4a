package tests

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The storage, not the data directory, holds what is backed up: a second
// storage, and a storage wiped and made anew, each receive a complete
// backup, over Graph and over EWS.
func TestEveryStorageGetsACompleteBackup(t *testing.T) {
	const tenant = `seed: 3
mailboxes:
  - address: ivy@contoso.test
    folders:
      - path: Inbox
        items: 120
        size: {min: 1KB, max: 4KB}
      - path: Contacts
        kind: contacts
        items: 15
`
	const total = 135
	for _, source := range []string{"graph", "ews"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel() // waits on servers more than it computes
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
			var backupInto func(storage string) graphReport
			if source == "graph" {
				sim := startGraphSim(t, tenant)
				backupInto = func(storage string) graphReport {
					r, res := graphBackup(t, sim, data, "--storage", storage)
					mustf(t, res.code == 0, "backup into %s: %d %s", storage, res.code, res.stderr)
					return r
				}
			} else {
				sim := startEWS(t, tenant, false)
				backupInto = func(storage string) graphReport {
					r, res := sim.backup(t, data, "--storage", storage, "--mailbox", "ivy@contoso.test", "--impersonate")
					mustf(t, res.code == 0, "backup into %s: %d %s", storage, res.code, res.stderr)
					return r
				}
			}
			for _, name := range []string{"a", "b"} {
				res := run("storage", "add", name, "--unencrypted", "--path", filepath.Join(dir, name))
				mustf(t, res.code == 0, "storage add %s: %s", name, res.stderr)
			}
			r := backupInto("a")
			mustf(t, r.ItemsStored == total, "into a: %+v", r)
			r = backupInto("b")
			mustf(t, r.ItemsStored == total && r.State == "finished", "into a second storage: %+v", r)
			mustf(t, storedCount(t, filepath.Join(dir, "b")) == total, "b holds %d items", storedCount(t, filepath.Join(dir, "b")))
			r = backupInto("a")
			mustf(t, r.ItemsStored == 0 && r.ItemsUnchanged+r.ItemsStored <= total, "a again (incremental): %+v", r)

			// Wiped and made anew under the same name.
			os.RemoveAll(filepath.Join(dir, "a"))
			mustf(t, run("storage", "remove", "a").code == 0, "storage remove")
			mustf(t, run("storage", "add", "a", "--unencrypted", "--path", filepath.Join(dir, "a")).code == 0, "storage add again")
			r = backupInto("a")
			mustf(t, r.ItemsStored == total, "into the storage made anew: %+v", r)
			mustf(t, storedCount(t, filepath.Join(dir, "a")) == total, "the new a holds %d items", storedCount(t, filepath.Join(dir, "a")))
		})
	}
}

// One mailbox backed up through Graph and through EWS into one storage:
// two independent backups; neither restarts the other's listing or
// stores anything twice, and a restore over EWS takes the EWS copies.
func TestGraphAndEWSBackupsOfOneMailboxStayApart(t *testing.T) {
	t.Parallel() // waits on servers more than it computes
	const tenant = `seed: 8
mailboxes:
  - address: jo@contoso.test
    folders:
      - path: Inbox
        items: 80
        size: {min: 1KB, max: 4KB}
  - address: kim@contoso.test
    folders:
      - path: Inbox
        items: 1
`
	graph := startGraphSim(t, tenant)
	ews := startEWS(t, tenant, false)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	store := filepath.Join(dir, "store")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }
	viaGraph := func() graphReport {
		r, res := graphBackup(t, graph, data, "--storage", store, "--mailbox", "jo@contoso.test")
		mustf(t, res.code == 0, "graph backup: %d %s", res.code, res.stderr)
		return r
	}
	viaEWS := func() graphReport {
		r, res := ews.backup(t, data, "--storage", store, "--mailbox", "jo@contoso.test", "--impersonate")
		mustf(t, res.code == 0, "ews backup: %d %s", res.code, res.stderr)
		return r
	}
	mustf(t, viaGraph().ItemsStored == 80, "first graph backup")
	mustf(t, viaEWS().ItemsStored == 80, "first ews backup: a backup of its own")
	g2, e2 := viaGraph(), viaEWS()
	mustf(t, g2.ItemsStored == 0 && g2.ListingRestarts == 0, "graph again: %+v", g2)
	mustf(t, e2.ItemsStored == 0 && e2.ListingRestarts == 0, "ews again: %+v", e2)
	mustf(t, storedCount(t, store) == 160, "the storage holds %d versions, want 80 per source", storedCount(t, store))

	res := run("export", "--storage", store, "--format", "eml", "--out", filepath.Join(dir, "x"))
	mustf(t, res.code == 2 && strings.Contains(res.stderr, "--source"), "an export spanning both sources is refused: %d %s", res.code, res.stderr)
	res = run("connection", "add", "onprem", "--type", "ews", "--ews-url", ews.EWSURL, "--username", ews.Username, "--password-file", ews.passwordFile,
		"--impersonate", "--ca-cert", ews.CACert)
	mustf(t, res.code == 0, "connection add: %s", res.stderr)
	rep := restoreJSON(t, run("restore", "--storage", store, "--to", "onprem", "--mailbox", "jo@contoso.test", "--target-mailbox", "kim@contoso.test",
		"--into-folder", "Restored", "--format", "json"))
	mustf(t, rep.Created == 80 && rep.Failed == 0, "restore over EWS takes the EWS copies: %+v", rep)
}

// Running the demo twice: the simulator's port changes, so every stored
// delta link names a host that is gone. They are stale, not hostile: each
// folder's listing starts again, said so, and nothing is stored twice.
func TestDemoTwiceRestartsStaleListings(t *testing.T) {
	t.Parallel() // waits on the simulator more than it computes
	data := filepath.Join(t.TempDir(), "data")
	// The demo's 5,000 items twice: without the race detector, which the
	// other Graph tests run under.
	first := mailvaultFast(t, "demo", "--data", data, "--progress", "none", "--format", "json")
	mustf(t, first.code == 0, "first demo: %d %s", first.code, first.stderr)
	second := mailvaultFast(t, "demo", "--data", data, "--progress", "none", "--format", "json")
	mustf(t, second.code == 0, "second demo: %d %s", second.code, second.stderr)
	mustf(t, !strings.Contains(second.stdout+second.stderr, "ForeignLink"), "a stale link was treated as hostile:\n%s", second.stderr)
	var r graphReport
	rep := mailvault(t, "report", "last", "--data", data, "--format", "json")
	mustf(t, json.Unmarshal([]byte(rep.stdout), &r) == nil, "report: %s", rep.stdout)
	mustf(t, r.ItemsStored == 0 && r.ListingRestarts > 0 && len(r.Errors) == 0, "second demo: %+v", r)
	replay := mailvault(t, "replay", "last", "--data", data).stdout
	mustf(t, strings.Contains(replay, "StaleDeltaLink"), "the replay does not say why the listings restarted")
}

// fileKinds lists one file of every kind a storage holds, by kind.
func fileKinds(t *testing.T, store string) map[string]string {
	kinds := map[string]string{}
	filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(store, p)
		kind := rel
		switch {
		case strings.HasPrefix(rel, "data"+string(filepath.Separator)):
			kind = "pack"
		case strings.HasSuffix(rel, ".sst"):
			kind = "index table"
		case strings.HasSuffix(rel, ".vlog"):
			kind = "index value log"
		}
		if _, ok := kinds[kind]; !ok {
			kinds[kind] = rel
		}
		return nil
	})
	return kinds
}

// copyStorage copies a storage keeping the files' times, which the index's
// checksum record holds.
func copyStorage(t *testing.T, from, to string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	mustf(t, err == nil, "cp: %v %s", err, out)
}

func applyFault(t *testing.T, path, fault string, seed int) {
	t.Helper()
	b, err := os.ReadFile(path)
	mustf(t, err == nil, "read %s: %v", path, err)
	info, _ := os.Stat(path)
	switch fault {
	case "delete":
		os.Remove(path)
		return
	case "truncate":
		b = b[:len(b)/2]
	case "flip":
		if len(b) == 0 {
			t.Skip("empty file")
		}
		b[(seed*7919+len(b)/3)%len(b)] ^= 0x5a
	}
	mustf(t, os.WriteFile(path, b, 0o600) == nil, "write %s", path)
	os.Chtimes(path, info.ModTime(), info.ModTime())
}

// zipEntries counts the EML entries of a zip export.
func zipEntries(t *testing.T, path string) int {
	z, err := zip.OpenReader(path)
	mustf(t, err == nil, "open zip %s: %v", path, err)
	defer z.Close()
	n := 0
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, ".eml") {
			n++
		}
	}
	return n
}

type verifyJSON struct {
	Result struct {
		DamagedItems int  `json:"damaged_items"`
		IndexDamaged bool `json:"index_damaged"`
	} `json:"result"`
	Problems []struct {
		Item *struct {
			ID string `json:"id"`
		} `json:"item"`
		Problem string `json:"problem"`
		Damage  bool   `json:"damage"`
		Lost    bool   `json:"lost"`
	} `json:"problems"`
}

// Fault injection over a storage of 2,000 items: for every kind of file in
// the storage, deleted, cut in half or with one byte flipped, verify exits
// non-zero and names the damage; after repair, export and restore bring
// back every item whose data is intact, and the items lost are exactly the
// ones verify named. Nothing is lost silently.
func TestFaultInjectionOverEveryFileKind(t *testing.T) {
	t.Parallel() // mostly file copying and waiting on the simulator
	const items = 2000
	dir := t.TempDir()
	tenant := writeTenant(t, dir, fmt.Sprintf(`seed: 17
mailboxes:
  - address: lea@contoso.test
    folders:
      - path: Inbox
        items: %d
        size: {min: 3KB, max: 9KB}
      - path: Small
        items: 150
        size: {min: 3KB, max: 9KB}
`, items-150))
	data := filepath.Join(dir, "data")
	master := filepath.Join(dir, "master")
	r, res := backup(t, data, tenant, "--storage", master)
	mustf(t, res.code == 0 && r.ItemsStored == items, "backup: %d %+v %s", res.code, r, res.stderr)
	kinds := fileKinds(t, master)
	for _, k := range []string{"vault.json", "vault.copy.json", "pack", "index table", "index value log",
		filepath.Join("index", "MANIFEST"), filepath.Join("index", "KEYREGISTRY"), filepath.Join("index", "DISCARD"), filepath.Join("index", "mailvault.sums")} {
		mustf(t, kinds[k] != "", "the storage has no %s file: %v", k, kinds)
	}
	var names []string
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	sim := startGraphSim(t, "mailboxes:\n  - address: back@contoso.test\n    folders:\n      - path: Inbox\n        items: 1\n")
	mustf(t, mailvault(t, append(sim.connectionArgs(), "--data", data)...).code == 0, "connection add")
	restoreCases := map[string]bool{"pack/flip": true, filepath.Join("index", "MANIFEST") + "/delete": true, "vault.json/truncate": true}
	seed := 0
	for _, kind := range names {
		for _, fault := range []string{"delete", "truncate", "flip"} {
			seed++
			name := kind + "/" + fault
			t.Run(strings.ReplaceAll(name, string(filepath.Separator), "_"), func(t *testing.T) {
				store := filepath.Join(t.TempDir(), "store")
				copyStorage(t, master, store)
				applyFault(t, filepath.Join(store, kinds[kind]), fault, seed)
				run := func(args ...string) result { return mailvaultFast(t, append(args, "--data", data)...) }

				v := run("verify", store, "--read-data", "--format", "json")
				mustf(t, v.code == 1, "verify exit %d, want 1:\n%s%s", v.code, v.stdout, v.stderr)
				var vj verifyJSON
				mustf(t, json.Unmarshal([]byte(v.stdout), &vj) == nil, "verify JSON: %s", v.stdout)
				named := map[string]bool{}
				damage := false
				for _, p := range vj.Problems {
					damage = damage || p.Damage
					if p.Lost {
						named[p.Item.ID] = true
					}
				}
				mustf(t, damage && len(named) == vj.Result.DamagedItems, "verify names no damage or miscounts: %+v", vj)

				rep := run("repair", store, "--format", "json")
				mustf(t, rep.code == 0 || rep.code == 3, "repair exit %d: %s %s", rep.code, rep.stdout, rep.stderr)
				var rj struct {
					Lost []struct {
						ID     string `json:"id"`
						Folder string `json:"folder"`
					} `json:"lost"`
				}
				mustf(t, json.Unmarshal([]byte(rep.stdout), &rj) == nil, "repair JSON: %s", rep.stdout)
				lost := map[string]bool{}
				lostSmall := 0
				for _, l := range rj.Lost {
					lost[l.ID] = true
					if l.Folder == "Small" {
						lostSmall++
					}
				}
				mustf(t, fmt.Sprint(sortedSet(lost)) == fmt.Sprint(sortedSet(named)), "repair lost %d items, verify named %d", len(lost), len(named))
				mustf(t, (rep.code == 3) == (len(lost) > 0), "repair exit %d with %d lost", rep.code, len(lost))
				ok := run("verify", store, "--read-data")
				mustf(t, ok.code == 0, "verify after repair: %d %s", ok.code, ok.stdout)

				zipOut := filepath.Join(t.TempDir(), "x.zip")
				ex := run("export", "--storage", store, "--format", "zip", "--out", zipOut)
				mustf(t, ex.code == 0, "export after repair: %d %s", ex.code, ex.stderr)
				mustf(t, zipEntries(t, zipOut) == items-len(lost), "export holds %d items, want %d", zipEntries(t, zipOut), items-len(lost))

				if restoreCases[name] {
					folder := "R-" + strings.NewReplacer("/", "-", string(filepath.Separator), "-").Replace(name)
					// One folder of it: a restore costs the simulator a request
					// or more per item.
					rr := restoreJSON(t, run("restore", "--storage", store, "--to", "online", "--folder", "Small", "--target-mailbox", "back@contoso.test",
						"--into-folder", folder, "--format", "json", "--progress", "none"))
					mustf(t, rr.Created == 150-lostSmall && rr.Failed == 0, "restore after repair: %+v (%d lost in the folder)", rr, lostSmall)
				}
			})
		}
	}
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A daemon job pointed at a new storage backs everything up into it (it
// used to report "finished", 0 stored, as good news); an export as zip
// while the daemon holds the data directory works and leaves no empty zip.
func TestDaemonJobIntoANewStorage(t *testing.T) {
	t.Parallel() // waits on servers and timers more than it computes
	sim := startGraphSim(t, "seed: 4\nmailboxes:\n  - address: max@contoso.test\n    folders:\n      - path: Inbox\n        items: 60\n")
	dir := t.TempDir()
	run := jobSetup(t, sim, dir, "once", "--mailbox", "max@contoso.test", "--one-time")
	data := filepath.Join(dir, "data")
	startDaemon(t, data)
	waitStored := func(want, runs int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			rows := listRuns(t, data)
			if len(rows) >= runs && strings.HasPrefix(rows[len(rows)-1].State, "finished") {
				mustf(t, rows[len(rows)-1].ItemsStored == want, "run %d stored %d, want %d: %+v\n%s", runs, rows[len(rows)-1].ItemsStored, want, rows,
					mailvault(t, "report", "last", "--data", data).stdout)
				return
			}
			mustf(t, time.Now().Before(deadline), "run %d did not finish: %+v", runs, rows)
			time.Sleep(100 * time.Millisecond)
		}
	}
	mustf(t, run("job", "start", "once").code == 0, "job start")
	waitStored(60, 1)
	mustf(t, run("storage", "add", "fresh", "--unencrypted", "--path", filepath.Join(dir, "fresh")).code == 0, "storage add")
	res := run("job", "create", "second", "--connection", "online", "--storage", "fresh", "--mailbox", "max@contoso.test", "--one-time")
	mustf(t, res.code == 0, "job create: %s", res.stderr)
	mustf(t, run("job", "start", "second").code == 0, "job start")
	waitStored(60, 2)

	out := filepath.Join(dir, "x.zip")
	ex := run("export", "--storage", "fresh", "--format", "zip", "--out", out)
	mustf(t, ex.code == 0 && zipEntries(t, out) == 60, "zip export through the daemon: %d %s %s", ex.code, ex.stdout, ex.stderr)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		mustf(t, !strings.Contains(e.Name(), "partial"), "left behind: %s", e.Name())
	}
}

// hashTree records every file of a directory with its size, time and
// content hash.
func hashTree(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		info, _ := d.Info()
		out[p] = fmt.Sprintf("%d %d %x", len(b), info.ModTime().UnixNano(), sha256.Sum256(b))
		return nil
	})
	return out
}

// ls, find, export and verify change nothing in the storage, not a byte.
func TestReadOnlyCommandsLeaveTheStorageAlone(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, vaultTenant)
	data := filepath.Join(dir, "data")
	store := filepath.Join(dir, "store")
	_, res := backup(t, data, tenant, "--storage", store)
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	before := hashTree(t, store)
	for i, args := range [][]string{
		{"ls", store}, {"ls", store, "eve@contoso.test/Inbox", "--versions"}, {"find", store, "--subject", "a"},
		{"verify", store}, {"verify", store, "--read-data"},
		{"export", "--storage", store, "--format", "eml", "--out", filepath.Join(dir, "eml")},
		{"export", "--storage", store, "--format", "zip", "--out", filepath.Join(dir, "x.zip")},
		{"storage", "stats", store},
	} {
		res := mailvault(t, append(args, "--data", data)...)
		mustf(t, res.code == 0, "%v: %d %s", args, res.code, res.stderr)
		after := hashTree(t, store)
		mustf(t, fmt.Sprint(after) == fmt.Sprint(before), "command %d %v changed the storage", i, args)
	}
}

// One damaged chunk: export and restore go on, bring back every other
// item, name the damaged one and finish with warnings; run again, they
// continue without duplicates. A pack cut to half: the export still
// writes every item whose data is there.
func TestDamagedItemsDoNotStopRestoreOrExport(t *testing.T) {
	t.Parallel() // waits on the simulator more than it computes
	sim, data, run := restoreSetup(t)
	_, res := graphBackup(t, sim, data, "--mailbox", "src@contoso.test", "--graph-content", "batch")
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	var pack string
	filepath.WalkDir(filepath.Join(store, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && pack == "" {
			pack = p
		}
		return nil
	})
	b, _ := os.ReadFile(pack)
	b[300] ^= 0x20 // in the payload of the pack's first chunk
	os.WriteFile(pack, b, 0o600)

	out := filepath.Join(t.TempDir(), "eml")
	ex := run("export", "--storage", store, "--format", "eml", "--mailbox", "src@contoso.test", "--out", out)
	mustf(t, ex.code == 3 && strings.Contains(ex.stdout, "damaged in the storage, not exported (1"), "export with a damaged item: %d %s %s", ex.code, ex.stdout, ex.stderr)
	mails := countFiles(t, out, ".eml")
	mustf(t, mails == 40+10+2-1, "exported %d messages, want every intact one", mails)

	args := []string{"restore", "--storage", store, "--to", "online", "--mailbox", "src@contoso.test", "--target-mailbox", "dst@contoso.test", "--into-folder", "R"}
	first := run(args...)
	mustf(t, first.code == 3 && strings.Contains(first.stdout, "damaged in the storage, not restored (1"), "restore with a damaged item: %d %s %s", first.code, first.stdout, first.stderr)
	again := restoreJSON(t, run(append(args, "--format", "json")...))
	mustf(t, again.Created == 0 && again.Skipped == 40+10+2+30+10-1 && again.Failed == 1, "restore again (nothing twice): %+v", again)
	back := versionsOf(t, sim, "dst@contoso.test")
	mustf(t, len(back["R/Inbox"])+len(back["R/Inbox/Projects"])+len(back["R/Big"]) == 40+10+2-1, "the target holds %d restored messages, want every intact one once: %v",
		len(back["R/Inbox"])+len(back["R/Inbox/Projects"])+len(back["R/Big"]), len(back))

	os.WriteFile(pack, b[:len(b)/2], 0o600)
	out2 := filepath.Join(t.TempDir(), "eml")
	ex = run("export", "--storage", store, "--format", "eml", "--mailbox", "src@contoso.test", "--out", out2)
	mustf(t, ex.code == 3, "export from a cut pack: %d %s %s", ex.code, ex.stdout, ex.stderr)
	mustf(t, countFiles(t, out2, ".eml") > 0, "a pack cut to half and the export wrote nothing:\n%s", ex.stdout)
}

// killAfter starts mailvault with args and kills it with SIGKILL after
// delay, unless it ends first; it reports whether the kill landed.
func killAfter(t *testing.T, delay time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(fastBinary(t), args...)
	mustf(t, cmd.Start() == nil, "start %v", args)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// 30 seeded SIGKILLs during exports: never a partial file under a final
// name; the export run again continues, and in the end holds every item
// exactly once.
func TestExportSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, `seed: 23
mailboxes:
  - address: nia@contoso.test
    folders:
      - path: Inbox
        items: 700
        size: {min: 2KB, max: 30KB}
      - path: Archive
        items: 500
        size: {min: 2KB, max: 30KB}
      - path: Sent
        items: 300
        size: {min: 2KB, max: 30KB}
`)
	data := filepath.Join(dir, "data")
	_, res := backup(t, data, tenant)
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	content := map[string][]byte{}
	perFolder := map[string]int{}
	for _, v := range storedVersions(t, store) {
		content[v.ID] = v.Content
		perFolder[v.FolderPath]++
	}
	rng := rand.New(rand.NewSource(20261205))
	kills := 0
	for _, format := range []string{"eml", "mbox"} {
		round := 0
		out := filepath.Join(dir, fmt.Sprintf("x-%s-%d", format, round))
		args := func() []string {
			return []string{"export", "--storage", store, "--format", format, "--out", out, "--data", data, "--progress", "none"}
		}
		for landed, tries := 0, 0; landed < 15 && tries < 80; tries++ {
			if killAfter(t, time.Duration(20+rng.Intn(400))*time.Millisecond, args()...) {
				landed++
				kills++
			} else {
				// Finished before the kill: the next kills go to a new export.
				round++
				out = filepath.Join(dir, fmt.Sprintf("x-%s-%d", format, round))
			}
			filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || strings.HasSuffix(p, ".mailvault-partial") || d.Name() == ".mailvault-export" {
					return nil
				}
				b, _ := os.ReadFile(p)
				switch format {
				case "eml":
					want, ok := content[strings.TrimSuffix(d.Name(), ".eml")]
					mustf(t, ok && string(b) == string(want), "after kill %d: %s is not the whole item", kills, p)
				case "mbox":
					folder := strings.TrimSuffix(d.Name(), ".mbox")
					mustf(t, strings.Count(string(b), "\nFrom ")+1 == perFolder[folder], "after kill %d: %s holds %d of %d messages", kills, p, strings.Count(string(b), "\nFrom ")+1, perFolder[folder])
				}
				return nil
			})
		}
		res := mailvaultFast(t, args()...)
		mustf(t, res.code == 0, "export %s after the kills: %d %s", format, res.code, res.stderr)
		if format == "eml" {
			mustf(t, countFiles(t, out, ".eml") == len(content), "eml: %d files, want %d", countFiles(t, out, ".eml"), len(content))
		} else {
			c := readExport(t, "mbox", out)
			mustf(t, c.Messages == len(content), "mbox: %d messages, want %d", c.Messages, len(content))
		}
	}
	mustf(t, kills == 30, "only %d of 30 kills landed", kills)
}

// 30 seeded SIGKILLs during a restore: run again, it continues, and the
// target mailbox holds every item exactly once.
func TestRestoreSurvivesThirtySIGKILLs(t *testing.T) {
	t.Parallel() // waits on the simulator more than it computes
	sim, data, _ := restoreSetup(t)
	_, res := graphBackup(t, sim, data, "--mailbox", "bulk@contoso.test", "--graph-content", "batch")
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	store := filepath.Join(data, "storage")
	args := []string{"restore", "--storage", store, "--to", "online", "--mailbox", "bulk@contoso.test", "--target-mailbox", "dst@contoso.test",
		"--format", "json", "--data", data, "--progress", "none"}
	rng := rand.New(rand.NewSource(20261206))
	kills := 0
	for i := 0; i < 30; i++ {
		if killAfter(t, time.Duration(100+rng.Intn(500))*time.Millisecond, args...) {
			kills++
		}
	}
	rep := restoreJSON(t, mailvaultFast(t, args...))
	mustf(t, rep.Failed == 0 && rep.State == "finished", "after the kills: %+v", rep)
	back := versionsOf(t, sim, "dst@contoso.test")
	mustf(t, len(back["Inbox"]) == 600+1, "the target holds %d messages, want 601 (600 restored once, 1 of its own); %d kills landed", len(back["Inbox"]), kills)
	mustf(t, kills >= 20, "only %d of 30 kills landed", kills)
}

// The disk holding the event log fills up: the backup stops cleanly with
// a message that says so (no SIGBUS), and after space is freed the next
// run continues; every item is stored once.
func TestEventLogDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", data).Run()
	// Enough items that their compact records (about 150 bytes each, batches
	// compressed) outgrow the room left.
	const items = 20000
	tenant := writeTenant(t, dir, fmt.Sprintf("mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: %d\n        size: {min: 1KB, max: 1KB}\n", items))
	store := filepath.Join(dir, "store")
	// Leave the log a few MiB above the free space it keeps.
	var st syscall.Statfs_t
	syscall.Statfs(data, &st)
	free := int64(st.Bavail) * int64(st.Bsize)
	filler := filepath.Join(data, "filler")
	mustf(t, exec.Command("fallocate", "-l", fmt.Sprint(free-(176<<20)-(1<<20)), filler).Run() == nil, "fallocate")
	r, res := backup(t, data, tenant, "--storage", store, "--batch-size", "50")
	mustf(t, res.code == 1, "exit %d, want 1 (not finished): %s", res.code, res.stderr)
	mustf(t, strings.Contains(res.stderr, "disk holding the event log is full") && strings.Contains(res.stderr, "free space"), "stderr: %s", res.stderr)
	mustf(t, r.ItemsStored < items, "the run stored everything: %+v", r)

	os.Remove(filler)
	var last report
	for i := 0; i < 3; i++ {
		last, res = backup(t, data, tenant, "--storage", store, "--batch-size", "50")
		if res.code == 0 {
			break
		}
	}
	mustf(t, res.code == 0, "after freeing space: %d %s", res.code, res.stderr)
	mustf(t, storedCount(t, store) == items, "the storage holds %d items, want %d", storedCount(t, store), items)
	total := 0
	for _, row := range listRuns(t, data) {
		total += row.ItemsStored
	}
	mustf(t, total == items, "the reports count %d items stored, want %d once each (last run %+v)", total, items, last)
}
