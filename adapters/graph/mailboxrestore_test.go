package graph

import (
	"context"
	"errors"
	"strings"
	"testing"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/domain"
)

func marks(t *testing.T, stream []byte) []string {
	t.Helper()
	m, err := ft.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m.Props {
		if p.Named != nil && p.Named.ByName && p.Named.Set == markerSet && p.Named.Name == markerName {
			out = append(out, p.Text())
		}
	}
	return out
}

// An imported stream carries its restore mark: one, the newest (a stream
// backed up after an earlier restore keeps no stale mark), with the rest
// of the item as it was; a damaged stream is refused, not sent.
func TestMarkStream(t *testing.T) {
	item := &ft.Message{Props: ft.Props{ft.String16(ft.NewTag(0x001A, ft.TypeString), "IPM.Task"), ft.String16(ft.NewTag(0x0037, ft.TypeString), "Call the bank")}}
	stream, err := ft.Encode(item)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		stream []byte
		want   string
	}{
		{"unmarked", stream, "v1"},
		{"marked before", mustMark(t, stream, "v0"), "v2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := markStream(c.stream, c.want)
			if err != nil {
				t.Fatal(err)
			}
			if m := marks(t, got); len(m) != 1 || m[0] != c.want {
				t.Fatalf("marks %q, want one %q", m, c.want)
			}
			m, _ := ft.Decode(got)
			if m.Props.String(ft.NewTag(0x0037, ft.TypeString)) != "Call the bank" || m.Props.String(ft.NewTag(0x001A, ft.TypeString)) != "IPM.Task" {
				t.Fatalf("the item changed: %+v", m.Props)
			}
		})
	}
	if _, err := markStream([]byte("not a stream at all"), "v1"); !errors.Is(err, ft.ErrMalformed) {
		t.Fatalf("damaged stream: %v", err)
	}
}

func mustMark(t *testing.T, stream []byte, v string) []byte {
	t.Helper()
	b, err := markStream(stream, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The mailbox API cannot delete items: replacing a task, a note or an
// archive's item is refused with what to do instead, before any request.
func TestReplaceRefusedWhereOnlyTheMailboxAPIReaches(t *testing.T) {
	_, src := serve(t, map[string]recorded{})
	for _, c := range []struct{ mailbox, kind, what string }{
		{"a@x", domain.KindTasks, "tasks folders"},
		{"a@x", domain.KindNotes, "notes folders"},
		{"a@x" + domain.ArchiveSuffix, domain.KindMail, "archive mailboxes"},
	} {
		err := src.Delete(context.Background(), c.mailbox, "f", "i", c.kind)
		var fl *domain.Failure
		if !errors.As(err, &fl) || fl.Code != "ReplaceNotPossible" || !strings.Contains(fl.Message, c.what) || !strings.Contains(fl.Message, "--collisions copy") {
			t.Fatalf("%s %s: %v", c.mailbox, c.kind, err)
		}
	}
}
