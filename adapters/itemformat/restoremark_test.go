package itemformat

import (
	"errors"
	"testing"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/domain"
)

// An imported stream carries its restore mark: one, the newest (a stream
// backed up after an earlier restore keeps no stale mark), with the rest
// of the item as it was; a stream that does not decode is an error, and
// has no mark.
func TestMarkStream(t *testing.T) {
	item := &ft.Message{Props: ft.Props{ft.String16(tagMessageClass, "IPM.Task"), ft.String16(tagSubject, "Call the bank")}}
	stream, err := ft.Encode(item)
	if err != nil {
		t.Fatal(err)
	}
	earlier, err := MarkStream(stream, "v0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"unmarked", stream, "v1"},
		{"marked by an earlier restore", earlier, "v2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := MarkStream(c.stream, c.want)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := ft.Decode(got)
			marks := 0
			for _, p := range m.Props {
				if isRestoreMark(p) {
					marks++
				}
			}
			if StreamMark(got) != c.want || marks != 1 {
				t.Fatalf("mark %q (%d of them), want one %q", StreamMark(got), marks, c.want)
			}
			if m.Props.String(tagSubject) != "Call the bank" || m.Props.String(tagMessageClass) != "IPM.Task" {
				t.Fatalf("the item changed: %+v", m.Props)
			}
		})
	}
	if StreamMark(stream) != "" {
		t.Fatal("an unmarked stream has a mark")
	}
	if _, err := MarkStream([]byte("not a stream at all"), "v1"); !errors.Is(err, ft.ErrMalformed) {
		t.Fatalf("damaged stream: %v", err)
	}
	if StreamMark([]byte("not a stream at all")) != "" {
		t.Fatal("a damaged stream has a mark")
	}
}

// A message's Message-ID reads the same from its MIME and from its export
// stream (from the properties, without converting it), and is empty for
// what has none or does not decode.
func TestMessageID(t *testing.T) {
	raw := []byte("From: Ann <ann@contoso.test>\r\nSubject: Hi\r\nMessage-ID: <42@contoso.test>\r\n\r\nHello\r\n")
	stream, err := ExportStream(raw, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, format string
		content      []byte
		want         string
	}{
		{"MIME", domain.FormatMIME, raw, "<42@contoso.test>"},
		{"a Graph export stream", domain.FormatGraphExport, stream, "<42@contoso.test>"},
		{"an EWS export stream", domain.FormatEWSExport, stream, "<42@contoso.test>"},
		{"none", domain.FormatMIME, []byte("Subject: x\r\n\r\n"), ""},
		{"a stream that does not decode", domain.FormatGraphExport, []byte("not a stream"), ""},
		{"a legacy export blob", domain.FormatGraphExport, append([]byte(SimGraphExportPrefix), raw...), "<42@contoso.test>"},
	} {
		if got := MessageID(c.format, c.content); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
