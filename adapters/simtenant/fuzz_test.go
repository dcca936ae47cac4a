package simtenant

import (
	"testing"
)

// A tenant file is a user's: any file is read, or refused with an error
// naming its line, never a panic. A small tenant that is read also builds
// a simulator's store whose every item has content of its stated size.
func FuzzTenantFile(f *testing.F) {
	for _, s := range []string{
		"seed: 7\nlimits: {concurrency: 4, requests: 10000, window: 10m}\nmailboxes:\n  - address: a@contoso.test\n    folders:\n      - path: Inbox\n        items: 3\n        size: {min: 1KB, max: 2KB}\n",
		"mailboxes:\n  - address: b@contoso.test\n    folders:\n      - path: Calendar\n        kind: calendar\n        items: 2\n        dirty: [1]\n      - path: Contacts\n        kind: contacts\n        items: 1\n",
		"public_folders:\n  - path: Company/Announcements\n    items: 2\nmailboxes: []\n",
		"mailboxes:\n  - address: c@contoso.test\n    folders:\n      - path: Inbox\n        items: 9999999999999\n",
		"load: [{at: 10s, capacity: 0.5}]\news: {budget: {recharge: 10, burst: 20}}\nmailboxes:\n  - address: d@contoso.test\n    folders:\n      - {path: Inbox, items: 2, throttle: {items: 1, window: 5m}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tn, err := Parse(data)
		if err != nil {
			return
		}
		items := 0
		for _, m := range tn.Mailboxes {
			for _, fl := range m.Folders {
				items += fl.Items
			}
		}
		for _, fl := range tn.PublicFolders {
			items += fl.Items
		}
		if items > 200 {
			return // the bounds keep big tenants possible; the fuzzer checks small ones
		}
		s := NewStore(tn)
		for _, b := range s.Boxes() {
			for _, fl := range b.Folders {
				for pos := 1; pos <= len(fl.Items) && pos <= 3; pos++ {
					if got, want := int64(len(s.Content(fl, pos))), s.Size(fl, pos); got != want {
						t.Fatalf("item %d of %s: %d bytes of content, size says %d", pos, fl.Path, got, want)
					}
				}
			}
		}
	})
}
