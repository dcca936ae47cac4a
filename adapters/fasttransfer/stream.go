package fasttransfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// Markers: 4-byte elements without a value that delimit the stream's parts
// ([MS-OXCFXICS] 2.2.4.1.4).
const (
	StartTopFld  Tag = 0x40090003
	StartSubFld  Tag = 0x400A0003
	EndFolder    Tag = 0x400B0003
	StartMessage Tag = 0x400C0003
	StartFAIMsg  Tag = 0x40100003
	EndMessage   Tag = 0x400D0003
	StartEmbed   Tag = 0x40010003
	EndEmbed     Tag = 0x40020003
	StartRecip   Tag = 0x40030003
	EndToRecip   Tag = 0x40040003
	NewAttach    Tag = 0x40000003
	EndAttach    Tag = 0x400E0003
	// FXDelProp is a meta-property (with a 4-byte value) that may precede
	// a message's recipients and its attachments.
	FXDelProp Tag = 0x40160003
)

var markerNames = map[Tag]string{
	StartTopFld: "StartTopFld", StartSubFld: "StartSubFld", EndFolder: "EndFolder", StartMessage: "StartMessage",
	StartFAIMsg: "StartFAIMsg", EndMessage: "EndMessage", StartEmbed: "StartEmbed", EndEmbed: "EndEmbed",
	StartRecip: "StartRecip", EndToRecip: "EndToRecip", NewAttach: "NewAttach", EndAttach: "EndAttach", FXDelProp: "FXDelProp",
}

var markers = map[Tag]bool{
	StartTopFld: true, StartSubFld: true, EndFolder: true, StartMessage: true, StartFAIMsg: true, EndMessage: true,
	StartEmbed: true, EndEmbed: true, StartRecip: true, EndToRecip: true, NewAttach: true, EndAttach: true,
	0x40120003: true, 0x407D0003: true, 0x40130003: true, 0x40140003: true, 0x402F0003: true, 0x403A0003: true,
	0x403B0003: true, 0x4074000B: true, 0x4075000B: true, 0x40150003: true, 0x407B0102: true, 0x40180003: true,
}

// IsMarker reports whether tag is one of the stream's markers.
func IsMarker(tag Tag) bool { return markers[tag] }

// ErrMalformed is wrapped by every error Decode returns.
var ErrMalformed = errors.New("malformed FastTransfer stream")

// The frames export blobs wrap a stream in: a little-endian opcode and
// payload length, then the payload. They are not part of the open
// specifications; this is the layout published export samples show (a
// first frame of opcode 1 and 8 bytes). Only transfer buffers carry the
// stream; the others are the transfer's configuration.
const (
	frameConfig             = 1
	frameTransferBuffer     = 2
	frameIsInterfaceOk      = 3
	frameTellPartnerVersion = 4
)

// maxDepth bounds embedded messages inside embedded messages.
const maxDepth = 32

type decodeError struct {
	off int
	why string
}

func (e *decodeError) Error() string {
	return fmt.Sprintf("%s at byte %d: %s", ErrMalformed, e.off, e.why)
}
func (e *decodeError) Unwrap() error { return ErrMalformed }

// Unwrap returns the stream inside an export blob's frames, or b itself
// when it is a bare stream (a bare stream never starts with a frame's
// opcode: as a property tag that would be property id 0, which no
// property has).
func Unwrap(b []byte) ([]byte, error) {
	if len(b) < 8 {
		return b, nil
	}
	if op := binary.LittleEndian.Uint32(b); op < frameConfig || op > frameTellPartnerVersion {
		return b, nil
	}
	var out []byte
	buffers := 0
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, &decodeError{off, "a frame's header is cut short"}
		}
		op, n := binary.LittleEndian.Uint32(b[off:]), binary.LittleEndian.Uint32(b[off+4:])
		if uint64(n) > uint64(len(b)-off-8) {
			return nil, &decodeError{off, fmt.Sprintf("a frame of %d bytes in %d left", n, len(b)-off-8)}
		}
		data := b[off+8 : off+8+int(n)]
		switch op {
		case frameTransferBuffer:
			switch buffers {
			case 0:
				out = data // one buffer, the usual case: no copy
			case 1:
				out = append(bytes.Clone(out), data...) // a copy of our own, then appended to
			default:
				out = append(out, data...)
			}
			buffers++
		case frameConfig, frameIsInterfaceOk, frameTellPartnerVersion:
		default:
			return nil, &decodeError{off, fmt.Sprintf("unknown frame opcode %d", op)}
		}
		off += 8 + int(n)
	}
	if buffers == 0 {
		return nil, &decodeError{0, "the export holds no transfer buffer"}
	}
	return out, nil
}

// Decode reads a message from an export blob (framed or bare): a
// messageContent, or one message between StartMessage and EndMessage.
func Decode(b []byte) (*Message, error) {
	s, err := Unwrap(b)
	if err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return nil, &decodeError{0, "the stream is empty"}
	}
	d := &decoder{b: s}
	wrapped := false
	if t, ok := d.peek(); ok && (t == StartMessage || t == StartFAIMsg) {
		d.off += 4
		wrapped = true
	}
	m, err := d.messageContent(0)
	if err != nil {
		return nil, err
	}
	if wrapped {
		if err := d.expect(EndMessage); err != nil {
			return nil, err
		}
	}
	if d.off != len(d.b) {
		t, _ := d.peek()
		return nil, d.fail(fmt.Sprintf("unexpected %v after the message", t))
	}
	if len(m.Props) == 0 && len(m.Recipients) == 0 && len(m.Attachments) == 0 {
		// An item is at least its properties; a stream of markers and
		// meta-properties alone is no item.
		return nil, &decodeError{0, "the stream holds no property"}
	}
	return m, nil
}

type decoder struct {
	b   []byte
	off int
}

func (d *decoder) fail(why string) error { return &decodeError{d.off, why} }

func (d *decoder) peek() (Tag, bool) {
	if len(d.b)-d.off < 4 {
		return 0, false
	}
	return Tag(binary.LittleEndian.Uint32(d.b[d.off:])), true
}

func (d *decoder) expect(t Tag) error {
	got, ok := d.peek()
	if !ok {
		return d.fail(fmt.Sprintf("the stream ends where %v was due", t))
	}
	if got != t {
		return d.fail(fmt.Sprintf("%v where %v was due", got, t))
	}
	d.off += 4
	return nil
}

func (d *decoder) take(n uint64, what string) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, d.fail(fmt.Sprintf("%s of %d bytes in %d left", what, n, len(d.b)-d.off))
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	v, err := d.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(v), nil
}

// messageContent = propList messageChildren; messageChildren =
// [FXDelProp] *recipient [FXDelProp] *attachment.
func (d *decoder) messageContent(depth int) (*Message, error) {
	if depth > maxDepth {
		return nil, d.fail("embedded messages nested too deep")
	}
	m := &Message{}
	var err error
	if m.Props, err = d.propList(messageProps); err != nil {
		return nil, err
	}
	if err := d.skipDelProp(); err != nil {
		return nil, err
	}
	for {
		if t, ok := d.peek(); !ok || t != StartRecip {
			break
		}
		d.off += 4
		r, err := d.propList(recipientProps)
		if err != nil {
			return nil, err
		}
		if err := d.expect(EndToRecip); err != nil {
			return nil, err
		}
		m.Recipients = append(m.Recipients, r)
	}
	if err := d.skipDelProp(); err != nil {
		return nil, err
	}
	for {
		if t, ok := d.peek(); !ok || t != NewAttach {
			break
		}
		d.off += 4
		var a Attachment
		if a.Props, err = d.propList(attachmentProps); err != nil {
			return nil, err
		}
		if t, ok := d.peek(); ok && t == StartEmbed {
			d.off += 4
			if a.Embedded, err = d.messageContent(depth + 1); err != nil {
				return nil, err
			}
			if err := d.expect(EndEmbed); err != nil {
				return nil, err
			}
		}
		if err := d.expect(EndAttach); err != nil {
			return nil, err
		}
		m.Attachments = append(m.Attachments, a)
	}
	return m, nil
}

func (d *decoder) skipDelProp() error {
	if t, ok := d.peek(); ok && t == FXDelProp {
		d.off += 4
		_, err := d.take(4, "FXDelProp")
		return err
	}
	return nil
}

// How many properties a list has room for from the start: a message holds
// a few dozen, and growing its list from nothing copied it six times (3 %
// of a backup's CPU, in the summary every stored item gets).
const messageProps, recipientProps, attachmentProps = 32, 8, 12

// propList reads properties up to the next marker or the end.
func (d *decoder) propList(room int) (Props, error) {
	ps := make(Props, 0, room)
	for {
		t, ok := d.peek()
		if !ok {
			if d.off != len(d.b) {
				return nil, d.fail("a property tag is cut short")
			}
			return ps, nil
		}
		if IsMarker(t) || t == FXDelProp {
			return ps, nil
		}
		p, err := d.prop()
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
}

func (d *decoder) prop() (Prop, error) {
	at := d.off
	t, _ := d.peek()
	d.off += 4
	p := Prop{Tag: t}
	if t.ID() >= 0x8000 {
		n, err := d.named()
		if err != nil {
			return Prop{}, err
		}
		p.Named = n
	}
	typ := t.Type()
	if typ&Multiple != 0 && typ&CodePage == 0 {
		single := typ &^ Multiple
		size := fixedSize(single)
		if size < 0 {
			return Prop{}, &decodeError{at, fmt.Sprintf("property %v has a type a stream cannot carry", t)}
		}
		count, err := d.u32("a value count")
		if err != nil {
			return Prop{}, err
		}
		// Every value takes at least 4 bytes (its length) or its size.
		if uint64(count)*uint64(max(size, 4)) > uint64(len(d.b)-d.off) {
			return Prop{}, d.fail(fmt.Sprintf("%d values in %d bytes", count, len(d.b)-d.off))
		}
		p.Values = make([][]byte, 0, count)
		for range count {
			v, err := d.value(single, size)
			if err != nil {
				return Prop{}, err
			}
			p.Values = append(p.Values, v)
		}
		return p, nil
	}
	size := fixedSize(typ)
	if size < 0 {
		return Prop{}, &decodeError{at, fmt.Sprintf("property %v has a type a stream cannot carry", t)}
	}
	v, err := d.value(typ, size)
	if err != nil {
		return Prop{}, err
	}
	p.Value = v
	return p, nil
}

func (d *decoder) value(t PropType, size int) ([]byte, error) {
	if size > 0 {
		return d.take(uint64(size), "a value")
	}
	n, err := d.u32("a value's length")
	if err != nil {
		return nil, err
	}
	return d.take(uint64(n), "a value")
}

// named reads namedPropInfo: the set's GUID, then 0 and a LID, or 1 and a
// NUL-terminated UTF-16LE name.
func (d *decoder) named() (*Named, error) {
	g, err := d.take(16, "a property set")
	if err != nil {
		return nil, err
	}
	n := &Named{}
	copy(n.Set[:], g)
	kind, err := d.take(1, "a named property's kind")
	if err != nil {
		return nil, err
	}
	switch kind[0] {
	case 0:
		if n.LID, err = d.u32("a named property's LID"); err != nil {
			return nil, err
		}
	case 1:
		n.ByName = true
		var u []uint16
		for {
			c, err := d.take(2, "a named property's name")
			if err != nil {
				return nil, err
			}
			if c[0] == 0 && c[1] == 0 {
				break
			}
			u = append(u, binary.LittleEndian.Uint16(c))
		}
		n.Name = string(utf16.Decode(u))
	default:
		return nil, d.fail(fmt.Sprintf("named property kind %d", kind[0]))
	}
	return n, nil
}

// Encode writes m as an export blob: a configuration frame and one
// transfer buffer holding its messageContent.
func Encode(m *Message) ([]byte, error) {
	const header = 8 + 8 + 8 // the configuration frame, the buffer's header
	e := &encoder{ids: map[Named]uint16{}}
	e.b.Grow(header + size(m))
	e.b.Write(make([]byte, header))
	if err := e.messageContent(m, 0); err != nil {
		return nil, err
	}
	b := e.b.Bytes()
	binary.LittleEndian.PutUint32(b[0:], frameConfig)
	binary.LittleEndian.PutUint32(b[4:], 8)
	binary.LittleEndian.PutUint32(b[16:], frameTransferBuffer)
	binary.LittleEndian.PutUint32(b[20:], uint32(len(b)-header))
	return b, nil
}

// EncodeStream writes m as a bare messageContent.
func EncodeStream(m *Message) ([]byte, error) {
	e := &encoder{ids: map[Named]uint16{}}
	e.b.Grow(size(m))
	if err := e.messageContent(m, 0); err != nil {
		return nil, err
	}
	return e.b.Bytes(), nil
}

// size is about what m takes in a stream, to size the buffer once.
func size(m *Message) int {
	props := func(ps Props) int {
		n := 0
		for _, p := range ps {
			n += 8 + len(p.Value)
			if p.Named != nil {
				n += 21 + 2*len(p.Named.Name)
			}
			for _, v := range p.Values {
				n += 4 + len(v)
			}
		}
		return n
	}
	n := props(m.Props)
	for _, r := range m.Recipients {
		n += 8 + props(r)
	}
	for _, a := range m.Attachments {
		n += 8 + props(a.Props)
		if a.Embedded != nil {
			n += 8 + size(a.Embedded)
		}
	}
	return n
}

type encoder struct {
	b   bytes.Buffer
	ids map[Named]uint16
}

func (e *encoder) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	e.b.Write(b[:])
}

func (e *encoder) messageContent(m *Message, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("embedded messages nested deeper than %d", maxDepth)
	}
	if err := e.props(m.Props); err != nil {
		return err
	}
	for _, r := range m.Recipients {
		e.u32(uint32(StartRecip))
		if err := e.props(r); err != nil {
			return err
		}
		e.u32(uint32(EndToRecip))
	}
	for _, a := range m.Attachments {
		e.u32(uint32(NewAttach))
		if err := e.props(a.Props); err != nil {
			return err
		}
		if a.Embedded != nil {
			e.u32(uint32(StartEmbed))
			if err := e.messageContent(a.Embedded, depth+1); err != nil {
				return err
			}
			e.u32(uint32(EndEmbed))
		}
		e.u32(uint32(EndAttach))
	}
	return nil
}

func (e *encoder) props(ps Props) error {
	for _, p := range ps {
		if err := e.prop(p); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) prop(p Prop) error {
	tag := p.Tag
	if IsMarker(tag) || tag == FXDelProp {
		return fmt.Errorf("property %v is a marker", tag)
	}
	if p.Named != nil {
		// Named properties take ids from 0x8000 in the order they appear.
		id, ok := e.ids[*p.Named]
		if !ok {
			id = uint16(0x8000 + len(e.ids))
			e.ids[*p.Named] = id
		}
		tag = NewTag(id, tag.Type())
	} else if tag.ID() >= 0x8000 {
		return fmt.Errorf("property %v has a named id but no name", tag)
	}
	e.u32(uint32(tag))
	if p.Named != nil {
		e.b.Write(p.Named.Set[:])
		if p.Named.ByName {
			e.b.WriteByte(1)
			e.b.Write(utf16le(p.Named.Name))
		} else {
			e.b.WriteByte(0)
			e.u32(p.Named.LID)
		}
	}
	typ := tag.Type()
	if typ&Multiple != 0 && typ&CodePage == 0 {
		size := fixedSize(typ &^ Multiple)
		if size < 0 {
			return fmt.Errorf("property %v: a stream cannot carry its type", tag)
		}
		e.u32(uint32(len(p.Values)))
		for _, v := range p.Values {
			if err := e.value(tag, size, v); err != nil {
				return err
			}
		}
		return nil
	}
	size := fixedSize(typ)
	if size < 0 {
		return fmt.Errorf("property %v: a stream cannot carry its type", tag)
	}
	return e.value(tag, size, p.Value)
}

func (e *encoder) value(tag Tag, size int, v []byte) error {
	if size > 0 {
		if len(v) != size {
			return fmt.Errorf("property %v: a value of %d bytes where its type takes %d", tag, len(v), size)
		}
		e.b.Write(v)
		return nil
	}
	e.u32(uint32(len(v)))
	e.b.Write(v)
	return nil
}
