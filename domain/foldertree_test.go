package domain

import (
	"reflect"
	"testing"
)

func TestFolderTreeApply(t *testing.T) {
	base := FolderTree{Token: "t1", Nodes: []FolderNode{
		{ID: "inbox", Parent: "root", Name: "Inbox", Kind: "mail", WellKnown: "inbox"},
		{ID: "rcpt", Parent: "inbox", Name: "Receipts", Kind: "mail"},
		{ID: "tasks", Parent: "root", Name: "Tasks"},
		{ID: "todo", Parent: "tasks", Name: "Mail to do", Kind: "mail"},
		{ID: "cal", Parent: "root", Name: "Calendar", Kind: "calendar", WellKnown: "calendar"},
	}}
	cases := []struct {
		name    string
		changes FolderChanges
		ok      bool
		want    []Folder
	}{
		{name: "nothing changed", changes: FolderChanges{From: TokenDigest("t1"), Token: "t2"}, ok: true, want: []Folder{
			{ID: "inbox", Path: "Inbox", Kind: "mail", WellKnown: "inbox"}, {ID: "rcpt", Path: "Inbox/Receipts", Kind: "mail"},
			{ID: "todo", Path: "Tasks/Mail to do", Kind: "mail"}, {ID: "cal", Path: "Calendar", Kind: "calendar", WellKnown: "calendar"}}},
		{name: "a folder added under a known one, another renamed", ok: true, changes: FolderChanges{From: TokenDigest("t1"), Token: "t2",
			Changed: []FolderNode{{ID: "y2026", Parent: "rcpt", Name: "2026", Kind: "mail"}, {ID: "inbox", Parent: "root", Name: "Posteingang", Kind: "mail", WellKnown: "inbox"}}},
			want: []Folder{{ID: "inbox", Path: "Posteingang", Kind: "mail", WellKnown: "inbox"}, {ID: "rcpt", Path: "Posteingang/Receipts", Kind: "mail"},
				{ID: "y2026", Path: "Posteingang/Receipts/2026", Kind: "mail"}, {ID: "todo", Path: "Tasks/Mail to do", Kind: "mail"},
				{ID: "cal", Path: "Calendar", Kind: "calendar", WellKnown: "calendar"}}},
		{name: "a removed folder takes its subtree with it", ok: true, changes: FolderChanges{From: TokenDigest("t1"), Token: "t2", Removed: []string{"inbox", "tasks"}},
			want: []Folder{{ID: "cal", Path: "Calendar", Kind: "calendar", WellKnown: "calendar"}}},
		{name: "a folder moved", ok: true, changes: FolderChanges{From: TokenDigest("t1"), Token: "t2", Changed: []FolderNode{{ID: "rcpt", Parent: "todo", Name: "Receipts", Kind: "mail"}}},
			want: []Folder{{ID: "inbox", Path: "Inbox", Kind: "mail", WellKnown: "inbox"}, {ID: "todo", Path: "Tasks/Mail to do", Kind: "mail"},
				{ID: "rcpt", Path: "Tasks/Mail to do/Receipts", Kind: "mail"}, {ID: "cal", Path: "Calendar", Kind: "calendar", WellKnown: "calendar"}}},
		{name: "a full listing replaces the tree", ok: true, changes: FolderChanges{Full: true, Token: "t9", Changed: []FolderNode{{ID: "n", Name: "Notes"}, {ID: "c", Name: "Contacts", Kind: "contacts"}}},
			want: []Folder{{ID: "c", Path: "Contacts", Kind: "contacts"}}},
		{name: "changes from another token are refused", changes: FolderChanges{From: TokenDigest("t0"), Token: "t2"}},
		{name: "changes to a tree never listed are refused", changes: FolderChanges{Token: "t2"}},
		{name: "a parent cycle puts its folders at the top", ok: true, changes: FolderChanges{From: TokenDigest("t1"), Token: "t2",
			Changed: []FolderNode{{ID: "a", Parent: "b", Name: "A", Kind: "mail"}, {ID: "b", Parent: "a", Name: "B", Kind: "mail"}, {ID: "self", Parent: "self", Name: "S", Kind: "mail"}}},
			want: []Folder{{ID: "inbox", Path: "Inbox", Kind: "mail", WellKnown: "inbox"}, {ID: "rcpt", Path: "Inbox/Receipts", Kind: "mail"},
				{ID: "todo", Path: "Tasks/Mail to do", Kind: "mail"}, {ID: "cal", Path: "Calendar", Kind: "calendar", WellKnown: "calendar"},
				{ID: "a", Path: "A", Kind: "mail"}, {ID: "b", Path: "B", Kind: "mail"}, {ID: "self", Path: "S", Kind: "mail"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := base
			if c.name == "changes to a tree never listed are refused" {
				tree = FolderTree{}
				c.changes.From = "x"
			}
			got, ok := tree.Apply(c.changes)
			if ok != c.ok {
				t.Fatalf("applied: %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			if got.Token != c.changes.Token {
				t.Errorf("token %q, want %q", got.Token, c.changes.Token)
			}
			if f := got.Folders(); !reflect.DeepEqual(f, c.want) {
				t.Errorf("folders\n got %+v\nwant %+v", f, c.want)
			}
			if len(base.Nodes) != 5 || base.Nodes[0].Name != "Inbox" {
				t.Errorf("the tree applied to was changed: %+v", base.Nodes)
			}
		})
	}
}
