// Package fasttransfer reads and writes FastTransfer streams ([MS-OXCFXICS]
// section 2.2.4): the serialized MAPI messages that EWS ExportItems and
// Graph's exportItems return, each item's properties, recipients and
// attachments (embedded messages included), and the frames those exports
// wrap the stream in.
//
// It knows the stream's grammar, not what the properties mean: converting a
// message to MIME, iCalendar or vCard is itemformat's job.
package fasttransfer

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// PropType is a property's type ([MS-OXCDATA] 2.11.1).
type PropType uint16

// Property types. A multi-valued type is its single type | Multiple; a
// string in a code page is CodePage | the code page.
const (
	TypeInteger16    PropType = 0x0002
	TypeInteger32    PropType = 0x0003
	TypeFloating32   PropType = 0x0004
	TypeFloating64   PropType = 0x0005
	TypeCurrency     PropType = 0x0006
	TypeFloatingTime PropType = 0x0007
	TypeErrorCode    PropType = 0x000A
	TypeBoolean      PropType = 0x000B
	TypeObject       PropType = 0x000D
	TypeInteger64    PropType = 0x0014
	TypeString8      PropType = 0x001E
	TypeString       PropType = 0x001F
	TypeTime         PropType = 0x0040
	TypeGUID         PropType = 0x0048
	TypeServerID     PropType = 0x00FB
	TypeBinary       PropType = 0x0102
	Multiple         PropType = 0x1000
	CodePage         PropType = 0x8000
)

// Tag is a property tag: its id in the high 16 bits, its type in the low.
type Tag uint32

// NewTag makes a tag from an id and a type.
func NewTag(id uint16, t PropType) Tag { return Tag(uint32(id)<<16 | uint32(t)) }

// ID is the tag's property id; ids from 0x8000 are named properties.
func (t Tag) ID() uint16 { return uint16(t >> 16) }

// Type is the tag's property type.
func (t Tag) Type() PropType { return PropType(t) }

func (t Tag) String() string {
	if name, ok := markerNames[t]; ok {
		return name
	}
	return fmt.Sprintf("0x%08X", uint32(t))
}

// fixedSize is the wire size of a fixed-size type's value, or 0 for a
// variable-size type, or -1 for a type the stream cannot carry.
func fixedSize(t PropType) int {
	switch t {
	case TypeInteger16, TypeBoolean: // a boolean takes 2 bytes in a stream
		return 2
	case TypeInteger32, TypeFloating32, TypeErrorCode:
		return 4
	case TypeFloating64, TypeCurrency, TypeFloatingTime, TypeInteger64, TypeTime:
		return 8
	case TypeGUID:
		return 16
	case TypeString, TypeString8, TypeBinary, TypeServerID, TypeObject:
		return 0
	}
	if t&CodePage != 0 && t&Multiple == 0 {
		return 0
	}
	return -1
}

// GUID is a property set's GUID in its wire form (Data1-3 little-endian).
type GUID [16]byte

// MustGUID parses the usual text form, 00062002-0000-0000-C000-000000000046.
func MustGUID(s string) GUID {
	var g GUID
	var b [16]byte
	clean := strings.ReplaceAll(s, "-", "")
	if len(clean) != 32 {
		panic("fasttransfer: bad GUID " + s)
	}
	for i := range b {
		var v byte
		if _, err := fmt.Sscanf(clean[2*i:2*i+2], "%02X", &v); err != nil {
			panic("fasttransfer: bad GUID " + s)
		}
		b[i] = v
	}
	// Data1 (4 bytes), Data2 and Data3 (2 each) are little-endian on the wire.
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// Named identifies a named property: its set and either a number (LID) or
// a name.
type Named struct {
	Set    GUID
	ByName bool
	LID    uint32
	Name   string
}

// Prop is one property value as the stream carries it: Value holds a
// fixed-size value's bytes or a variable-size value's content; a
// multi-valued property holds Values instead.
type Prop struct {
	Tag    Tag
	Named  *Named // for ids from 0x8000
	Value  []byte
	Values [][]byte
}

// Props is a property list in stream order.
type Props []Prop

// Get returns the property with the tag's id (any type), for ids below 0x8000.
func (ps Props) Get(tag Tag) (Prop, bool) {
	for _, p := range ps {
		if p.Tag.ID() == tag.ID() && p.Named == nil {
			return p, true
		}
	}
	return Prop{}, false
}

// GetNamed returns the named property set/lid.
func (ps Props) GetNamed(set GUID, lid uint32) (Prop, bool) {
	for _, p := range ps {
		if p.Named != nil && !p.Named.ByName && p.Named.Set == set && p.Named.LID == lid {
			return p, true
		}
	}
	return Prop{}, false
}

// GetByName returns the named property set/name (MNID_STRING).
func (ps Props) GetByName(set GUID, name string) (Prop, bool) {
	for _, p := range ps {
		if p.Named != nil && p.Named.ByName && p.Named.Set == set && p.Named.Name == name {
			return p, true
		}
	}
	return Prop{}, false
}

// String is the property's text, whatever string type it has; "" when
// absent or not a string. (Get gives a Prop without a value when the
// property is absent, and its readers the zero value.)
func (ps Props) String(tag Tag) string { p, _ := ps.Get(tag); return p.Text() }

// Int32 is an integer property's value, 0 when absent.
func (ps Props) Int32(tag Tag) int32 { p, _ := ps.Get(tag); return p.Int32() }

// Time is a time property's value, the zero time when absent.
func (ps Props) Time(tag Tag) time.Time { p, _ := ps.Get(tag); return p.Time() }

// Bytes is a binary property's value, nil when absent.
func (ps Props) Bytes(tag Tag) []byte { p, _ := ps.Get(tag); return p.Value }

// Text decodes a string value: UTF-16LE for TypeString and code page 1200,
// UTF-8 when valid otherwise, else Latin-1. The terminating NUL is dropped.
func (p Prop) Text() string { return decodeText(p.Tag.Type(), p.Value) }

func decodeText(t PropType, v []byte) string {
	switch {
	case t == TypeString || t == CodePage|1200:
		u := make([]uint16, 0, len(v)/2)
		for i := 0; i+1 < len(v); i += 2 {
			u = append(u, binary.LittleEndian.Uint16(v[i:]))
		}
		for len(u) > 0 && u[len(u)-1] == 0 {
			u = u[:len(u)-1]
		}
		return string(utf16.Decode(u))
	case t == TypeString8 || t&CodePage != 0:
		v = trimNUL(v)
		if utf8.Valid(v) {
			return string(v)
		}
		r := make([]rune, len(v))
		for i, c := range v {
			r[i] = rune(c)
		}
		return string(r)
	}
	return ""
}

func trimNUL(v []byte) []byte {
	for len(v) > 0 && v[len(v)-1] == 0 {
		v = v[:len(v)-1]
	}
	return v
}

// Int32 reads a 2- or 4-byte integer (or a boolean) value.
func (p Prop) Int32() int32 {
	switch len(p.Value) {
	case 2:
		return int32(int16(binary.LittleEndian.Uint16(p.Value)))
	case 4, 8:
		return int32(binary.LittleEndian.Uint32(p.Value))
	}
	return 0
}

// Bool reads a boolean value.
func (p Prop) Bool() bool { return p.Int32() != 0 }

// Time reads a FILETIME value (100 ns since 1601) as UTC.
func (p Prop) Time() time.Time {
	if len(p.Value) != 8 {
		return time.Time{}
	}
	return FileTime(binary.LittleEndian.Uint64(p.Value))
}

// secondsTo1970 is the number of seconds from 1601-01-01 to 1970-01-01.
const secondsTo1970 = 11644473600

// FileTime converts 100 ns intervals since 1601 to a UTC time.
func FileTime(ft uint64) time.Time {
	if ft > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(int64(ft/1e7)-secondsTo1970, int64(ft%1e7)*100).UTC()
}

// ToFileTime converts a time to 100 ns intervals since 1601 (0 before 1601).
func ToFileTime(t time.Time) uint64 {
	s := t.Unix() + secondsTo1970
	if s < 0 {
		return 0
	}
	return uint64(s)*1e7 + uint64(t.Nanosecond()/100)
}

// Values for building properties.

// String16 is a TypeString (UTF-16LE, NUL-terminated) property.
func String16(tag Tag, s string) Prop {
	return Prop{Tag: NewTag(tag.ID(), TypeString), Value: utf16le(s)}
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u)+2)
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// Int32Prop is a TypeInteger32 property.
func Int32Prop(tag Tag, v int32) Prop {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(v))
	return Prop{Tag: NewTag(tag.ID(), TypeInteger32), Value: b}
}

// BoolProp is a TypeBoolean property.
func BoolProp(tag Tag, v bool) Prop {
	b := make([]byte, 2)
	if v {
		b[0] = 1
	}
	return Prop{Tag: NewTag(tag.ID(), TypeBoolean), Value: b}
}

// TimeProp is a TypeTime property.
func TimeProp(tag Tag, t time.Time) Prop {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, ToFileTime(t))
	return Prop{Tag: NewTag(tag.ID(), TypeTime), Value: b}
}

// BinaryProp is a TypeBinary property.
func BinaryProp(tag Tag, v []byte) Prop {
	return Prop{Tag: NewTag(tag.ID(), TypeBinary), Value: v}
}

// WithName makes p a named property of set/lid; the stream gives it an id
// from 0x8000.
func WithName(p Prop, set GUID, lid uint32) Prop {
	p.Named = &Named{Set: set, LID: lid}
	p.Tag = NewTag(0x8000, p.Tag.Type())
	return p
}

// WithStringName makes p a named property of set known by name (MNID_STRING).
func WithStringName(p Prop, set GUID, name string) Prop {
	p.Named = &Named{Set: set, ByName: true, Name: name}
	p.Tag = NewTag(0x8000, p.Tag.Type())
	return p
}

// Message is a message's content: its properties, recipients and
// attachments.
type Message struct {
	Props       Props
	Recipients  []Props
	Attachments []Attachment
}

// Attachment is an attachment's properties and, for an embedded message
// (attach method 5), that message.
type Attachment struct {
	Props    Props
	Embedded *Message
}
