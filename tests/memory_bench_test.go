package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// BenchmarkMillionItemBackupPeakRSS backs up a generated tenant of 1,000,000
// items of 1 KB with the real binary into local storage and reports the
// process's peak resident memory (ru_maxrss). MAILVAULT_BENCH_ITEMS overrides
// the item count (at 20,000 it is the reference the million's CPU per item
// is compared with). Run with -benchtime 1x.
func BenchmarkMillionItemBackupPeakRSS(b *testing.B) {
	items := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("MAILVAULT_BENCH_ITEMS")); err == nil && v > 0 {
		items = v
	}
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		doc := "seed: 1\nmailboxes:\n  - address: big@contoso.test\n    folders:\n"
		// One huge folder and a few ordinary ones: nothing may hold a folder in memory.
		doc += fmt.Sprintf("      - path: Inbox\n        items: %d\n        dirty: [17, %d]\n        size: {min: 1KB, max: 1KB}\n", items*7/10, items/2)
		for _, f := range []string{"Archive", "Sent Items", "Deleted Items"} {
			doc += fmt.Sprintf("      - path: %s\n        items: %d\n        size: {min: 1KB, max: 1KB}\n", f, items/10)
		}
		tenant := filepath.Join(dir, "tenant.yaml")
		os.WriteFile(tenant, []byte(doc), 0o600)
		cmd := exec.Command(binary, "backup", "--tenant", tenant, "--data", filepath.Join(dir, "data"), "--progress", "none", "--format", "json")
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 3 {
			b.Fatalf("backup exit %d: %s", ee.ExitCode(), ee.Stderr)
		}
		var r struct {
			ItemsStored int     `json:"items_stored"`
			ItemsPerS   float64 `json:"items_per_s"`
			Requests    int     `json:"requests"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			b.Fatalf("report: %v %s", err, out)
		}
		if r.ItemsStored != items-2 {
			b.Fatalf("stored %d of %d", r.ItemsStored, items-2)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
		b.ReportMetric(r.ItemsPerS, "items/s")
		b.ReportMetric(float64(r.Requests)/float64(r.ItemsStored), "requests/item")
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		b.ReportMetric(float64(cpu.Microseconds())/float64(r.ItemsStored), "cpu-µs/item")
	}
}
