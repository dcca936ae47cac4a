package tests

import (
	"path/filepath"
	"testing"
)

// BenchmarkEWSBackup backs up 20,000 items (2-6 KB) in two mailboxes and a
// public folder through the real binary against `mailvault sim ews` over
// HTTPS with NTLM and impersonation, ExportItems of 100, and reports items/s
// and the SOAP requests each stored item cost.
//
//	go test -run '^$' -bench BenchmarkEWSBackup -benchtime 1x ./tests/
func BenchmarkEWSBackup(b *testing.B) {
	tenant := `seed: 15
mailboxes:
  - address: uma@contoso.test
    folders:
      - path: Inbox
        items: 9000
        size: {min: 2KB, max: 6KB}
      - path: Archive
        items: 5000
        size: {min: 2KB, max: 6KB}
  - address: vic@contoso.test
    folders:
      - path: Inbox
        items: 4000
        size: {min: 2KB, max: 6KB}
public_folders:
  - path: Shared
    items: 2000
    size: {min: 2KB, max: 6KB}
`
	for i := 0; i < b.N; i++ {
		sim := startEWS(b, tenant, false)
		data := filepath.Join(b.TempDir(), "data")
		r, res := sim.backup(b, data, "--impersonate", "--mailbox", "uma@contoso.test", "--mailbox", "vic@contoso.test", "--public-folder", "Shared")
		if res.code != 0 || r.ItemsStored != 20000 {
			b.Fatalf("exit %d stored %d: %s", res.code, r.ItemsStored, res.stderr)
		}
		b.ReportMetric(float64(r.ItemsStored)/r.DurationS, "items/s")
		b.ReportMetric(float64(r.Requests+r.ListRequests)/float64(r.ItemsStored), "requests/item")
	}
}
