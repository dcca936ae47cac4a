package ews

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/ewssim"
	"github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

const schemaDir = "../../tests/testdata/ews-schema"

const tenantYAML = `seed: 4
mailboxes:
  - address: nina@contoso.test
    folders:
      - path: Inbox
        items: 600
        size: {min: 1KB, max: 2KB}
      - path: Inbox/Receipts
        items: 5
      - path: Calendar
        kind: calendar
        items: 20
      - path: Contacts
        kind: contacts
        items: 10
public_folders:
  - path: Projects
    items: 30
  - path: Projects/2026
    items: 10
  - path: Archive
    items: 5
`

func startSim(t *testing.T, yaml string, record string) (*ewssim.Running, *http.Client) {
	t.Helper()
	tn, err := simtenant.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := ewssim.Start(tn, ewssim.StartOptions{TLS: true, Dir: t.TempDir(), Options: ewssim.Options{RecordDir: record}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	pem, _ := os.ReadFile(sim.Endpoint.CACert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return sim, &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// drain lists and fetches a whole folder the way the engine would.
func drain(t *testing.T, src *Source, mailbox, folderID string) (stored map[string][]byte, token string) {
	t.Helper()
	ctx := context.Background()
	stored = map[string][]byte{}
	tok := ""
	for {
		page, err := src.List(ctx, mailbox, folderID, tok)
		if err != nil {
			t.Fatalf("list %s: %v", folderID, err)
		}
		for i := 0; i < len(page.Items); i += DefaultBatch {
			batch := page.Items[i:min(i+DefaultBatch, len(page.Items))]
			err := src.Fetch(ctx, mailbox, folderID, batch, func(it domain.Item) error {
				if it.Failure != nil {
					t.Fatalf("item %s failed: %v", it.Ref.ID, it.Failure)
				}
				stored[it.Ref.ID] = it.Content
				return nil
			})
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
		}
		if page.Next == "" {
			return stored, page.SyncToken
		}
		tok = page.Next
	}
}

func TestBackupOverEWSValidatesAgainstTheSchema(t *testing.T) {
	for _, auth := range []string{AuthNTLM, AuthBasic} {
		t.Run(auth, func(t *testing.T) {
			rec := t.TempDir()
			sim, hc := startSim(t, tenantYAML, rec)
			src, err := NewSource(Config{URL: sim.Endpoint.EWSURL, Auth: auth, Username: sim.Endpoint.Username, Secret: credential.New(sim.Endpoint.Password),
				Impersonate: auth == AuthNTLM, Mailboxes: []string{"nina@contoso.test"}, PublicFolders: []string{"Projects/**"}, HTTP: hc})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			mbxs, err := src.Mailboxes(ctx)
			if err != nil || strings.Join(mbxs, ",") != "nina@contoso.test,"+PublicFolders {
				t.Fatalf("mailboxes %v %v", mbxs, err)
			}
			folders, err := src.Folders(ctx, "nina@contoso.test")
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, f := range folders {
				paths = append(paths, f.Path+":"+f.Kind+":"+f.WellKnown)
			}
			sort.Strings(paths)
			if got := strings.Join(paths, " "); got != "Calendar:calendar:calendar Contacts:contacts:contacts Inbox/Receipts:mail: Inbox:mail:inbox" {
				t.Fatalf("folders: %s", got)
			}
			pub, err := src.Folders(ctx, PublicFolders)
			if err != nil || len(pub) != 2 || pub[0].Path != "Projects" || pub[1].Path != "Projects/2026" {
				t.Fatalf("public folders %+v %v", pub, err)
			}
			total := 0
			for _, f := range append(folders, pub...) {
				mbx := "nina@contoso.test"
				if f.Path == "Projects" || f.Path == "Projects/2026" {
					mbx = PublicFolders
				}
				got, tok := drain(t, src, mbx, f.ID)
				total += len(got)
				if tok == "" {
					t.Fatalf("%s: no sync token", f.Path)
				}
				for _, c := range got {
					if _, err := fasttransfer.Decode(c); err != nil {
						t.Fatalf("%s: content is not an export stream: %v", f.Path, err)
					}
				}
				// A second sync from the token has no changes.
				page, err := src.List(ctx, mbx, f.ID, tok)
				if err != nil || len(page.Items) != 0 || page.SyncToken == "" {
					t.Fatalf("incremental %s: %+v %v", f.Path, page, err)
				}
			}
			if total != 600+5+20+10+30+10 {
				t.Fatalf("stored %d items", total)
			}
			if auth == AuthNTLM && sim.Server.Stats().NTLMLogons == 0 {
				t.Fatal("no NTLM logon happened")
			}
			validate(t, rec)
		})
	}
}

// validate runs every recorded request and response through the schemas.
func validate(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
	if len(files) == 0 {
		t.Fatal("nothing was recorded")
	}
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not installed (apt-get install libxml2-utils); .ci/run installs it")
	}
	out, err := exec.Command(xmllint, append([]string{"--noout", "--schema", filepath.Join(schemaDir, "messages.xsd")}, files...)...).CombinedOutput()
	if err != nil {
		var bad []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasSuffix(l, " validates") && l != "" && len(bad) < 12 {
				bad = append(bad, l)
			}
		}
		t.Fatalf("schema validation failed:\n%s", strings.Join(bad, "\n"))
	}
}

// UploadItems takes an exported blob back (restore) and the item exports
// again byte for byte; the traffic is schema-valid.
func TestUploadItemsRoundTrip(t *testing.T) {
	rec := t.TempDir()
	sim, hc := startSim(t, tenantYAML, rec)
	src, err := NewSource(Config{URL: sim.Endpoint.EWSURL, Auth: AuthBasic, Username: sim.Endpoint.Username, Secret: credential.New(sim.Endpoint.Password),
		Mailboxes: []string{"nina@contoso.test"}, HTTP: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	folders, err := src.Folders(ctx, "nina@contoso.test")
	if err != nil {
		t.Fatal(err)
	}
	var receipts domain.Folder
	for _, f := range folders {
		if f.Path == "Inbox/Receipts" {
			receipts = f
		}
	}
	before, tok := drain(t, src, "nina@contoso.test", receipts.ID)
	var items strings.Builder
	var blobs []string
	for _, blob := range before {
		blobs = append(blobs, string(blob))
		items.WriteString(`<t:Item CreateAction="CreateNew"><t:ParentFolderId Id="` + receipts.ID + `"/><t:Data>` + base64.StdEncoding.EncodeToString(blob) + `</t:Data></t:Item>`)
	}
	inner, err := src.t.call(ctx, "", op("UploadItems", "")+`<m:Items>`+items.String()+`</m:Items></m:UploadItems>`)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := messagesOf[responseMessage](inner)
	if err != nil || len(msgs) != len(blobs) {
		t.Fatalf("upload replies %d, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if f := messageFailure(m); f != nil {
			t.Fatalf("upload failed: %v", f)
		}
	}
	after, _ := drain(t, src, "nina@contoso.test", receipts.ID) // a fresh full listing
	if len(after) != 2*len(before) {
		t.Fatalf("%d items after uploading %d into %d", len(after), len(blobs), len(before))
	}
	seen := map[string]int{}
	for _, b := range after {
		seen[string(b)]++
	}
	for _, b := range blobs {
		if seen[b] != 2 {
			t.Fatal("an uploaded item does not export byte for byte as the original")
		}
	}
	page, err := src.List(ctx, "nina@contoso.test", receipts.ID, tok)
	if err != nil || len(page.Items) != len(blobs) {
		t.Fatalf("the incremental sync after the upload lists %d new items, want %d: %v", len(page.Items), len(blobs), err)
	}
	validate(t, rec)
}
