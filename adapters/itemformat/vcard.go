package itemformat

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-vcard"
)

// CardVersions are the vCard versions export writes: 3.0 (RFC 2426), what
// Outlook and most address books import, and 4.0 (RFC 6350).
var CardVersions = []string{"3.0", "4.0"}

// structuredFields hold ";"-separated components: their values keep the
// separators and "\;" inside a component (go-vcard's decoder leaves both),
// while every other value is plain text.
var structuredFields = map[string]bool{vcard.FieldName: true, vcard.FieldAddress: true,
	vcard.FieldOrganization: true, vcard.FieldGender: true, vcard.FieldClientPIDMap: true}

// onlyInV4 are RFC 6350 properties vCard 3.0 lacks; a 3.0 card carries
// them as the X- extensions address books already read (X-ANNIVERSARY,
// X-GENDER), so nothing is dropped.
var onlyInV4 = []string{vcard.FieldAnniversary, vcard.FieldGender, vcard.FieldKind, vcard.FieldLanguage,
	vcard.FieldClientPIDMap, vcard.FieldXML, vcard.FieldMember, vcard.FieldRelated, vcard.FieldCalendarAddressURI}

// CardAs makes a copy of card fit for a vCard version: both versions need
// FN and N (a missing one is derived from the other, or from the
// organisation or e-mail address), and 3.0 takes its own forms of type
// parameters, telephone numbers and birthdays.
func CardAs(card vcard.Card, version string) (vcard.Card, error) {
	if !slices.Contains(CardVersions, version) {
		return nil, fmt.Errorf("vCard version %q: use %s", version, strings.Join(CardVersions, " or "))
	}
	out := vcard.Card{}
	for k, fields := range card {
		k = strings.ToUpper(k)
		for _, f := range fields {
			c := *f
			c.Params = vcard.Params{}
			for pk, pv := range f.Params {
				c.Params[strings.ToUpper(pk)] = slices.Clone(pv)
			}
			out[k] = append(out[k], &c)
		}
	}
	out.SetValue(vcard.FieldVersion, version)
	ensureNames(out)
	if version == "4.0" {
		vcard.ToV4(out)
		return out, nil
	}
	for _, k := range onlyInV4 {
		if fields, ok := out[k]; ok {
			individual := k == vcard.FieldKind && strings.EqualFold(out.Value(k), string(vcard.KindIndividual))
			delete(out, k)
			if !individual {
				out["X-"+k] = fields
			}
		}
	}
	for k, fields := range out {
		for _, f := range fields {
			toV3(k, f)
		}
	}
	return out, nil
}

// toV3 rewrites one field's RFC 6350 forms in RFC 2426's.
func toV3(key string, f *vcard.Field) {
	p := f.Params
	if pref := p.Get(vcard.ParamPreferred); pref != "" {
		delete(p, vcard.ParamPreferred)
		if pref == "1" {
			p.Add(vcard.ParamType, "pref")
		}
	}
	delete(p, "PID")
	if key == vcard.FieldTelephone && strings.EqualFold(p.Get(vcard.ParamValue), "uri") {
		delete(p, vcard.ParamValue)
		f.Value = strings.TrimPrefix(strings.TrimPrefix(f.Value, "tel:"), "TEL:")
	}
	if key == vcard.FieldEmail && !p.HasType("internet") {
		p.Add(vcard.ParamType, "internet")
	}
	if key == vcard.FieldBirthday {
		if t, err := time.Parse("20060102", f.Value); err == nil {
			f.Value = t.Format("2006-01-02")
		}
	}
	for i, t := range p[vcard.ParamType] {
		p[vcard.ParamType][i] = strings.ToUpper(t)
	}
}

// ensureNames gives the card the FN and N both versions require.
func ensureNames(card vcard.Card) {
	fn := strings.TrimSpace(card.Value(vcard.FieldFormattedName))
	n := card.Name()
	if fn == "" && n != nil {
		fn = strings.Join(strings.Fields(strings.Join([]string{n.HonorificPrefix, n.GivenName, n.AdditionalName,
			n.FamilyName, n.HonorificSuffix}, " ")), " ")
		fn = strings.ReplaceAll(fn, `\;`, ";")
	}
	if fn == "" {
		fn = firstNonEmpty(card.Value(vcard.FieldOrganization), card.Value(vcard.FieldEmail))
		fn = strings.ReplaceAll(strings.SplitN(fn, ";", 2)[0], `\;`, ";")
	}
	if fn == "" {
		fn = "(no name)"
	}
	if card.Value(vcard.FieldFormattedName) == "" {
		card.SetValue(vcard.FieldFormattedName, fn)
	}
	if n == nil {
		card.SetName(nameFromDisplay(fn))
	}
}

// nameFromDisplay splits a display name the way Outlook files one: "Family,
// Given" when it has a comma, else the last word is the family name.
func nameFromDisplay(fn string) *vcard.Name {
	if family, given, ok := strings.Cut(fn, ","); ok {
		return &vcard.Name{FamilyName: component(strings.TrimSpace(family)), GivenName: component(strings.TrimSpace(given))}
	}
	words := strings.Fields(fn)
	if len(words) < 2 || strings.Contains(fn, "@") {
		return &vcard.Name{FamilyName: component(fn)}
	}
	return &vcard.Name{GivenName: component(strings.Join(words[:len(words)-1], " ")),
		FamilyName: component(words[len(words)-1])}
}

// component escapes text for one component of a structured value.
func component(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), ";", `\;`)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// unescapeText undoes the "\;" go-vcard's decoder leaves in plain text
// values, so that every plain value holds the text itself.
func unescapeText(card vcard.Card) {
	for k, fields := range card {
		if structuredFields[strings.ToUpper(k)] {
			continue
		}
		for _, f := range fields {
			f.Value = strings.ReplaceAll(f.Value, `\;`, ";")
		}
	}
}

// EncodeCard writes a card as RFC 2426 / RFC 6350 text: VERSION first,
// text escaped (line breaks of any kind as \n, other control characters
// dropped), parameter values quoted where they must be, lines folded at 75
// octets without splitting a character.
func EncodeCard(card vcard.Card) ([]byte, error) {
	version := card.Value(vcard.FieldVersion)
	if version == "" {
		return nil, fmt.Errorf("vCard without VERSION")
	}
	var b bytes.Buffer
	b.WriteString("BEGIN:VCARD\r\n")
	writeFolded(&b, "VERSION:"+version)
	keys := make([]string, 0, len(card))
	for k := range card {
		if k != vcard.FieldVersion {
			keys = append(keys, k)
		}
	}
	// FN and N first, as RFC 2426 readers such as Outlook expect.
	rank := func(k string) int {
		if i := slices.Index([]string{vcard.FieldFormattedName, vcard.FieldName}, k); i >= 0 {
			return i
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		for _, f := range card[k] {
			writeFolded(&b, cardLine(k, f))
		}
	}
	b.WriteString("END:VCARD\r\n")
	return b.Bytes(), nil
}

func cardLine(key string, f *vcard.Field) string {
	var s strings.Builder
	if f.Group != "" {
		s.WriteString(cardName(f.Group) + ".")
	}
	s.WriteString(cardName(key))
	pkeys := make([]string, 0, len(f.Params))
	for k := range f.Params {
		pkeys = append(pkeys, k)
	}
	slices.Sort(pkeys)
	for _, k := range pkeys {
		var vals []string
		for _, v := range f.Params[k] {
			if v = paramValue(v); v != "" {
				vals = append(vals, v)
			}
		}
		if len(vals) > 0 {
			s.WriteString(";" + cardName(k) + "=" + strings.Join(vals, ","))
		}
	}
	s.WriteString(":")
	if structuredFields[key] {
		s.WriteString(textValue(f.Value, false))
	} else {
		s.WriteString(textValue(f.Value, true))
	}
	return s.String()
}

// cardName keeps a property, group or parameter name to the characters
// names may hold (letters, digits, "-").
func cardName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '-' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return unicode.ToUpper(r)
		}
		return -1
	}, s)
	if s == "" {
		return "X-UNNAMED"
	}
	return s
}

// paramValue makes text fit a parameter value: no control characters or
// double quotes, and quoted when it holds ";", ":" or ",".
func paramValue(v string) string {
	v = strings.Map(func(r rune) rune {
		if r == '"' || unicode.IsControl(r) {
			return -1
		}
		return r
	}, v)
	if strings.ContainsAny(v, ";:,") {
		return `"` + v + `"`
	}
	return v
}

// textValue escapes a value: a plain one whole, a structured one (whose
// ";" separate components and whose "\;" are already escaped) keeping both.
func textValue(v string, plain bool) string {
	v = strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", "\n"), "\r", "\n")
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && !plain && i+1 < len(v) && (v[i+1] == ';' || v[i+1] == '\\'):
			b.WriteByte('\\')
			b.WriteByte(v[i+1])
			i++
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == ',':
			b.WriteString(`\,`)
		case c == ';' && plain:
			b.WriteString(`\;`)
		case c < 0x20 && c != '\t' || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// writeFolded writes a content line folded at 75 octets (RFC 2426 2.6,
// RFC 6350 3.2), never inside a UTF-8 sequence.
func writeFolded(b *bytes.Buffer, line string) {
	limit := 75
	for len(line) > limit {
		cut := limit
		for cut > 1 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n ")
		line = line[cut:]
		limit = 74 // the leading space counts
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

func cardFromGraph(r Resource) vcard.Card {
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "4.0")
	fn := r.DisplayName
	if fn == "" {
		fn = strings.TrimSpace(r.GivenName + " " + r.Surname)
	}
	if fn != "" {
		card.SetValue(vcard.FieldFormattedName, fn)
	}
	if r.GivenName != "" || r.Surname != "" || r.MiddleName != "" {
		card.SetName(&vcard.Name{GivenName: component(r.GivenName), FamilyName: component(r.Surname),
			AdditionalName: component(r.MiddleName)})
	}
	for _, e := range r.EmailAddresses {
		card.Add(vcard.FieldEmail, &vcard.Field{Value: e.Address, Params: vcard.Params{}})
	}
	phone := func(number, typ string) {
		if number != "" {
			card.Add(vcard.FieldTelephone, &vcard.Field{Value: number, Params: vcard.Params{vcard.ParamType: {typ}}})
		}
	}
	for _, p := range r.BusinessPhones {
		phone(p, vcard.TypeWork)
	}
	for _, p := range r.HomePhones {
		phone(p, vcard.TypeHome)
	}
	phone(r.MobilePhone, vcard.TypeCell)
	if r.CompanyName != "" {
		card.SetValue(vcard.FieldOrganization, component(r.CompanyName))
	}
	if r.JobTitle != "" {
		card.SetValue(vcard.FieldTitle, r.JobTitle)
	}
	addr := func(a *Address, typ string) {
		if a == nil || *a == (Address{}) {
			return
		}
		card.AddAddress(&vcard.Address{Field: &vcard.Field{Params: vcard.Params{vcard.ParamType: {typ}}},
			StreetAddress: component(a.Street), Locality: component(a.City), Region: component(a.State),
			PostalCode: component(a.PostalCode), Country: component(a.CountryOrRegion)})
	}
	addr(r.BusinessAddress, vcard.TypeWork)
	addr(r.HomeAddress, vcard.TypeHome)
	if r.PersonalNotes != "" {
		card.SetValue(vcard.FieldNote, r.PersonalNotes)
	}
	if r.Birthday != "" {
		if t, err := time.Parse(time.RFC3339, r.Birthday); err == nil {
			card.SetValue(vcard.FieldBirthday, t.Format("20060102"))
		}
	}
	return card
}
