package tests

import (
	"context"
	"errors"
	"testing"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

// The restore-target contract: the same cases against every source that
// is also a restore target (the Graph client against the Graph simulator,
// the EWS client against the EWS simulator; the in-process tenant is
// read-only). Each restores an item as the server delivered it to a backup,
// so the format is each target's own.
func TestRestoreTargetContract(t *testing.T) {
	for _, impl := range sourceImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			o := contractSource(t, impl, contractTenant)
			src := o.src
			target, ok := src.(pipeline.RestoreTarget)
			if !ok {
				t.Skipf("%s is not a restore target", impl.name)
			}
			ctx := context.Background()
			inbox := folderByPath(t, src, "ann@contoso.test", "Inbox")
			items, _ := listAll(t, src, "ann@contoso.test", inbox.ID)
			var backedUp domain.Item
			if err := src.Fetch(ctx, "ann@contoso.test", inbox.ID, items[:1], func(it domain.Item) error { backedUp = it; return nil }); err != nil {
				t.Fatal(err)
			}
			format := backedUp.Format
			if format == "" {
				format = domain.FormatMIME
			}
			restored := pipeline.RestoreItem{VersionID: "00c0ffee00c0ffee", Mailbox: "ann@contoso.test", Folder: "Inbox", ItemID: backedUp.Ref.ID,
				Kind: "mail", Format: format, Content: backedUp.Content}
			const mailbox, path = "ben@contoso.test", "Restored/2026/Deep"

			folderID, made, err := target.EnsureFolder(ctx, mailbox, path, "mail")
			if err != nil || folderID == "" || !made {
				t.Fatalf("create %s: %q created %v, %v", path, folderID, made, err)
			}
			t.Run("a folder path is created once, level by level", func(t *testing.T) {
				again, created, err := target.EnsureFolder(ctx, mailbox, path, "mail")
				if err != nil || again != folderID || created {
					t.Fatalf("the same path again: %q created %v, %v, want %q found", again, created, err, folderID)
				}
				for _, level := range []string{"Restored", "Restored/2026", path} {
					folderByPath(t, src, mailbox, level)
				}
				if f := folderByPath(t, src, mailbox, path); f.ID != folderID {
					t.Fatalf("the folder lists as %q, created as %q", f.ID, folderID)
				}
			})

			t.Run("an item not yet restored is not found", func(t *testing.T) {
				if id, found, err := target.Lookup(ctx, mailbox, folderID, restored); err != nil || found {
					t.Fatalf("lookup before create: %q %v %v", id, found, err)
				}
			})

			var created pipeline.CreateResult
			t.Run("a created item is found by what was restored, and listed", func(t *testing.T) {
				if created, err = target.Create(ctx, mailbox, folderID, restored); err != nil || created.ID == "" {
					t.Fatalf("create: %+v %v", created, err)
				}
				if id, found, err := target.Lookup(ctx, mailbox, folderID, restored); err != nil || !found || id != created.ID {
					t.Fatalf("lookup after create: %q found %v %v, want %q", id, found, err, created.ID)
				}
				if listed, _ := listAll(t, src, mailbox, folderID); len(listed) != 1 {
					t.Fatalf("the folder lists %d items, want the one restored", len(listed))
				}
			})

			t.Run("a second create is a copy, and delete removes one", func(t *testing.T) {
				second, err := target.Create(ctx, mailbox, folderID, restored)
				if err != nil || second.ID == "" || second.ID == created.ID {
					t.Fatalf("create again: %+v %v (first %q)", second, err, created.ID)
				}
				if listed, _ := listAll(t, src, mailbox, folderID); len(listed) != 2 {
					t.Fatalf("the folder lists %d items, want 2", len(listed))
				}
				if err := target.Delete(ctx, mailbox, folderID, second.ID, "mail"); err != nil {
					t.Fatalf("delete: %v", err)
				}
				if listed, _ := listAll(t, src, mailbox, folderID); len(listed) != 1 {
					t.Fatalf("after delete the folder lists %d items, want 1", len(listed))
				}
			})

			t.Run("content the target cannot take is refused as fatal, not retried", func(t *testing.T) {
				odd := restored
				odd.VersionID, odd.Format, odd.Content = "0badf00d0badf00d", "no-such-format", []byte("?")
				_, err := target.Create(ctx, mailbox, folderID, odd)
				var fl *domain.Failure
				if !errors.As(err, &fl) || fl.Class != domain.ClassFatal {
					t.Fatalf("create from an unknown format: %v, want a fatal failure", err)
				}
			})

			if o.recorded != "" {
				t.Run("every request is valid by the server's schema", func(t *testing.T) {
					if bad := validateRecorded(t, o.recorded); bad != "" {
						t.Fatalf("requests or responses the schema refuses:\n%s", bad)
					}
				})
			}
		})
	}
}
