package domain

import (
	"reflect"
	"testing"
	"time"
)

// An items_stored event reads as the item_stored events it stands for,
// with the ids one event per item had; any other event as itself.
func TestExpand(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	batch := Event{Type: ItemsStored, Schema: SchemaVersion, ID: "b", Cause: "req", Run: "r", Time: at, Mailbox: "m", Folder: "Inbox", FolderID: "f", Pass: "p",
		Stored: []StoredItem{{Position: 3, ItemID: "i3", ChangeKey: "c", Size: 10, SHA256: "aa", NewBytes: 7}, {Position: 4, ItemID: "i4", Unchanged: true}}}
	cases := []struct {
		name string
		ev   Event
		want []Event
	}{
		{"a batch", batch, []Event{
			{Type: ItemStored, Schema: SchemaVersion, ID: StoredItemID("p", "m", "f", "i3", "c"), Cause: "req", Run: "r", Time: at, Mailbox: "m", Folder: "Inbox", FolderID: "f",
				Pass: "p", Position: 3, ItemID: "i3", ChangeKey: "c", Size: 10, SHA256: "aa", NewBytes: 7, Outcome: OutcomeStored},
			{Type: ItemStored, Schema: SchemaVersion, ID: StoredItemID("p", "m", "f", "i4", ""), Cause: "req", Run: "r", Time: at, Mailbox: "m", Folder: "Inbox", FolderID: "f",
				Pass: "p", Position: 4, ItemID: "i4", Outcome: OutcomeUnchanged},
		}},
		{"an empty batch", Event{Type: ItemsStored, Run: "r"}, []Event{}},
		{"one item (schema 1)", Event{Type: ItemStored, ID: "x", ItemID: "i"}, []Event{{Type: ItemStored, ID: "x", ItemID: "i"}}},
		{"anything else", Event{Type: BatchFetched, ID: "y"}, []Event{{Type: BatchFetched, ID: "y"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ev.Expand(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
