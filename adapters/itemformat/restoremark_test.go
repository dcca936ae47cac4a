package itemformat

import (
	"errors"
	"testing"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
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
