package itemformat

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-vcard"

	"github.com/mailvault/mailvault/domain"
)

func mimeCard(card string) []byte {
	return []byte("Content-Type: text/vcard; charset=utf-8\r\n\r\n" + card)
}

// Contacts come as Graph JSON or as the simulator's and Exchange's vCard 4.0
// (FN only); each is written as a 3.0 or 4.0 card with FN and N, and reads
// back to the same values.
func TestCardAs(t *testing.T) {
	graph := `{"displayName":"Ann Lee","givenName":"Ann","surname":"Lee","companyName":"Contoso; Ltd",` +
		`"emailAddresses":[{"address":"ann@contoso.test"}],"businessPhones":["+1 555 0100"],"mobilePhone":"+1 555 0101",` +
		`"businessAddress":{"street":"1 Main St","city":"Springfield","postalCode":"12345","countryOrRegion":"US"},` +
		`"personalNotes":"line one\r\nline two, with; punctuation\u0007","birthday":"1980-02-03T00:00:00Z"}`
	for _, c := range []struct {
		name, format, content, version string
		want                           map[string]string // property -> value read back
		lines                          []string          // lines the text must hold
	}{
		{"graph as 3.0", domain.FormatGraphJSON, graph, "3.0",
			map[string]string{"FN": "Ann Lee", "N": "Lee;Ann;;;", "ORG": `Contoso\; Ltd`, "BDAY": "1980-02-03",
				"NOTE": "line one\nline two, with; punctuation", "EMAIL": "ann@contoso.test"},
			[]string{"VERSION:3.0", "EMAIL;TYPE=INTERNET:ann@contoso.test", "TEL;TYPE=WORK:+1 555 0100", "TEL;TYPE=CELL:+1 555 0101",
				"ADR;TYPE=WORK:;;1 Main St;Springfield;;12345;US", `NOTE:line one\nline two\, with\; punctuation`}},
		{"graph as 4.0", domain.FormatGraphJSON, graph, "4.0",
			map[string]string{"FN": "Ann Lee", "N": "Lee;Ann;;;", "BDAY": "19800203"},
			[]string{"VERSION:4.0", "EMAIL:ann@contoso.test"}},
		{"simulator's FN-only 4.0 as 3.0", domain.FormatMIME, "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Jean Paul Sartre\r\nEMAIL;PREF=1:jp@x.test\r\nTEL;VALUE=uri:tel:+33-1\r\nKIND:individual\r\nGENDER:M\r\nEND:VCARD\r\n", "3.0",
			map[string]string{"FN": "Jean Paul Sartre", "N": "Sartre;Jean Paul;;;", "TEL": "+33-1", "X-GENDER": "M"},
			[]string{"EMAIL;TYPE=PREF,INTERNET:jp@x.test", "TEL:+33-1"}},
		{"Family, Given", domain.FormatMIME, "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Lee\\, Ann\r\nEND:VCARD\r\n", "3.0",
			map[string]string{"N": "Lee;Ann;;;"}, nil},
		{"only N", domain.FormatMIME, "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lee;Ann;;Dr.;\r\nEND:VCARD\r\n", "3.0",
			map[string]string{"FN": "Dr. Ann Lee", "N": "Lee;Ann;;Dr.;"}, nil},
		{"nothing but an address", domain.FormatMIME, "BEGIN:VCARD\r\nVERSION:4.0\r\nEMAIL:x@y.test\r\nEND:VCARD\r\n", "3.0",
			map[string]string{"FN": "x@y.test", "N": "x@y.test;;;;"}, nil},
		{"a long name folds whole characters", domain.FormatMIME, "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:" + strings.Repeat("Grüße ", 30) + "Ende\r\nEND:VCARD\r\n", "3.0",
			map[string]string{"FN": strings.Repeat("Grüße ", 30) + "Ende"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			card, err := Card(c.format, mimeOrJSON(c.format, c.content))
			if err != nil {
				t.Fatal(err)
			}
			b := encodeFolded(t, card, c.version)
			unfolded := strings.ReplaceAll(string(b), "\r\n ", "")
			for _, l := range c.lines {
				if !strings.Contains(unfolded, l+"\r\n") {
					t.Errorf("no line %q in\n%s", l, unfolded)
				}
			}
			back, err := vcard.NewDecoder(bytes.NewReader(b)).Decode()
			if err != nil {
				t.Fatalf("read back: %v\n%s", err, b)
			}
			if got := back.Value(vcard.FieldVersion); got != c.version {
				t.Errorf("version %q", got)
			}
			for k, v := range c.want {
				got := back.Value(k)
				if k != vcard.FieldName && k != vcard.FieldOrganization {
					got = strings.ReplaceAll(got, `\;`, ";")
				}
				if got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if _, err := CardAs(vcard.Card{}, "2.1"); err == nil {
		t.Error("version 2.1 accepted")
	}
}

func mimeOrJSON(format, content string) []byte {
	if format == domain.FormatMIME {
		return mimeCard(content)
	}
	return []byte(content)
}

// encodeFolded writes card as version and checks that every line is folded
// at 75 octets, on a character boundary when the text is UTF-8 (bytes a
// server sent that are not pass through as they are).
func encodeFolded(t *testing.T, card vcard.Card, version string) []byte {
	t.Helper()
	out, err := CardAs(card, version)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeCard(out)
	if err != nil {
		t.Fatal(err)
	}
	valid := utf8.Valid(b)
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n") {
		if len(line) > 75 || valid && !utf8.ValidString(line) {
			t.Fatalf("line not folded at 75 octets on a character boundary: %q", line)
		}
	}
	return b
}
