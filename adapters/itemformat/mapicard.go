package itemformat

import (
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-vcard"

	ft "github.com/mailvault/mailvault/adapters/fasttransfer"
)

// Contact properties ([MS-OXOCNTC], [MS-OXVCARD]).
var (
	tagGeneration        = ft.NewTag(0x3A05, ft.TypeString)
	tagGivenName         = ft.NewTag(0x3A06, ft.TypeString)
	tagBusinessPhone     = ft.NewTag(0x3A08, ft.TypeString)
	tagHomePhone         = ft.NewTag(0x3A09, ft.TypeString)
	tagSurname           = ft.NewTag(0x3A11, ft.TypeString)
	tagCompanyName       = ft.NewTag(0x3A16, ft.TypeString)
	tagTitle             = ft.NewTag(0x3A17, ft.TypeString)
	tagPrimaryPhone      = ft.NewTag(0x3A1A, ft.TypeString)
	tagMobilePhone       = ft.NewTag(0x3A1C, ft.TypeString)
	tagBusinessFax       = ft.NewTag(0x3A24, ft.TypeString)
	tagBirthday          = ft.NewTag(0x3A42, ft.TypeTime)
	tagMiddleName        = ft.NewTag(0x3A44, ft.TypeString)
	tagDisplayNamePrefix = ft.NewTag(0x3A45, ft.TypeString)
	tagBusinessHomePage  = ft.NewTag(0x3A51, ft.TypeString)
)

// The three e-mail slots of a contact: address, display name, address type.
var emailLIDs = [3][3]uint32{{0x8083, 0x8080, 0x8082}, {0x8093, 0x8090, 0x8092}, {0x80A3, 0x80A0, 0x80A2}}

const lidFileUnder = 0x8005

// addrField is one part of a postal address: a property tag, or (lid set)
// a named property of PSETID_Address.
type addrField struct {
	tag ft.Tag
	lid uint32
}

func (f addrField) get(ps ft.Props) string {
	if f.lid != 0 {
		return named(ps, psetidAddress, f.lid).Text()
	}
	return ps.String(f.tag)
}

func (f addrField) prop(v string) ft.Prop {
	if f.lid != 0 {
		return ft.WithName(ft.String16(0, v), psetidAddress, f.lid)
	}
	return ft.String16(f.tag, v)
}

func addrTag(id uint16) addrField { return addrField{tag: ft.NewTag(id, ft.TypeString)} }

// addressSlots are a contact's three postal addresses ([MS-OXOCNTC]
// 2.2.1.3, [MS-OXVCARD] ADR): work in named properties, home and other in
// tagged ones; each as post office box, street, city, state, postal code
// and country, and the vCard TYPE it is written with.
var addressSlots = []struct {
	typ                                         string
	poBox, street, city, state, postal, country addrField
}{
	{"work", addrField{lid: 0x804A}, addrField{lid: 0x8045}, addrField{lid: 0x8046}, addrField{lid: 0x8047}, addrField{lid: 0x8048}, addrField{lid: 0x8049}},
	{"home", addrTag(0x3A5E), addrTag(0x3A5D), addrTag(0x3A59), addrTag(0x3A5C), addrTag(0x3A5B), addrTag(0x3A5A)},
	{"", addrTag(0x3A64), addrTag(0x3A63), addrTag(0x3A5F), addrTag(0x3A62), addrTag(0x3A61), addrTag(0x3A60)}, // other: no TYPE
}

// phoneTypes pairs telephone properties with vCard TYPE parameters; the
// primary number is the TEL without a type.
var phoneTypes = []struct {
	tag   ft.Tag
	types []string
}{
	{tagPrimaryPhone, nil},
	{tagBusinessPhone, []string{"work", "voice"}},
	{tagHomePhone, []string{"home", "voice"}},
	{tagMobilePhone, []string{"cell"}},
	{tagBusinessFax, []string{"work", "fax"}},
}

// contactVCard writes a contact as a vCard 4.0.
func contactVCard(m *ft.Message) ([]byte, error) {
	ps := m.Props
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "4.0")
	set := func(field, v string, params vcard.Params) {
		if v != "" {
			card.Add(field, &vcard.Field{Value: v, Params: params})
		}
	}
	fn := firstNonEmpty(ps.String(tagDisplayName), named(ps, psetidAddress, lidFileUnder).Text())
	set(vcard.FieldFormattedName, fn, nil)
	if n := (vcard.Name{FamilyName: ps.String(tagSurname), GivenName: ps.String(tagGivenName), AdditionalName: ps.String(tagMiddleName),
		HonorificPrefix: ps.String(tagDisplayNamePrefix), HonorificSuffix: ps.String(tagGeneration)}); n != (vcard.Name{}) {
		card.SetName(&n)
	}
	set(vcard.FieldOrganization, ps.String(tagCompanyName), nil)
	set(vcard.FieldTitle, ps.String(tagTitle), nil)
	for _, lids := range emailLIDs {
		set(vcard.FieldEmail, named(ps, psetidAddress, lids[0]).Text(), nil)
	}
	for _, pt := range phoneTypes {
		var params vcard.Params
		if pt.types != nil {
			params = vcard.Params{vcard.ParamType: pt.types}
		}
		set(vcard.FieldTelephone, ps.String(pt.tag), params)
	}
	for _, slot := range addressSlots {
		a := &vcard.Address{PostOfficeBox: slot.poBox.get(ps), StreetAddress: slot.street.get(ps), Locality: slot.city.get(ps),
			Region: slot.state.get(ps), PostalCode: slot.postal.get(ps), Country: slot.country.get(ps)}
		if *a == (vcard.Address{}) {
			continue
		}
		a.Field = &vcard.Field{}
		if slot.typ != "" {
			a.Field.Params = vcard.Params{vcard.ParamType: {slot.typ}}
		}
		card.AddAddress(a)
	}
	if bday := ps.Time(tagBirthday); !bday.IsZero() {
		set(vcard.FieldBirthday, bday.Format("20060102"), nil)
	}
	set(vcard.FieldURL, ps.String(tagBusinessHomePage), nil)
	set(vcard.FieldNote, ps.String(tagBody), nil)
	if len(card) == 1 {
		return nil, errNoContactData
	}
	return EncodeCard(card)
}

// contactProps converts a vCard into a contact's properties.
func contactProps(card vcard.Card, m *ft.Message) {
	add := func(p ft.Prop) { m.Props = append(m.Props, p) }
	str := func(tag ft.Tag, v string) {
		if v != "" {
			add(ft.String16(tag, v))
		}
	}
	add(ft.String16(tagMessageClass, "IPM.Contact"))
	fn := card.PreferredValue(vcard.FieldFormattedName)
	str(tagDisplayName, fn)
	if fn != "" {
		add(ft.WithName(ft.String16(0, fn), psetidAddress, lidFileUnder))
	}
	if n := card.Name(); n != nil {
		str(tagSurname, n.FamilyName)
		str(tagGivenName, n.GivenName)
		str(tagMiddleName, n.AdditionalName)
		str(tagDisplayNamePrefix, n.HonorificPrefix)
		str(tagGeneration, n.HonorificSuffix)
	}
	str(tagCompanyName, card.PreferredValue(vcard.FieldOrganization))
	str(tagTitle, card.PreferredValue(vcard.FieldTitle))
	for i, e := range card.Values(vcard.FieldEmail) {
		if i == len(emailLIDs) {
			break
		}
		add(ft.WithName(ft.String16(0, e), psetidAddress, emailLIDs[i][0]))
		add(ft.WithName(ft.String16(0, firstNonEmpty(fn, e)), psetidAddress, emailLIDs[i][1]))
		add(ft.WithName(ft.String16(0, "SMTP"), psetidAddress, emailLIDs[i][2]))
	}
	taken := map[ft.Tag]bool{}
	for _, f := range card[vcard.FieldTelephone] {
		types := strings.ToLower(strings.Join(f.Params.Types(), ","))
		tag := tagPrimaryPhone
		switch {
		case strings.Contains(types, "fax"):
			tag = tagBusinessFax
		case strings.Contains(types, "cell"):
			tag = tagMobilePhone
		case strings.Contains(types, "home"):
			tag = tagHomePhone
		case strings.Contains(types, "work"):
			tag = tagBusinessPhone
		}
		if !taken[tag] {
			taken[tag] = true
			str(tag, f.Value)
		}
	}
	// Each address goes to the slot its TYPE names (work, home, any other
	// to "other"), the first of each kept.
	filled := map[string]bool{}
	for _, a := range card.Addresses() {
		types := strings.ToLower(strings.Join(a.Params.Types(), ","))
		slot := addressSlots[2]
		for _, s := range addressSlots[:2] {
			if strings.Contains(types, s.typ) {
				slot = s
				break
			}
		}
		if filled[slot.typ] {
			continue
		}
		filled[slot.typ] = true
		for _, f := range []struct {
			field addrField
			v     string
		}{{slot.poBox, a.PostOfficeBox}, {slot.street, a.StreetAddress}, {slot.city, a.Locality}, {slot.state, a.Region},
			{slot.postal, a.PostalCode}, {slot.country, a.Country}} {
			if f.v != "" {
				add(f.field.prop(f.v))
			}
		}
	}
	if b := card.PreferredValue(vcard.FieldBirthday); b != "" {
		for _, layout := range []string{"20060102", "2006-01-02"} {
			if t, err := time.Parse(layout, b); err == nil {
				add(ft.TimeProp(tagBirthday, t))
				break
			}
		}
	}
	str(tagBusinessHomePage, card.PreferredValue(vcard.FieldURL))
	str(tagBody, card.PreferredValue(vcard.FieldNote))
}

var errNoContactData = errors.New("the contact has no vCard data")
