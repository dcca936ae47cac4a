package itemformat

import (
	"encoding/base64"
	"testing"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// BenchmarkStreamToMIME converts export streams of the simulator's
// messages (its default sizes: median about 30 KB, most of it an
// attachment) to MIME, as export does for each item, beside a ceiling in
// the same run: base64 of the streams' attachment bytes alone, the least
// any writer of the same MIME must do.
//
//	go test -run '^$' -bench BenchmarkStreamToMIME ./adapters/itemformat/
func BenchmarkStreamToMIME(b *testing.B) {
	f := &simtenant.Folder{Path: "Inbox", Kind: domain.KindMail, Items: 200}
	var streams [][]byte
	var attachments [][]byte
	total := 0
	for pos := 1; pos <= f.Items; pos++ {
		s, err := ExportStream(simtenant.Content(1, "a@contoso.test", f, pos), true)
		if err != nil {
			b.Fatal(err)
		}
		streams = append(streams, s)
		total += len(s)
		m, _ := ft.Decode(s)
		for _, a := range m.Attachments {
			attachments = append(attachments, a.Props.Bytes(tagAttachData))
		}
	}
	b.Run("convert", func(b *testing.B) {
		b.SetBytes(int64(total / len(streams)))
		b.ReportAllocs()
		for i := range b.N {
			if _, err := MIME(domain.FormatGraphExport, streams[i%len(streams)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ceiling-base64-only", func(b *testing.B) {
		b.SetBytes(int64(total / len(streams)))
		for i := range b.N {
			a := attachments[i%len(attachments)]
			base64.StdEncoding.EncodeToString(a)
		}
	})
	b.Run("simulator-generates", func(b *testing.B) {
		for i := range b.N {
			if _, err := ExportStream(simtenant.Content(1, "a@contoso.test", f, 1+i%f.Items), true); err != nil {
				b.Fatal(err)
			}
		}
	})
}
