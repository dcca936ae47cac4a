package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Three mailboxes receive the same 1,000 messages (one list mail lands in
// every inbox): the storage keeps their content once.
func TestDedupAcrossMailboxes(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("mailboxes:\n")
	for _, mb := range []string{"ann", "ben", "cid"} {
		b.WriteString("  - address: " + mb + "@contoso.test\n    folders:\n      - path: Inbox\n        items: 1000\n        shared: all-staff@contoso.test\n        size: {min: 3KB, max: 12KB}\n")
	}
	tenant := writeTenant(t, dir, b.String())
	data := filepath.Join(dir, "data")
	r, res := backup(t, data, tenant)
	mustf(t, res.code == 0 && r.ItemsStored == 3000, "backup exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
	var rep struct {
		BytesStored  int64 `json:"bytes_stored"`
		BytesWritten int64 `json:"bytes_written"`
	}
	json.Unmarshal([]byte(mailvault(t, "report", "last", "--data", data, "--format", "json").stdout), &rep)
	// Written is about a third of stored (the messages once, compressed a
	// little); never more than 36 %.
	mustf(t, rep.BytesWritten*100 < rep.BytesStored*36 && rep.BytesWritten > 0, "stored %d bytes, wrote %d", rep.BytesStored, rep.BytesWritten)
	st := mailvault(t, "storage", "stats", filepath.Join(data, "storage"), "--data", data)
	mustf(t, st.code == 0 && strings.Contains(st.stdout, "items:         3000") && regexp.MustCompile(`dedup ratio:\s+3\.00`).MatchString(st.stdout), "stats:\n%s%s", st.stdout, st.stderr)
	// The same content is listed in each mailbox, with its own id.
	ls := mailvault(t, "find", filepath.Join(data, "storage"), "--data", data, "--subject", "#417", "--format", "json")
	mustf(t, strings.Count(ls.stdout, "\n") == 3, "find #417: %s", ls.stdout)
}

const vaultTenant = `mailboxes:
  - address: eve@contoso.test
    folders:
      - path: Inbox
        items: 60
        size: {min: 2KB, max: 40KB}
      - path: Inbox/Legal
        items: 20
`

// A password-protected storage: created with a recovery key shown once,
// backed up into by name, refused with a wrong password (nothing changes),
// opened with the recovery key, damage found and named by verify.
func TestEncryptedStorage(t *testing.T) {
	dir := t.TempDir()
	tenant := writeTenant(t, dir, vaultTenant)
	data := filepath.Join(dir, "data")
	store := filepath.Join(dir, "vault")
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret-Vault-pw\n"), 0o600)
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }

	add := run("storage", "add", "nas", "--path", store, "--storage-password-file", pwFile)
	mustf(t, add.code == 0, "storage add: %d %s", add.code, add.stderr)
	key := regexp.MustCompile(`(?m)^\s+([A-Z2-7]{4}(-[A-Z2-7]{1,4}){12})\s*$`).FindStringSubmatch(add.stdout)
	mustf(t, key != nil, "no recovery key printed:\n%s", add.stdout)
	none := run("storage", "add", "plain", "--path", filepath.Join(dir, "p"))
	mustf(t, none.code == 2 && strings.Contains(none.stderr, "--unencrypted"), "a storage without password or --unencrypted: %d %s", none.code, none.stderr)

	r, res := backup(t, data, tenant, "--storage", "nas")
	mustf(t, res.code == 0 && r.ItemsStored == 80, "backup into nas: %d %s", res.code, res.stderr)
	mustNotContain(t, store, "s3cret-Vault-pw")
	mustNotContain(t, data, "s3cret-Vault-pw")
	for _, p := range []string{"eve@contoso.test", "Legal"} {
		mustNotContain(t, store, p) // folder and mailbox names are encrypted too
	}

	ls := run("ls", "nas", "eve@contoso.test/Inbox/Legal", "--format", "json")
	mustf(t, ls.code == 0 && strings.Count(ls.stdout, "\n") == 20, "ls Legal: %d %s %s", ls.code, ls.stdout, ls.stderr)
	var victim struct{ ID, Subject string }
	json.Unmarshal([]byte(strings.SplitN(ls.stdout, "\n", 2)[0]), &victim)

	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("guess"), 0o600)
	before, _ := os.ReadFile(filepath.Join(store, "vault.json"))
	for _, args := range [][]string{{"ls", store, "--storage-password-file", wrong}, {"verify", store, "--storage-password-file", wrong}, {"ls", store}} {
		res := run(args...)
		mustf(t, res.code == 1 && (strings.Contains(res.stderr, "wrong password") || strings.Contains(res.stderr, "password-protected")), "%v: %d %s", args, res.code, res.stderr)
	}
	after, _ := os.ReadFile(filepath.Join(store, "vault.json"))
	mustf(t, bytes.Equal(before, after), "a wrong password changed the storage settings")

	keyFile := filepath.Join(dir, "recovery")
	os.WriteFile(keyFile, []byte(key[1]), 0o600)
	rec := run("ls", store, "--recovery-key-file", keyFile)
	mustf(t, rec.code == 0 && strings.Contains(rec.stdout, "eve@contoso.test  80"), "recovery key: %d %s %s", rec.code, rec.stdout, rec.stderr)

	ok := run("verify", "nas", "--read-data")
	mustf(t, ok.code == 0 && strings.Contains(ok.stdout, "0 damaged items"), "verify clean: %d %s %s", ok.code, ok.stdout, ok.stderr)

	// Flip one byte in one chunk file: verify --read-data names the item.
	var target string
	filepath.Walk(filepath.Join(store, "data"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && target == "" {
			target = p
		}
		return nil
	})
	// A pack is chunks, then the item's record; the first entry of the
	// first pack is a chunk: flip a byte in the middle of its payload.
	b, _ := os.ReadFile(target)
	b[300] ^= 0x20
	os.WriteFile(target, b, 0o600)
	bad := run("verify", "nas", "--read-data")
	mustf(t, bad.code == 1 && strings.Contains(bad.stdout, "LOST item ") && strings.Contains(bad.stdout, "1 damaged items") &&
		strings.Contains(bad.stdout, "affects 1 stored item version"), "verify after a flipped byte: %d\n%s%s", bad.code, bad.stdout, bad.stderr)
	mustf(t, strings.Contains(bad.stdout, filepath.Base(target)), "the damaged pack is not named")
	quick := run("verify", "nas")
	mustf(t, quick.code == 0, "verify without --read-data reads no data, so it passes: %d %s", quick.code, quick.stdout)
	fix := run("repair", "nas")
	mustf(t, fix.code == 3 && strings.Contains(fix.stdout, "LOST item ") && strings.Contains(fix.stdout, "1 lost"), "repair: %d %s %s", fix.code, fix.stdout, fix.stderr)
	mustf(t, run("verify", "nas", "--read-data").code == 0, "verify after repair")
	// The next backup fetches the lost item again.
	r2, res2 := backup(t, data, tenant, "--storage", "nas")
	mustf(t, res2.code == 0 && r2.ItemsStored == 1, "backup after repair: %d stored %d %s", res2.code, r2.ItemsStored, res2.stderr)
	mustf(t, strings.Contains(run("ls", "nas").stdout, "eve@contoso.test  80"), "the lost item is back")

	newPw := filepath.Join(dir, "newpw")
	os.WriteFile(newPw, []byte("another-pw"), 0o600)
	pw := run("storage", "passwd", "nas", "--new-password-file", newPw)
	mustf(t, pw.code == 0, "passwd: %d %s", pw.code, pw.stderr)
	mustf(t, run("ls", store, "--storage-password-file", pwFile).code == 1, "the old password still opens the storage")
	mustf(t, run("ls", store, "--storage-password-file", newPw).code == 0, "the new password does not open the storage")
	mustf(t, run("ls", "nas").code == 0, "the named storage lost its password")
}

// Versions and retention: a changed item keeps its previous version; with
// keep-versions 1 a dry-run prune lists the old versions and changes nothing,
// the real prune removes them (each recorded as an event) and the storage
// verifies clean.
func TestVersionsAndPrune(t *testing.T) {
	sim := startGraphSim(t, incrementalTenant)
	data := filepath.Join(t.TempDir(), "data")
	store := filepath.Join(data, "storage")
	_, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0, "backup: %s", res.stderr)
	sim.control(t, "/_sim/mutate", map[string]any{"mailbox": "dana@contoso.test", "folder": "Inbox", "modify": 5, "delete": 3})
	r2, res := graphBackup(t, sim, data)
	mustf(t, res.code == 0 && r2.ItemsStored == 5 && r2.ItemsRemoved == 3, "incremental: %+v %s", r2, res.stderr)
	run := func(args ...string) result { return mailvault(t, append(args, "--data", data)...) }

	all := run("ls", store, "dana@contoso.test/Inbox", "--versions", "--format", "json")
	latest := run("ls", store, "dana@contoso.test/Inbox", "--format", "json")
	mustf(t, strings.Count(all.stdout, "\n") == 1290+5 && strings.Count(latest.stdout, "\n") == 1290, "Inbox and Inbox/Receipts: versions %d, latest %d", strings.Count(all.stdout, "\n"), strings.Count(latest.stdout, "\n"))
	mustf(t, strings.Count(latest.stdout, `"deleted_at"`) == 3, "deleted items are not marked: %d", strings.Count(latest.stdout, `"deleted_at"`))

	mustf(t, run("storage", "retention", store, "--keep-versions", "1").code == 0, "retention")
	dry := run("prune", store, "--dry-run")
	mustf(t, dry.code == 0 && strings.Count(dry.stdout, "would prune ") == 5+1, "dry run:\n%s%s", dry.stdout, dry.stderr)
	mustf(t, storedCount(t, store) == 1490+5, "the dry run removed versions")
	pr := run("prune", store)
	mustf(t, pr.code == 0 && strings.Contains(pr.stdout, "pruned 5 versions"), "prune:\n%s%s", pr.stdout, pr.stderr)
	mustf(t, storedCount(t, store) == 1490, "versions after prune: %d", storedCount(t, store))
	ver := run("verify", store, "--read-data")
	mustf(t, ver.code == 0, "verify after prune: %s", ver.stdout)
	ops := run("storage", "retention", store)
	mustf(t, strings.Contains(ops.stdout, "keep the last 1 versions"), "retention shown: %s", ops.stdout)
	// Keeping deleted items 30 days: nothing deleted that recently goes.
	mustf(t, run("storage", "retention", store, "--keep-deleted", "30d").code == 0, "retention keep-deleted")
	dry = run("prune", store, "--dry-run")
	mustf(t, strings.Contains(dry.stdout, "would prune 0 versions"), "recently deleted items would be pruned:\n%s", dry.stdout)
}
