package simtenant

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/domain"
)

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"unknown field", "seed: 1\nmailboxes:\n  - address: a@b.test\n    folderz: []\n", "4:"},
		{"bad duration", "latency: fast\nmailboxes:\n  - address: a@b.test\n", "1:"},
		{"dirty outside", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Inbox\n        items: 3\n        dirty: [1, 9]\n", "6: folder \"Inbox\": dirty position 9"},
		{"bad kind", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Inbox\n        kind: configuration\n", "5:"},
		{"bad kind in an archive", "mailboxes:\n  - address: a@b.test\n    archive:\n      - path: Inbox\n        kind: configuration\n", "5:"},
		{"no mailboxes", "seed: 3\n", "1: the tenant has no mailboxes"},
		{"duplicate mailbox", "mailboxes:\n  - address: a@b.test\n  - address: A@b.test\n", "3: mailbox"},
		{"syntax", "mailboxes:\n  - address: [\n", "2:"},
		{"bad size", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: X\n        size: {min: 2KB, max: 1KB}\n", "5:"},
		{"empty", "", "1: the tenant file is empty"},
		{"empty level", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Inbox//x\n", "4:"},
		{"absurd items", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Inbox\n        items: 9999999999999\n", "5: folder \"Inbox\": items must be between 0 and"},
		{"two billion items", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Inbox\n        items: 2000000000\n", "5: folder \"Inbox\": items must be"},
		{"items over all folders", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: A\n        items: 15000000\n      - path: B\n        items: 15000000\n", "7: the tenant holds more than"},
		{"900 GB items", "mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Inbox\n        size: {min: 900GB}\n", "5: folder \"Inbox\": an item's size must be at most 150MB"},
		{"public folder items", "public_folders:\n  - path: P\n    items: 9999999999999\n", "3: public folder \"P\": items must be"},
		{"latency of an hour", "latency: 1h\nmailboxes:\n  - address: a@b.test\n", "1: latency must be between 0 and 1m"},
		{"absurd limits", "limits: {concurrency: 4, requests: 1000000000000, window: 10s}\nmailboxes:\n  - address: a@b.test\n", "1: limits must stay within"},
		{"budget without recharge", "ews:\n  budget: {burst: 10, cutoff: 5}\nmailboxes:\n  - address: a@b.test\n", "2: ews.budget: recharge"},
		{"budget's absurd penalty", "ews:\n  budget:\n    recharge: 5\n    cutoff: 5\n    penalty: 9000h\nmailboxes:\n  - address: a@b.test\n", "5: ews.budget: penalty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %v, want prefix %q", err, c.want)
			}
		})
	}
}

func TestParseContractExample(t *testing.T) {
	doc := `seed: 7
limits: {concurrency: 4, requests: 10000, window: 10m}
latency: 0ms
mailboxes:
  - address: alice@contoso.test
    folders:
      - path: Inbox
        kind: mail
        items: 400
        dirty: [2]
        throttle: {items: 700, window: 1h}
      - path: Inbox/Projects
        items: 5
        size: {min: 1KB, max: 1KB}
`
	tn, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	f := tn.Mailboxes[0].Folders[0]
	if tn.Seed != 7 || f.Items != 400 || f.Dirty[0] != 2 || f.Throttle.Items != 700 || time.Duration(f.Throttle.Window) != time.Hour {
		t.Fatalf("parsed %+v", tn)
	}
	p := tn.Mailboxes[0].Folders[1]
	if p.Kind != domain.KindMail {
		t.Fatalf("default kind %q", p.Kind)
	}
	for pos := 1; pos <= 5; pos++ {
		if n := len(Content(tn.Seed, "alice@contoso.test", &p, pos)); n != 1024 {
			t.Fatalf("item %d is %d bytes, want 1024", pos, n)
		}
	}
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestSourceEnforcesDirtyAndThrottle(t *testing.T) {
	tn, err := Parse([]byte("mailboxes:\n  - address: a@b.test\n    folders:\n      - path: Calendar\n        kind: calendar\n        items: 1000\n        dirty: [5]\n        throttle: {items: 300, window: 1m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	src := NewSource(tn, clock)
	ctx := context.Background()
	folders, _ := src.Folders(ctx, "a@b.test")
	page, err := src.List(ctx, "a@b.test", folders[0].ID, "")
	if err != nil || len(page.Items) != 1000 || page.Next != "" {
		t.Fatalf("list: %v %d %q", err, len(page.Items), page.Next)
	}
	fetch := func(items []domain.ItemRef) error {
		return src.Fetch(ctx, "a@b.test", folders[0].ID, items, func(domain.Item) error { return nil })
	}
	var f *domain.Failure
	if err := fetch(page.Items[0:10]); !errors.As(err, &f) || f.Code != "ErrorCorruptData" || f.Class != domain.ClassDirty {
		t.Fatalf("dirty batch: %v", err)
	}
	if err := fetch(page.Items[10:310]); err != nil {
		t.Fatalf("clean batch: %v", err)
	}
	clock.now = clock.now.Add(10 * time.Second)
	if err := fetch(page.Items[310:320]); !errors.As(err, &f) || f.Class != domain.ClassThrottled || f.RetryAfter != 50*time.Second {
		t.Fatalf("throttled: %v", err)
	}
	clock.now = clock.now.Add(50 * time.Second)
	if err := fetch(page.Items[310:320]); err != nil {
		t.Fatalf("after window: %v", err)
	}
	if err := fetch([]domain.ItemRef{{ID: "AAMkAIforged"}}); !errors.As(err, &f) || f.Class != domain.ClassFatal {
		t.Fatalf("foreign id: %v", err)
	}
}
