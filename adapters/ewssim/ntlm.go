package ewssim

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"unicode/utf16"

	"golang.org/x/crypto/md4"
)

// The server side of NTLMv2, as IIS runs it for Exchange: the simulator
// issues a challenge and checks the client's proof against the account's
// password. (mailvault's client uses a maintained NTLM library; this is
// the other end of the wire, kept to what verification needs.)

const (
	flagUnicode           = 0x00000001
	flagRequestTarget     = 0x00000004
	flagNTLM              = 0x00000200
	flagAlwaysSign        = 0x00008000
	flagTargetTypeDomain  = 0x00010000
	flagExtendedSecurity  = 0x00080000
	flagTargetInfo        = 0x00800000
	flag128               = 0x20000000
	flag56                = 0x80000000
	ntlmSignature         = "NTLMSSP\x00"
	simServer             = "EXCH01"
	avEOL, avNbComputer   = 0, 1
	avNbDomain, avTimeKey = 2, 7
)

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// challenge builds a CHALLENGE message (type 2) with a fresh server
// challenge.
func challenge(netbiosDomain string) (msg []byte, server [8]byte) {
	_, _ = rand.Read(server[:])
	target := utf16le(netbiosDomain)
	var info bytes.Buffer
	av := func(id uint16, v []byte) {
		binary.Write(&info, binary.LittleEndian, id)
		binary.Write(&info, binary.LittleEndian, uint16(len(v)))
		info.Write(v)
	}
	av(avNbDomain, utf16le(netbiosDomain))
	av(avNbComputer, utf16le(simServer))
	av(avEOL, nil)
	const header = 48
	var b bytes.Buffer
	b.WriteString(ntlmSignature)
	binary.Write(&b, binary.LittleEndian, uint32(2))
	binary.Write(&b, binary.LittleEndian, uint16(len(target)))
	binary.Write(&b, binary.LittleEndian, uint16(len(target)))
	binary.Write(&b, binary.LittleEndian, uint32(header))
	binary.Write(&b, binary.LittleEndian, uint32(flagUnicode|flagRequestTarget|flagNTLM|flagAlwaysSign|flagTargetTypeDomain|flagExtendedSecurity|flagTargetInfo|flag128|flag56))
	b.Write(server[:])
	b.Write(make([]byte, 8))
	binary.Write(&b, binary.LittleEndian, uint16(info.Len()))
	binary.Write(&b, binary.LittleEndian, uint16(info.Len()))
	binary.Write(&b, binary.LittleEndian, uint32(header+len(target)))
	b.Write(target)
	b.Write(info.Bytes())
	return b.Bytes(), server
}

// messageType reads the type of an NTLM message.
func messageType(msg []byte) uint32 {
	if len(msg) < 12 || string(msg[:8]) != ntlmSignature {
		return 0
	}
	return binary.LittleEndian.Uint32(msg[8:12])
}

func field(msg []byte, at int) ([]byte, error) {
	if len(msg) < at+8 {
		return nil, errors.New("short NTLM message")
	}
	n := int(binary.LittleEndian.Uint16(msg[at:]))
	off := int(binary.LittleEndian.Uint32(msg[at+4:]))
	if off < 0 || off+n > len(msg) {
		return nil, errors.New("NTLM field outside the message")
	}
	return msg[off : off+n], nil
}

// verify checks an AUTHENTICATE message (type 3) against the account: the
// user name (with or without a domain) and the NTLMv2 proof of the password.
// verify checks an NTLMv2 AUTHENTICATE message against the challenge, for a
// user and domain (as the client sent them) that account accepts.
func verify(msg []byte, server [8]byte, account func(user, domain string) bool, password string) error {
	if messageType(msg) != 3 {
		return errors.New("not an NTLM AUTHENTICATE message")
	}
	nt, err := field(msg, 20)
	if err != nil {
		return err
	}
	domainB, err := field(msg, 28)
	if err != nil {
		return err
	}
	userB, err := field(msg, 36)
	if err != nil {
		return err
	}
	user, domain := fromUTF16le(userB), fromUTF16le(domainB)
	if !account(user, domain) {
		return errors.New("unknown user " + user)
	}
	if len(nt) < 16+28 {
		return errors.New("not an NTLMv2 response")
	}
	h := md4.New()
	h.Write(utf16le(password))
	key := hmac.New(md5.New, h.Sum(nil))
	key.Write(utf16le(strings.ToUpper(user) + domain))
	proof := hmac.New(md5.New, key.Sum(nil))
	proof.Write(server[:])
	proof.Write(nt[16:])
	if !hmac.Equal(proof.Sum(nil), nt[:16]) {
		return errors.New("wrong password")
	}
	return nil
}
