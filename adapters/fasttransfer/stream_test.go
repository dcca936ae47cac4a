package fasttransfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var psetidAppointment = MustGUID("00062002-0000-0000-C000-000000000046")

// sample is a message with every kind of element the grammar has.
func sample() *Message {
	when := time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)
	return &Message{
		Props: Props{
			String16(NewTag(0x001A, TypeString), "IPM.Note"),
			String16(NewTag(0x0037, TypeString), "Grüße, 会議"),
			Int32Prop(NewTag(0x0E07, TypeInteger32), 1),
			BoolProp(NewTag(0x0E1B, TypeBoolean), true),
			TimeProp(NewTag(0x0039, TypeTime), when),
			BinaryProp(NewTag(0x0FFF, TypeBinary), []byte{1, 2, 3}),
			{Tag: NewTag(0x1001, TypeString8), Value: []byte("ansi\x00")},
			{Tag: NewTag(0x1002, CodePage|1252), Value: []byte("caf\xe9\x00")},
			{Tag: NewTag(0x3A54, TypeString|Multiple), Values: [][]byte{utf16le("a"), utf16le("bc")}},
			{Tag: NewTag(0x3A55, TypeInteger32|Multiple), Values: [][]byte{{1, 0, 0, 0}, {2, 0, 0, 0}}},
			WithName(TimeProp(0, when), psetidAppointment, 0x820D),
			{Tag: NewTag(0x8000, TypeString), Named: &Named{Set: psetidAppointment, ByName: true, Name: "Keywords"}, Value: utf16le("x")},
		},
		Recipients: []Props{
			{Int32Prop(NewTag(0x0C15, TypeInteger32), 1), String16(NewTag(0x3001, TypeString), "Zoë")},
			{Int32Prop(NewTag(0x0C15, TypeInteger32), 2)},
		},
		Attachments: []Attachment{
			{Props: Props{Int32Prop(NewTag(0x3705, TypeInteger32), 1), BinaryProp(NewTag(0x3701, TypeBinary), bytes.Repeat([]byte{0xAB}, 300))}},
			{Props: Props{Int32Prop(NewTag(0x3705, TypeInteger32), 5)}, Embedded: &Message{
				Props:      Props{String16(NewTag(0x0037, TypeString), "inner")},
				Recipients: []Props{{String16(NewTag(0x3001, TypeString), "in")}},
			}},
		},
	}
}

// normalized gives named properties the ids the encoder assigns.
func normalized(m *Message) *Message {
	ids := map[Named]uint16{}
	var props func(ps Props) Props
	var msg func(m *Message) *Message
	props = func(ps Props) Props {
		if ps == nil {
			return nil
		}
		out := make(Props, len(ps))
		for i, p := range ps {
			if p.Named != nil {
				id, ok := ids[*p.Named]
				if !ok {
					id = uint16(0x8000 + len(ids))
					ids[*p.Named] = id
				}
				p.Tag = NewTag(id, p.Tag.Type())
			}
			out[i] = p
		}
		return out
	}
	msg = func(m *Message) *Message {
		out := &Message{Props: props(m.Props)}
		for _, r := range m.Recipients {
			out.Recipients = append(out.Recipients, props(r))
		}
		for _, a := range m.Attachments {
			b := Attachment{Props: props(a.Props)}
			if a.Embedded != nil {
				b.Embedded = msg(a.Embedded)
			}
			out.Attachments = append(out.Attachments, b)
		}
		return out
	}
	return msg(m)
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	for _, tc := range []struct {
		name   string
		encode func(*Message) ([]byte, error)
	}{
		{"framed", Encode},
		{"bare", EncodeStream},
		{"between StartMessage and EndMessage", func(m *Message) ([]byte, error) {
			s, err := EncodeStream(m)
			out := binary.LittleEndian.AppendUint32(nil, uint32(StartMessage))
			return binary.LittleEndian.AppendUint32(append(out, s...), uint32(EndMessage)), err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.encode(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := normalized(m); !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	m, err := Decode(must(Encode(sample())))
	if err != nil {
		t.Fatal(err)
	}
	ps := m.Props
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"UTF-16 string", ps.String(NewTag(0x0037, 0)), "Grüße, 会議"},
		{"8-bit string", ps.String(NewTag(0x1001, 0)), "ansi"},
		{"code page string that is not UTF-8", ps.String(NewTag(0x1002, 0)), "café"},
		{"integer", ps.Int32(NewTag(0x0E07, 0)), int32(1)},
		{"time", ps.Time(NewTag(0x0039, 0)), time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)},
		{"binary", ps.Bytes(NewTag(0x0FFF, 0)), []byte{1, 2, 3}},
		{"missing string", ps.String(NewTag(0x0FFE, 0)), ""},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	if p, ok := ps.GetNamed(psetidAppointment, 0x820D); !ok || !p.Time().Equal(time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("named time: %v %v", p, ok)
	}
}

func TestFileTime(t *testing.T) {
	for _, tc := range []struct {
		t  time.Time
		ft uint64
	}{
		{time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 116444736000000000},
		{time.Date(2026, 12, 5, 9, 30, 0, 100, time.UTC), 134409366000000001},
	} {
		if got := ToFileTime(tc.t); got != tc.ft {
			t.Errorf("ToFileTime(%v) = %d, want %d", tc.t, got, tc.ft)
		}
		if got := FileTime(tc.ft); !got.Equal(tc.t.Truncate(100)) {
			t.Errorf("FileTime(%d) = %v, want %v", tc.ft, got, tc.t)
		}
	}
}

func TestMalformed(t *testing.T) {
	good := must(EncodeStream(sample()))
	deep := &Message{}
	for range maxDepth + 2 {
		deep = &Message{Attachments: []Attachment{{Embedded: deep}}}
	}
	deepStream, _ := (&encoderNoLimit{}).encode(deep)
	frame := func(op, n uint32, data []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, op)
		return append(binary.LittleEndian.AppendUint32(b, n), data...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		why  string
	}{
		{"cut in a value", good[:40], "bytes in"},
		{"cut in a marker", good[:len(good)-2], "the stream ends where EndAttach"},
		{"cut in a property tag", append(binary.LittleEndian.AppendUint32(nil, 0x0E070003), 1, 0, 0, 0, 0x37), "cut short"},
		{"type the stream cannot carry", binary.LittleEndian.AppendUint32(nil, 0x00370009), "cannot carry"},
		{"a billion values", append(binary.LittleEndian.AppendUint32(nil, 0x3A541003), 0, 0, 0, 0x40), "values in"},
		{"recipient never ended", binary.LittleEndian.AppendUint32(nil, uint32(StartRecip)), "EndToRecip"},
		{"attachment never ended", binary.LittleEndian.AppendUint32(nil, uint32(NewAttach)), "EndAttach"},
		{"EndMessage without StartMessage", binary.LittleEndian.AppendUint32(nil, uint32(EndMessage)), "after the message"},
		{"named kind 7", append(append(binary.LittleEndian.AppendUint32(nil, 0x80000003), make([]byte, 16)...), 7), "kind 7"},
		{"frame longer than the blob", frame(frameTransferBuffer, 100, good[:10]), "a frame of 100 bytes"},
		{"unknown frame", append(frame(frameConfig, 0, nil), frame(9, 0, nil)...), "unknown frame opcode 9"},
		{"frames without a transfer buffer", frame(frameConfig, 8, make([]byte, 8)), "no transfer buffer"},
		{"nested too deep", deepStream, "too deep"},
		{"empty", nil, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("error %v, want ErrMalformed saying %q", err, tc.why)
			}
		})
	}
}

// encoderNoLimit writes nesting deeper than Encode allows.
type encoderNoLimit struct{ encoder }

func (e *encoderNoLimit) encode(m *Message) ([]byte, error) {
	var walk func(m *Message)
	walk = func(m *Message) {
		for _, a := range m.Attachments {
			e.u32(uint32(NewAttach))
			if a.Embedded != nil {
				e.u32(uint32(StartEmbed))
				walk(a.Embedded)
				e.u32(uint32(EndEmbed))
			}
			e.u32(uint32(EndAttach))
		}
	}
	walk(m)
	return e.b.Bytes(), nil
}

func TestEncodeRefusesWhatTheStreamCannotCarry(t *testing.T) {
	for _, p := range []Prop{
		{Tag: NewTag(0x0E07, TypeInteger32), Value: []byte{1}},
		{Tag: StartRecip},
		{Tag: NewTag(0x8001, TypeInteger32), Value: make([]byte, 4)},
		{Tag: NewTag(0x0E07, 0x0009)},
	} {
		if _, err := EncodeStream(&Message{Props: Props{p}}); err == nil {
			t.Errorf("%v encoded", p.Tag)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzDecode: no input panics or allocates beyond its size, and whatever
// decodes encodes back to a stream that decodes to the same message.
func FuzzDecode(f *testing.F) {
	f.Add(must(Encode(sample())))
	f.Add(must(EncodeStream(sample())))
	f.Add([]byte{1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		again, err := EncodeStream(m)
		if err != nil {
			return // e.g. a named id without a name cannot be written back
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded stream does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalized(m), m2) {
			t.Fatalf("re-encoded stream decodes differently")
		}
	})
}

// A stream split over many transfer buffers is joined, in order, and
// without copying what was joined already for every further buffer.
func TestManyTransferBuffers(t *testing.T) {
	s := must(EncodeStream(sample()))
	var b []byte
	b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, frameConfig), 8)
	b = append(b, make([]byte, 8)...)
	for i := 0; i < len(s); i += 3 {
		part := s[i:min(i+3, len(s))]
		b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, frameTransferBuffer), uint32(len(part)))
		b = append(b, part...)
	}
	joined, err := Unwrap(b)
	if err != nil || !bytes.Equal(joined, s) {
		t.Fatalf("joined %d bytes of %d: %v", len(joined), len(s), err)
	}
	if _, err := Decode(b); err != nil {
		t.Fatal(err)
	}
}
