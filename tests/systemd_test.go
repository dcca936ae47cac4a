package tests

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/adapters/credential"
)

// unitSettings reads a systemd unit's Key=Value lines (comments aside);
// settings given twice keep every value.
func unitSettings(t *testing.T, path string) (map[string][]string, []string) {
	t.Helper()
	f, err := os.Open(path)
	mustf(t, err == nil, "open the unit: %v", err)
	defer f.Close()
	settings := map[string][]string{}
	var comments []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			comments = append(comments, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			settings[k] = append(settings[k], v)
		}
	}
	return settings, comments
}

// within tells whether p is dir or under it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// The systemd unit is valid (systemd-analyze verify), and its sandbox lets
// the daemon write everywhere the documented setup writes: the data
// directory, every storage and export path the README and the unit's install
// steps use; the secrets key reaches it as the credential mailvault reads.
func TestSystemdUnitFitsTheDocumentedSetup(t *testing.T) {
	needTool(t, "/usr/bin/systemd-analyze", "systemd-analyze (systemd)")
	unit := filepath.Join("..", "docs", "mailvault.service")
	settings, comments := unitSettings(t, unit)

	// systemd-analyze checks the unit's syntax and that ExecStart runs:
	// the unit as shipped, with the binary the tests built in its place.
	b, err := os.ReadFile(unit)
	mustf(t, err == nil, "read unit: %v", err)
	bin, _ := filepath.Abs(binary)
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "mailvault.service")
	os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/mailvault", bin)), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", copyPath).CombinedOutput()
	mustf(t, err == nil && len(strings.TrimSpace(string(out))) == 0, "systemd-analyze verify: %v\n%s", err, out)

	// Where the sandbox lets the daemon write.
	mustf(t, len(settings["ProtectSystem"]) == 1 && settings["ProtectSystem"][0] == "strict", "the unit no longer protects the system: %v", settings["ProtectSystem"])
	var writable []string
	for _, d := range settings["StateDirectory"] {
		writable = append(writable, "/var/lib/"+d)
	}
	for _, v := range settings["ReadWritePaths"] {
		for _, p := range strings.Fields(v) {
			writable = append(writable, strings.TrimPrefix(p, "-"))
		}
	}
	canWrite := func(p string) bool {
		for _, w := range writable {
			if within(p, w) {
				return true
			}
		}
		return false
	}

	// The paths the daemon is told to write to: its --data, and every
	// absolute --data, --path and --out in the README and the unit's
	// comments (install steps, examples).
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	mustf(t, err == nil, "read README: %v", err)
	flagPath := regexp.MustCompile(`--(?:data|path|out)[ =](/[^\s'"\x60)]+)`)
	texts := append([]string{string(readme)}, settings["ExecStart"]...)
	texts = append(texts, comments...)
	var checked []string
	for _, text := range texts {
		for _, m := range flagPath.FindAllStringSubmatch(text, -1) {
			checked = append(checked, m[1])
			mustf(t, canWrite(m[1]), "%s is used for data, a storage or an export, but the unit lets the daemon write only to %v", m[1], writable)
		}
	}
	mustf(t, len(checked) >= 3, "found only %v to check: the README's examples moved?", checked)
	// Directories the install steps create for the daemon are writable too.
	for _, c := range comments {
		if strings.HasPrefix(c, "install -d -o mailvault") {
			for _, p := range strings.Fields(c) {
				if strings.HasPrefix(p, "/") {
					mustf(t, canWrite(p), "the install steps create %s for the daemon, which cannot write it", p)
				}
			}
		}
	}

	// The key of the stored secrets: a credential of the name mailvault
	// looks for, from a file the install steps create.
	mustf(t, len(settings["LoadCredential"]) == 1, "no LoadCredential: %v", settings["LoadCredential"])
	name, source, _ := strings.Cut(settings["LoadCredential"][0], ":")
	mustf(t, name == credential.KeyCredential, "the credential is %q, mailvault reads %q", name, credential.KeyCredential)
	created := false
	for _, c := range comments {
		created = created || strings.Contains(c, "> "+source)
	}
	mustf(t, created, "the install steps do not create %s", source)
}

// A place the daemon's sandbox (or any read-only mount) does not let it
// write is refused with the reason and what to do, not a bare error.
func TestReadOnlyPlaceIsExplained(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a read-only tmpfs")
	}
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	os.MkdirAll(ro, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", ro).Run()
	tenant := writeTenant(t, dir, "mailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 3\n")
	data := filepath.Join(dir, "data")
	_, res := backup(t, data, tenant)
	mustf(t, res.code == 0, "backup: %d %s", res.code, res.stderr)
	for _, args := range [][]string{
		{"export", "--storage", filepath.Join(data, "storage"), "--format", "eml", "--out", filepath.Join(ro, "export")},
		{"storage", "add", "ro", "--unencrypted", "--path", filepath.Join(ro, "store")},
	} {
		res := mailvault(t, append(args, "--data", data)...)
		mustf(t, res.code != 0 && strings.Contains(res.stderr, "read-only file system") && strings.Contains(res.stderr, "ReadWritePaths"),
			"%v: exit %d\n%s", args, res.code, res.stderr)
	}
}
