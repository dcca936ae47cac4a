package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

const s3Tenant = `seed: 5
mailboxes:
  - address: olga@contoso.test
    folders:
      - path: Inbox
        items: 60
        size: {min: 1KB, max: 6KB}
      - path: Inbox/Projects
        items: 6
        size: {min: 1KB, max: 2KB}
`

// A storage in an S3 bucket with Object Lock: the backup's packs and
// settings go to the bucket (nothing stays local but the index), each
// pack locked; the server refuses to delete a locked pack; prune leaves
// the packs it would reclaim while their lock holds and says so; the
// same storage attached from another machine's directory (its index
// built from the bucket's packs) lists, verifies and exports everything.
// A storage in a bucket without a lock gets its space back from prune,
// and a lock asked of a bucket that has none is refused.
func TestS3StorageWithObjectLock(t *testing.T) {
	s3 := startS3(t)
	s3.makeBucket(t, "locked", true)
	s3.makeBucket(t, "plain", false)
	sim := startGraphSim(t, s3Tenant)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }

	refused := run(append([]string{"storage", "add", "nolock", "--path", filepath.Join(dir, "nolock"), "--unencrypted", "--lock-days", "3"}, s3.s3Args("plain", "x")...)...)
	mustf(t, refused.code != 0 && strings.Contains(refused.stderr, "no object lock"), "a lock on a bucket without Object Lock: %d %s", refused.code, refused.stderr)

	local := filepath.Join(dir, "cache")
	add := run(append([]string{"storage", "add", "vaultbox", "--path", local, "--unencrypted", "--keep-versions", "1", "--lock-days", "1", "--lock-mode", "compliance"}, s3.s3Args("locked", "mailvault/one")...)...)
	mustf(t, add.code == 0, "storage add --s3: %d %s", add.code, add.stderr)

	r, res := graphBackup(t, sim, data, "--storage", "vaultbox")
	mustf(t, res.code == 0 && r.ItemsStored == 66, "backup into S3: %d stored %d %s", res.code, r.ItemsStored, res.stderr)
	packs := s3.packObjects(t, "locked", "mailvault/one")
	objs := s3.objects(t, "locked", "mailvault/one/")
	_, hasSettings := objs["mailvault/one/vault.json"]
	_, hasCopy := objs["mailvault/one/vault.copy.json"]
	mustf(t, len(packs) >= 1 && hasSettings && hasCopy, "objects in the bucket: %v", objs)
	mustf(t, localPacks(t, local) == 0, "packs left in the local directory after the run: %d", localPacks(t, local))
	mustNotContain(t, local, s3Secret)
	mustNotContain(t, data, s3Secret)

	// The server itself refuses to delete a locked pack's data.
	ctx := context.Background()
	info, err := s3.client(t).StatObject(ctx, "locked", packs[0], minio.StatObjectOptions{})
	mustf(t, err == nil && info.VersionID != "", "the pack's version: %q %v", info.VersionID, err)
	err = s3.client(t).RemoveObject(ctx, "locked", packs[0], minio.RemoveObjectOptions{VersionID: info.VersionID})
	mustf(t, err != nil && minio.ToErrorResponse(err).Code == "AccessDenied", "deleting a locked pack: %v", err)
	until, err := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	mustf(t, err == nil && info.Metadata.Get("X-Amz-Object-Lock-Mode") == "COMPLIANCE" && until.After(time.Now().Add(23*time.Hour)), "the pack's lock: %v", info.Metadata)

	// A settings change writes a new version of the locked settings
	// objects (the locked versions stay).
	ret := run("storage", "retention", "vaultbox", "--keep-deleted", "400d")
	mustf(t, ret.code == 0, "retention change on a locked storage: %d %s", ret.code, ret.stderr)
	st := run("storage", "stats", "vaultbox")
	mustf(t, st.code == 0 && strings.Contains(st.stdout, "objects:       s3://locked/mailvault/one at "+s3.addr+", each object locked 1 days (compliance mode)"), "stats: %s %s", st.stdout, st.stderr)
	set, err := s3.client(t).StatObject(ctx, "locked", "mailvault/one/vault.json", minio.StatObjectOptions{})
	mustf(t, err == nil && set.Metadata.Get("X-Amz-Object-Lock-Mode") == "COMPLIANCE", "the settings object (the wrapped key) is not locked: %v %v", set.Metadata, err)
	ver := run("verify", "vaultbox", "--read-data")
	mustf(t, ver.code == 0, "verify --read-data of the S3 storage: %d %s %s", ver.code, ver.stdout, ver.stderr)

	// Every item changes: with keep-versions 1 the first run's pack holds
	// nothing live after prune, but it is locked.
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox/Projects", "modify": 6})
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox", "modify": 60})
	r2, res := graphBackup(t, sim, data, "--storage", "vaultbox")
	mustf(t, res.code == 0 && r2.ItemsStored == 66, "second backup: %d stored %d %s", res.code, r2.ItemsStored, res.stderr)
	before := len(s3.packObjects(t, "locked", "mailvault/one"))
	pr := run("prune", "vaultbox")
	mustf(t, pr.code == 0 && strings.Contains(pr.stdout, "pruned 66 versions") && regexp.MustCompile(`\d+ packs? locked`).MatchString(pr.stdout), "prune of a locked storage:\n%s%s", pr.stdout, pr.stderr)
	after := len(s3.packObjects(t, "locked", "mailvault/one"))
	mustf(t, after >= before, "prune deleted locked packs: %d -> %d", before, after)
	mustf(t, run("verify", "vaultbox", "--read-data").code == 0, "verify after prune")

	// Another machine: a new data directory attaches the storage; its
	// index is built from the bucket's packs.
	data2 := filepath.Join(dir, "data2")
	att := mailvault(t, append([]string{"storage", "add", "vaultbox", "--path", filepath.Join(dir, "cache2"), "--unencrypted", "--data", data2}, s3.s3Args("locked", "mailvault/one")...)...)
	mustf(t, att.code == 0, "attach the S3 storage elsewhere: %d %s", att.code, att.stderr)
	ls := mailvault(t, "ls", "vaultbox", "olga@contoso.test", "--data", data2)
	mustf(t, ls.code == 0 && strings.Contains(ls.stdout, "Inbox/Projects") && strings.Contains(ls.stdout, "6"), "ls from the attached storage: %d %s %s", ls.code, ls.stdout, ls.stderr)
	mustf(t, mailvault(t, "verify", "vaultbox", "--read-data", "--data", data2).code == 0, "verify from the attached storage")
	out := filepath.Join(dir, "export")
	exp := mailvault(t, "export", "--storage", "vaultbox", "--mailbox", "olga@contoso.test", "--format", "eml", "--out", out, "--data", data2)
	mustf(t, exp.code == 0 && countFiles(t, out, ".eml") == 66, "export from the attached storage: %d %d %s", exp.code, countFiles(t, out, ".eml"), exp.stderr)

	// Without a lock, prune gives the space back in the bucket too.
	add = run(append([]string{"storage", "add", "open", "--path", filepath.Join(dir, "opencache"), "--unencrypted", "--keep-versions", "1"}, s3.s3Args("plain", "two")...)...)
	mustf(t, add.code == 0, "storage add (no lock): %d %s", add.code, add.stderr)
	_, res = graphBackup(t, sim, data, "--storage", "open")
	mustf(t, res.code == 0, "backup into the unlocked storage: %s", res.stderr)
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox/Projects", "modify": 6})
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox", "modify": 60})
	_, res = graphBackup(t, sim, data, "--storage", "open")
	mustf(t, res.code == 0, "second backup into the unlocked storage: %s", res.stderr)
	bytesBefore := s3.packBytes(t, "plain", "two")
	pr = run("prune", "open")
	bytesAfter := s3.packBytes(t, "plain", "two")
	mustf(t, pr.code == 0 && bytesAfter < bytesBefore*3/4, "prune without a lock: pack bytes in the bucket %d -> %d\n%s%s", bytesBefore, bytesAfter, tail(pr.stdout, 400), pr.stderr)
	mustf(t, run("verify", "open", "--read-data").code == 0, "verify after prune (no lock)")

	// Damage in the bucket: a pack object's bytes flipped. verify names it,
	// repair keeps what is intact and says what is lost, and the next
	// backup fetches the lost items again.
	victim := s3.packObjects(t, "plain", "two")[0]
	obj, err := s3.client(t).GetObject(ctx, "plain", victim, minio.GetObjectOptions{})
	mustf(t, err == nil, "get %s: %v", victim, err)
	var buf bytes.Buffer
	_, err = buf.ReadFrom(obj)
	obj.Close()
	mustf(t, err == nil && buf.Len() > 200, "read %s: %v", victim, err)
	raw := buf.Bytes()
	for i := buf.Len() / 2; i < buf.Len()/2+64; i++ {
		raw[i] ^= 0xff
	}
	_, err = s3.client(t).PutObject(ctx, "plain", victim, bytes.NewReader(raw), int64(len(raw)), minio.PutObjectOptions{})
	mustf(t, err == nil, "damage %s: %v", victim, err)
	bad := run("verify", "open", "--read-data")
	mustf(t, bad.code != 0 && strings.Contains(bad.stdout+bad.stderr, "damaged"), "verify of a damaged pack in the bucket: %d %s %s", bad.code, bad.stdout, bad.stderr)
	fix := run("repair", "open")
	mustf(t, fix.code == 3 || fix.code == 0, "repair: %d %s %s", fix.code, fix.stdout, fix.stderr)
	mustf(t, run("verify", "open", "--read-data").code == 0, "verify after repair")
	_, res = graphBackup(t, sim, data, "--storage", "open")
	mustf(t, res.code == 0, "backup after repair: %s", res.stderr)
	ls2 := run("ls", "open", "olga@contoso.test")
	mustf(t, regexp.MustCompile(`Inbox\s+60\b`).MatchString(ls2.stdout) && regexp.MustCompile(`Inbox/Projects\s+6\b`).MatchString(ls2.stdout), "every item back after repair and backup: %s", ls2.stdout)
	mustf(t, run("verify", "open", "--read-data").code == 0, "verify after the backup that followed the repair")
}

// The S3 server is killed in the middle of a backup and started again a
// second later: the run rides it out (the client retries) and stores
// every item once. Then it is killed and kept down: the run stops with an
// error naming the storage (it does not say it finished), and the next
// run, with the server back, completes; every item is stored exactly once
// and reads back intact.
func TestS3ServerRestartMidBackup(t *testing.T) {
	s3 := startS3(t)
	s3.makeBucket(t, "restart", true)
	t.Setenv("MAILVAULT_PACK_BYTES", "262144") // many uploads in a small backup
	sim := startGraphSim(t, `seed: 9
mailboxes:
  - address: ivan@contoso.test
    folders:
      - path: Inbox
        items: 900
        size: {min: 2KB, max: 20KB}
`)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	add := mailvault(t, append([]string{"storage", "add", "s3", "--path", filepath.Join(dir, "cache"), "--unencrypted", "--lock-days", "1", "--data", data}, s3.s3Args("restart", "mv")...)...)
	mustf(t, add.code == 0, "storage add: %d %s", add.code, add.stderr)

	// backupWhile starts a backup, and once the bucket holds more than
	// packs pack objects calls crash; it returns the run's report and
	// result.
	backupWhile := func(packs int, crash func()) (graphReport, result) {
		args := append([]string{"backup", "--data", data, "--progress", "none", "--format", "json", "--storage", "s3"}, sim.args()...)
		cmd := exec.Command(binary, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		mustf(t, cmd.Start() == nil, "start the backup")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		for crashed := false; !crashed; {
			select {
			case <-done:
				t.Fatalf("the backup ended before the server was killed: %s %s", stdout.String(), stderr.String())
			default:
			}
			if len(s3.packObjects(t, "restart", "mv")) > packs {
				crash()
				crashed = true
				continue
			}
			time.Sleep(20 * time.Millisecond)
		}
		<-done
		res := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
		var r graphReport
		_ = json.Unmarshal(stdout.Bytes(), &r)
		return r, res
	}

	var atKill int
	r, res := backupWhile(2, func() {
		atKill = len(s3.packObjects(t, "restart", "mv"))
		s3.stop()
		time.Sleep(time.Second)
		s3.start(t)
	})
	mustf(t, res.code == 0 && r.ItemsStored == 900, "the run across a restart: %d, %d stored: %s", res.code, r.ItemsStored, tail(res.stderr, 800))
	mustf(t, len(s3.packObjects(t, "restart", "mv")) > atKill, "no pack went up after the restart (%d at the kill): the restart was not mid-backup", atKill)

	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "ivan@contoso.test", "folder": "Inbox", "add": 600})
	r, res = backupWhile(len(s3.packObjects(t, "restart", "mv"))+1, s3.stop)
	mustf(t, res.code != 0 && strings.Contains(res.stderr, "s3://restart/mv"), "a run whose S3 server stays down: %d %s", res.code, tail(res.stderr, 800))
	mustf(t, !strings.Contains(res.stdout, `"status":"finished"`) && !strings.Contains(res.stdout, `"status": "finished"`), "a run that could not upload says it finished: %s", res.stdout)
	stored := r.ItemsStored
	s3.start(t)
	r, res = graphBackup(t, sim, data, "--storage", "s3")
	mustf(t, res.code == 0, "the run after the server came back: %d %s", res.code, res.stderr)
	t.Logf("stored %d in the failed run, %d in the next", stored, r.ItemsStored)
	ls := mailvault(t, "ls", "s3", "ivan@contoso.test", "--data", data)
	mustf(t, ls.code == 0 && regexp.MustCompile(`Inbox\s+1500\b`).MatchString(ls.stdout), "ls: %s %s", ls.stdout, ls.stderr)
	mustf(t, storedCount(t, filepath.Join(dir, "cache")) == 1500, "versions stored: %d, want each of 1500 items once", storedCount(t, filepath.Join(dir, "cache")))
	ver := mailvault(t, "verify", "s3", "--read-data", "--data", data)
	mustf(t, ver.code == 0, "verify: %d %s %s", ver.code, ver.stdout, ver.stderr)
}

// Two machines use one storage in S3, each with its own directory and
// index (as a cluster's workers do). A prune is refused while another
// process holds a live lock on the storage (naming the holder) and deletes
// nothing; a lock left by a process that stopped is stale after 30 minutes
// and the prune removes it. The other machine's index, which pointed into
// the packs the prune deleted, takes the prune in when it next opens the
// storage: it verifies clean, lists and exports what the prune kept, and
// its next backup stores nothing twice.
func TestS3StorageSharedByTwoMachines(t *testing.T) {
	s3 := startS3(t)
	s3.makeBucket(t, "shared", false)
	sim := startGraphSim(t, s3Tenant)
	dir := t.TempDir()
	dataA, dataB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	add := mailvault(t, append([]string{"storage", "add", "team", "--path", filepath.Join(dir, "cacheA"), "--unencrypted", "--keep-versions", "1", "--data", dataA}, s3.s3Args("shared", "mv")...)...)
	mustf(t, add.code == 0, "storage add: %s", add.stderr)
	r, res := graphBackup(t, sim, dataA, "--storage", "team")
	mustf(t, res.code == 0 && r.ItemsStored == 66, "backup from A: %d %d %s", res.code, r.ItemsStored, res.stderr)
	att := mailvault(t, append([]string{"storage", "add", "team", "--path", filepath.Join(dir, "cacheB"), "--unencrypted", "--data", dataB}, s3.s3Args("shared", "mv")...)...)
	mustf(t, att.code == 0, "attach from B: %s", att.stderr)
	versions := func(data string) string {
		st := mailvault(t, "storage", "stats", "team", "--data", data)
		mustf(t, st.code == 0, "stats: %s", st.stderr)
		return regexp.MustCompile(`\((-?\d+) versions\)`).FindStringSubmatch(st.stdout + " (-1 versions)")[1]
	}
	r, res = graphBackup(t, sim, dataB, "--storage", "team")
	mustf(t, res.code == 0 && r.ItemsStored == 66 && versions(dataB) == "66", "B's first backup (all found stored): %d %s versions %s", r.ItemsStored, res.stderr, versions(dataB))

	// Every item changes; B backs the new versions up, A takes them in.
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox/Projects", "modify": 6})
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "olga@contoso.test", "folder": "Inbox", "modify": 60})
	r, res = graphBackup(t, sim, dataB, "--storage", "team")
	mustf(t, res.code == 0 && r.ItemsStored == 66, "B's backup of the changes: %d %d %s", res.code, r.ItemsStored, res.stderr)

	// A live lock of another process: the prune is refused.
	ctx := context.Background()
	lock := func(name string, at time.Time) {
		body := fmt.Sprintf(`{"holder":"worker7 pid 4242","exclusive":false,"time":%q}`, at.UTC().Format(time.RFC3339))
		_, err := s3.client(t).PutObject(ctx, "shared", "mv/locks/"+name, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		mustf(t, err == nil, "put a lock: %v", err)
	}
	lock("live", time.Now())
	before := s3.packObjects(t, "shared", "mv")
	pr := mailvault(t, "prune", "team", "--data", dataA)
	mustf(t, pr.code != 0 && strings.Contains(pr.stderr, "in use by another process") && strings.Contains(pr.stderr, "worker7 pid 4242"), "prune beside a live lock: %d %s%s", pr.code, pr.stdout, pr.stderr)
	mustf(t, len(s3.packObjects(t, "shared", "mv")) == len(before), "a refused prune changed the packs")
	_, err := s3.client(t).StatObject(ctx, "shared", "mv/locks/live", minio.StatObjectOptions{})
	mustf(t, err == nil, "a refused prune removed another's lock: %v", err)

	// The lock's process stopped 31 minutes ago: the prune goes on.
	mustf(t, s3.client(t).RemoveObject(ctx, "shared", "mv/locks/live", minio.RemoveObjectOptions{}) == nil, "remove lock")
	lock("stopped", time.Now().Add(-31*time.Minute))
	pr = mailvault(t, "prune", "team", "--data", dataA)
	mustf(t, pr.code == 0 && strings.Contains(pr.stdout, "pruned 66 versions"), "prune: %d %s%s", pr.code, pr.stdout, pr.stderr)
	left := s3.objects(t, "shared", "mv/locks/")
	mustf(t, len(left) == 0, "locks left after the prune: %v", left)
	gone := 0
	after := map[string]bool{}
	for _, p := range s3.packObjects(t, "shared", "mv") {
		after[p] = true
	}
	for _, p := range before {
		if !after[p] {
			gone++
		}
	}
	mustf(t, gone > 0, "the prune deleted no pack (nothing for B to take in)")

	// B's index pointed into the deleted packs: it takes the prune in.
	ver := mailvault(t, "verify", "team", "--read-data", "--data", dataB)
	mustf(t, ver.code == 0, "verify from B after A's prune: %d %s %s", ver.code, ver.stdout, ver.stderr)
	ls := mailvault(t, "ls", "team", "olga@contoso.test", "--data", dataB)
	mustf(t, regexp.MustCompile(`Inbox\s+60\b`).MatchString(ls.stdout) && regexp.MustCompile(`Inbox/Projects\s+6\b`).MatchString(ls.stdout), "ls from B: %s %s", ls.stdout, ls.stderr)
	out := filepath.Join(dir, "export")
	exp := mailvault(t, "export", "--storage", "team", "--mailbox", "olga@contoso.test", "--format", "eml", "--out", out, "--data", dataB)
	mustf(t, exp.code == 0 && countFiles(t, out, ".eml") == 66, "export from B: %d %d %s", exp.code, countFiles(t, out, ".eml"), exp.stderr)
	mustf(t, versions(dataB) == "66", "B's versions after the prune: %s", versions(dataB))
	_, res = graphBackup(t, sim, dataB, "--storage", "team")
	mustf(t, res.code == 0 && versions(dataB) == "66", "B's backup after the prune: %d versions %s %s", res.code, versions(dataB), res.stderr)
	mustf(t, versions(dataA) == "66", "A's versions: %s", versions(dataA))
}
