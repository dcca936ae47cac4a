package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/ews"
	"github.com/mailvault/mailvault/adapters/ewssim"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/adapters/graphsim"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// The source contract (restic's one backend test suite, NATS's one store
// suite): the same cases run against every implementation of the
// pipeline's Source, each serving the same tenant model: the in-process
// tenant, the Graph client against the Graph simulator, and the EWS
// client against the EWS simulator. A source that passes can be put
// behind the pipeline; a case that fails for one names where the
// implementations drift apart.

const contractTenant = `seed: 3
mailboxes:
  - address: ann@contoso.test
    folders:
      - path: Inbox
        items: 45
        dirty: [7]
        size: {min: 1KB, max: 3KB}
      - path: Inbox/Projects
        items: 3
      - path: Calendar
        kind: calendar
        items: 5
      - path: Contacts
        kind: contacts
        items: 4
  - address: ben@contoso.test
    folders:
      - path: Inbox
        items: 2
`

type sourceImpl struct {
	name string
	// tracked: the source's listings carry change tracking (a sync token
	// on the last page); the in-process tenant lists from scratch.
	tracked bool
	open    func(t *testing.T, tenant *simtenant.Tenant) opened
}

// opened is a source under test and what the suite needs beside it.
type opened struct {
	src    pipeline.Source
	delete deleter
	// recorded, when set, is where the simulator wrote each request and
	// response (for schema validation).
	recorded string
}

// deleter deletes the first n live items of a folder on the server side,
// as a user would while a backup runs.
type deleter func(mailbox, path string, n int) error

var sourceImpls = []sourceImpl{
	{name: "in-process", open: func(t *testing.T, tenant *simtenant.Tenant) opened {
		src := simtenant.NewSource(tenant, nil)
		return opened{src: src, delete: src.Delete}
	}},
	{name: "graph", tracked: true, open: func(t *testing.T, tenant *simtenant.Tenant) opened {
		sim, err := graphsim.Start(tenant, graphsim.StartOptions{TLS: true, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		ep := sim.Endpoint
		hc := simClient(t, ep.CACert)
		tokens, err := graph.NewTokens(context.Background(), graph.AuthConfig{TenantID: ep.TenantID, ClientID: ep.ClientID,
			Secret: graph.NewSecret(ep.ClientSecret), TokenURL: ep.TokenURL, HTTP: hc})
		if err != nil {
			t.Fatal(err)
		}
		src, err := graph.NewSource(graph.Config{GraphURL: ep.GraphURL, BetaURL: ep.BetaURL, HTTP: hc, Tokens: tokens,
			Mailboxes: addresses(tenant), PageSize: 10, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return opened{src: src, delete: func(mailbox, path string, n int) error {
			return sim.Server.Mutate(graphsim.MutateRequest{Mailbox: mailbox, Folder: path, Delete: n})
		}}
	}},
	{name: "ews", tracked: true, open: func(t *testing.T, tenant *simtenant.Tenant) opened {
		recorded := t.TempDir()
		sim, err := ewssim.Start(tenant, ewssim.StartOptions{Options: ewssim.Options{RecordDir: recorded}, TLS: true, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		ep := sim.Endpoint
		hc := simClient(t, ep.CACert)
		src, err := ews.NewSource(ews.Config{URL: ep.EWSURL, Auth: "ntlm", Username: ep.Username, Secret: graph.NewSecret(ep.Password),
			Impersonate: true, Mailboxes: addresses(tenant), HTTP: hc, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return opened{src: src, recorded: recorded, delete: func(mailbox, path string, n int) error { return sim.Server.Mutate(mailbox, path, 0, 0, n) }}
	}},
}

// simClient is the HTTP client the sources use, trusting a simulator's CA.
func simClient(t *testing.T, caCert string) *http.Client {
	hc, err := graph.HTTPClient(caCert, graph.DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

func addresses(t *simtenant.Tenant) []string {
	var out []string
	for _, m := range t.Mailboxes {
		out = append(out, m.Address)
	}
	return out
}

func contractSource(t *testing.T, impl sourceImpl, model string) opened {
	t.Helper()
	tenant, err := simtenant.Parse([]byte(model))
	if err != nil {
		t.Fatal(err)
	}
	return impl.open(t, tenant)
}

// listAll lists a folder to its last page.
func listAll(t *testing.T, src pipeline.Source, mailbox, folderID string) ([]domain.ItemRef, domain.Page) {
	t.Helper()
	var items []domain.ItemRef
	token := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("listing %s did not end after 1,000 pages", folderID)
		}
		p, err := src.List(context.Background(), mailbox, folderID, token)
		if err != nil {
			t.Fatalf("list %s page %d: %v", folderID, pages+1, err)
		}
		items = append(items, p.Items...)
		if p.Next == "" {
			return items, p
		}
		token = p.Next
	}
}

func folderByPath(t *testing.T, src pipeline.Source, mailbox, path string) domain.Folder {
	t.Helper()
	folders, err := src.Folders(context.Background(), mailbox)
	if err != nil {
		t.Fatalf("folders of %s: %v", mailbox, err)
	}
	for _, f := range folders {
		if strings.EqualFold(f.Path, path) {
			return f
		}
	}
	var paths []string
	for _, f := range folders {
		paths = append(paths, f.Path)
	}
	t.Fatalf("%s has no folder %q: %v", mailbox, path, paths)
	return domain.Folder{}
}

func TestSourceContract(t *testing.T) {
	for _, impl := range sourceImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			o := contractSource(t, impl, contractTenant)
			src, deleteItems := o.src, o.delete
			ctx := context.Background()

			t.Run("mailboxes are the model's", func(t *testing.T) {
				got, err := src.Mailboxes(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					got[i] = strings.ToLower(got[i])
				}
				slices.Sort(got)
				if want := []string{"ann@contoso.test", "ben@contoso.test"}; !slices.Equal(got, want) {
					t.Fatalf("mailboxes %v, want %v", got, want)
				}
			})

			t.Run("folders carry the model's paths and kinds", func(t *testing.T) {
				for path, kind := range map[string]string{"Inbox": "mail", "Inbox/Projects": "mail", "Calendar": "calendar", "Contacts": "contacts"} {
					f := folderByPath(t, src, "ann@contoso.test", path)
					if f.ID == "" || f.Kind != kind {
						t.Errorf("folder %s: id %q kind %q, want an id and kind %s", path, f.ID, f.Kind, kind)
					}
				}
			})

			t.Run("listing pages add up to the folder, in position order", func(t *testing.T) {
				inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
				items, last := listAll(t, src, "ann@contoso.test", inbox.ID)
				if len(items) != 45 {
					t.Fatalf("listed %d items, want 45", len(items))
				}
				seen := map[string]bool{}
				for i, it := range items {
					if it.ID == "" || seen[it.ID] {
						t.Fatalf("item %d: id %q empty or listed twice", i+1, it.ID)
					}
					seen[it.ID] = true
					if it.Position != i+1 {
						t.Fatalf("item %d has position %d: positions must count the listing from 1", i+1, it.Position)
					}
				}
				if impl.tracked && (last.SyncToken == "" || !last.Tracked) {
					t.Errorf("last page: sync token %q tracked %v, want change tracking", last.SyncToken, last.Tracked)
				}
			})

			t.Run("change tracking: no changes, then a discarded sync state restarts the listing", func(t *testing.T) {
				if !impl.tracked {
					t.Skip("the in-process tenant lists every pass from scratch")
				}
				inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
				_, last := listAll(t, src, "ann@contoso.test", inbox.ID)
				p, err := src.List(ctx, "ann@contoso.test", inbox.ID, last.SyncToken)
				if err != nil || len(p.Items) != 0 || p.Next != "" || p.SyncToken == "" {
					t.Fatalf("a pass from the sync token with nothing changed: %d items, next %q, sync token %q, %v", len(p.Items), p.Next, p.SyncToken, err)
				}
				for what, tok := range map[string]string{
					"unreadable":              "not a token",
					"discarded by the server": last.SyncToken[:len(last.SyncToken)-6] + "AAAAAA",
				} {
					_, err := src.List(ctx, "ann@contoso.test", inbox.ID, tok)
					if fl := domain.AsFailure(err); err == nil || fl.Class != domain.ClassResync {
						t.Errorf("%s sync token: %v, want a resync failure (the pass lists again from the start)", what, err)
					}
				}
			})

			t.Run("a clean batch delivers every item with content", func(t *testing.T) {
				inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
				items, _ := listAll(t, src, "ann@contoso.test", inbox.ID)
				batch := items[10:20]
				var got []string
				err := src.Fetch(ctx, "ann@contoso.test", inbox.ID, batch, func(it domain.Item) error {
					if it.Failure != nil || len(it.Content) == 0 {
						return fmt.Errorf("item #%d: failure %v, %d bytes", it.Ref.Position, it.Failure, len(it.Content))
					}
					got = append(got, it.Ref.ID)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				want := make([]string, 0, len(batch))
				for _, it := range batch {
					want = append(want, it.ID)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("delivered %d items, want the %d asked for", len(got), len(want))
				}
			})

			t.Run("a dirty item never reaches storage and is named dirty", func(t *testing.T) {
				inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
				items, _ := listAll(t, src, "ann@contoso.test", inbox.ID)
				batch := items[4:9] // #5 - #9, #7 dirty
				delivered, failedDirty := 0, false
				err := src.Fetch(ctx, "ann@contoso.test", inbox.ID, batch, func(it domain.Item) error {
					if it.Failure != nil {
						if it.Ref.Position != 7 || it.Failure.Class != domain.ClassDirty {
							return fmt.Errorf("item #%d failed as %v", it.Ref.Position, it.Failure)
						}
						failedDirty = true
						return nil
					}
					if it.Ref.Position == 7 {
						return errors.New("the dirty item #7 was delivered with content")
					}
					delivered++
					return nil
				})
				var fl *domain.Failure
				switch {
				case err == nil && failedDirty && delivered == 4:
					// Per-item failure inside a successful request.
				case errors.As(err, &fl) && fl.Class == domain.ClassDirty:
					// The whole request failed dirty: the pipeline isolates.
				default:
					t.Fatalf("fetch of #5-#9 with #7 dirty: err %v, per-item dirty %v, %d delivered", err, failedDirty, delivered)
				}
			})

			t.Run("a single dirty item fails dirty", func(t *testing.T) {
				inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
				items, _ := listAll(t, src, "ann@contoso.test", inbox.ID)
				var itemFailure *domain.Failure
				err := src.Fetch(ctx, "ann@contoso.test", inbox.ID, items[6:7], func(it domain.Item) error {
					if it.Failure == nil {
						return errors.New("the dirty item #7 was delivered")
					}
					itemFailure = it.Failure
					return nil
				})
				fl := itemFailure
				if err != nil {
					fl = domain.AsFailure(err)
				}
				if fl == nil || fl.Class != domain.ClassDirty {
					t.Fatalf("fetch of #7 alone: %v / %v, want a dirty failure", err, itemFailure)
				}
			})

			t.Run("a batch as large as the source allows is served whole", func(t *testing.T) {
				inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
				items, _ := listAll(t, src, "ann@contoso.test", inbox.ID)
				clean := items[7:] // after the dirty #7
				n := len(clean)
				if bl, ok := src.(pipeline.BatchLimit); ok && bl.MaxBatch() > 0 && bl.MaxBatch() < n {
					n = bl.MaxBatch()
				}
				delivered := 0
				err := src.Fetch(ctx, "ann@contoso.test", inbox.ID, clean[:n], func(it domain.Item) error {
					if it.Failure != nil || len(it.Content) == 0 {
						return fmt.Errorf("item #%d: %v", it.Ref.Position, it.Failure)
					}
					delivered++
					return nil
				})
				if err != nil || delivered != n {
					t.Fatalf("a batch of %d (the source's limit, or every clean item): %d delivered, %v", n, delivered, err)
				}
			})

			// Last: it changes the folder. Items deleted at the source
			// after the listing are gone, never dirty or fatal, so the
			// pipeline records them as deleted and quarantines nothing.
			t.Run("items deleted after the listing are gone", func(t *testing.T) {
				projects := folderByPath(t, src, "ann@contoso.test", "Inbox/Projects")
				listed, _ := listAll(t, src, "ann@contoso.test", projects.ID)
				if len(listed) != 3 {
					t.Fatalf("listed %d items of Inbox/Projects, want 3", len(listed))
				}
				if err := deleteItems("ann@contoso.test", "Inbox/Projects", 1); err != nil {
					t.Fatal(err)
				}
				var itemFailure *domain.Failure
				err := src.Fetch(ctx, "ann@contoso.test", projects.ID, listed[:1], func(it domain.Item) error {
					if it.Failure == nil {
						return errors.New("the deleted item was delivered")
					}
					itemFailure = it.Failure
					return nil
				})
				fl := itemFailure
				if err != nil {
					fl = domain.AsFailure(err)
				}
				if fl == nil || fl.Class != domain.ClassGone {
					t.Fatalf("fetch of a deleted item: %v / %v, want gone", err, itemFailure)
				}
				again, _ := listAll(t, src, "ann@contoso.test", projects.ID)
				if len(again) != 2 || slices.ContainsFunc(again, func(r domain.ItemRef) bool { return r.ID == listed[0].ID }) {
					t.Fatalf("a listing after the deletion: %d items, want the 2 left", len(again))
				}
			})
		})
	}
}

// Past the server's budget every source says throttled, with the server's
// hint of how long to wait, never a generic error.
func TestSourceContractThrottling(t *testing.T) {
	model := "seed: 4\nlimits: {concurrency: 4, requests: 5, window: 10m}\nmailboxes:\n  - address: cy@contoso.test\n    folders:\n      - path: Inbox\n        items: 3\n"
	for _, impl := range sourceImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			src := contractSource(t, impl, model).src
			ctx := context.Background()
			var fl *domain.Failure
			folderID := ""
			for i := 0; i < 50 && fl == nil; i++ {
				var err error
				if folderID == "" {
					var folders []domain.Folder
					if folders, err = src.Folders(ctx, "cy@contoso.test"); err == nil {
						for _, f := range folders {
							if f.Path == "Inbox" {
								folderID = f.ID
							}
						}
					}
				} else {
					_, err = src.List(ctx, "cy@contoso.test", folderID, "")
				}
				if err != nil && !errors.As(err, &fl) {
					t.Fatalf("request %d failed without a classified failure: %v", i+1, err)
				}
			}
			if fl == nil {
				t.Fatal("50 requests against a budget of 5 per 10 minutes were never throttled")
			}
			if fl.Class != domain.ClassThrottled || fl.RetryAfter <= 0 || fl.RetryAfter > 10*time.Minute+time.Second {
				t.Fatalf("over budget: %+v, want throttled with a hint within the 10-minute window", fl)
			}
		})
	}
}
