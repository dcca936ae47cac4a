package itemformat

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-vcard"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// A contact's postal addresses go into the three slots Exchange has (work
// as named properties, home and other as tagged ones) and come back out
// as ADR with their TYPE; a fourth address has no slot and a second one of
// a type does not overwrite the first.
func TestContactAddressesRoundTrip(t *testing.T) {
	in := "From: x@contoso.test\r\nSubject: Ada\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\n" +
		"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ada Lovelace\r\n" +
		"ADR;TYPE=work:PO 7;;1 Main St;Springfield;IL;62701;USA\r\n" +
		"ADR;TYPE=home:;;12 Elm Rd;London;;NW1 6XE;United Kingdom\r\n" +
		"ADR:;;Hafenstr. 3;Hamburg;;20457;Germany\r\n" +
		"ADR;TYPE=home:;;Second home;Paris;;75001;France\r\n" +
		"END:VCARD\r\n"
	m, err := messageFromMIME([]byte(in), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := ft.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ft.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := named(back.Props, psetidAddress, 0x8046).Text(); got != "Springfield" {
		t.Fatalf("PidLidWorkAddressCity %q", got)
	}
	if got := back.Props.String(ft.NewTag(0x3A59, ft.TypeString)); got != "London" {
		t.Fatalf("PidTagHomeAddressCity %q", got)
	}
	raw, err := contactVCard(back)
	if err != nil {
		t.Fatal(err)
	}
	card, err := vcard.NewDecoder(bytes.NewReader(raw)).Decode()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range card.Addresses() {
		got = append(got, strings.Join(a.Params.Types(), ",")+"|"+a.PostOfficeBox+"|"+a.StreetAddress+"|"+a.Locality+"|"+a.Region+"|"+a.PostalCode+"|"+a.Country)
	}
	want := []string{
		"work|PO 7|1 Main St|Springfield|IL|62701|USA",
		"home||12 Elm Rd|London||NW1 6XE|United Kingdom",
		"||Hafenstr. 3|Hamburg||20457|Germany",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("addresses:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
