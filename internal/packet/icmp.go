package packet

import (
	"encoding/binary"
)

// ICMPv4 is an ICMPv4 header (RFC 792), 8 bytes, whose second word depends
// on the type:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Echo: Identifier              | Sequence Number               |
//	| Dest. Unreachable: unused | Length (RFC 4884) | Next-Hop MTU (RFC 1191) |
//	| Time Exceeded: unused     | Length (RFC 4884) | unused        |
//	| Param. Problem: Pointer   | Length (RFC 4884) | unused        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The RFC 4884 Length counts 32-bit words of the original datagram.
type ICMPv4 []byte

// Field offsets of the ICMP header, both versions.
const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpRest     = 4 // the second word
	icmpIdent    = 4
	icmpSeq      = 6
)

// ICMPv4 types used by the translator.
const (
	ICMPv4EchoReply      = 0
	ICMPv4DestUnreach    = 3
	ICMPv4EchoRequest    = 8
	ICMPv4TimeExceeded   = 11
	ICMPv4ParamProblem   = 12
	ICMPv4CodeHostUnr    = 1
	ICMPv4CodeFragNeeded = 4
	ICMPv4CodePortUnr    = 3
)

func (b ICMPv4) Type() uint8            { return b[icmpType] }
func (b ICMPv4) Code() uint8            { return b[icmpCode] }
func (b ICMPv4) Checksum() uint16       { return binary.BigEndian.Uint16(b[icmpChecksum:]) }
func (b ICMPv4) Ident() uint16          { return binary.BigEndian.Uint16(b[icmpIdent:]) }
func (b ICMPv4) Seq() uint16            { return binary.BigEndian.Uint16(b[icmpSeq:]) }
func (b ICMPv4) Pointer() uint8         { return b[icmpRest] }
func (b ICMPv4) Length4884() int        { return int(b[icmpRest+1]) * 4 }
func (b ICMPv4) MTU() uint16            { return binary.BigEndian.Uint16(b[icmpRest+2:]) }
func (b ICMPv4) SetTypeCode(t, c uint8) { b[icmpType], b[icmpCode] = t, c }
func (b ICMPv4) SetChecksum(v uint16)   { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }
func (b ICMPv4) SetIdent(v uint16)      { binary.BigEndian.PutUint16(b[icmpIdent:], v) }

// ICMPFields are the first 8 bytes of an ICMPv4 or ICMPv6 message.
type ICMPFields struct {
	Type, Code uint8
	// Rest is the second word: echo identifier and sequence, MTU,
	// pointer, RFC 4884 length.
	Rest uint32
}

// Encode writes the header from f with a zero checksum, to be computed
// once the body is in place.
func (b ICMPv4) Encode(f *ICMPFields) { encodeICMP(b, f) }

func encodeICMP(b []byte, f *ICMPFields) {
	b[icmpType], b[icmpCode] = f.Type, f.Code
	binary.BigEndian.PutUint16(b[icmpChecksum:], 0)
	binary.BigEndian.PutUint32(b[icmpRest:], f.Rest)
}

// ICMPv4Rest4884 is the second word of an ICMPv4 error with an RFC 4884
// length of words 32-bit words.
func ICMPv4Rest4884(words uint8) uint32 { return uint32(words) << 16 }

// IsICMPv4Error reports whether an ICMPv4 type carries an original datagram.
func IsICMPv4Error(t uint8) bool {
	switch t {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// ICMPv6 is an ICMPv6 header (RFC 4443 §2.1), 8 bytes:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Echo: Identifier              | Sequence Number               |
//	| Packet Too Big: MTU (32 bits)                                 |
//	| Parameter Problem: Pointer (32 bits)                          |
//	| Dest. Unreach / Time Exceeded: Length (RFC 4884) | unused     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The RFC 4884 Length (first byte of the word) counts 64-bit words.
type ICMPv6 []byte

// ICMPv6 types used by the translator.
const (
	ICMPv6DestUnreach  = 1
	ICMPv6PacketTooBig = 2
	ICMPv6TimeExceeded = 3
	ICMPv6ParamProblem = 4
	ICMPv6EchoRequest  = 128
	ICMPv6EchoReply    = 129
)

func (b ICMPv6) Type() uint8            { return b[icmpType] }
func (b ICMPv6) Code() uint8            { return b[icmpCode] }
func (b ICMPv6) Checksum() uint16       { return binary.BigEndian.Uint16(b[icmpChecksum:]) }
func (b ICMPv6) Ident() uint16          { return binary.BigEndian.Uint16(b[icmpIdent:]) }
func (b ICMPv6) Seq() uint16            { return binary.BigEndian.Uint16(b[icmpSeq:]) }
func (b ICMPv6) MTU() uint32            { return binary.BigEndian.Uint32(b[icmpRest:]) }
func (b ICMPv6) Pointer() uint32        { return binary.BigEndian.Uint32(b[icmpRest:]) }
func (b ICMPv6) Length4884() int        { return int(b[icmpRest]) * 8 }
func (b ICMPv6) SetTypeCode(t, c uint8) { b[icmpType], b[icmpCode] = t, c }
func (b ICMPv6) SetChecksum(v uint16)   { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }
func (b ICMPv6) SetIdent(v uint16)      { binary.BigEndian.PutUint16(b[icmpIdent:], v) }

// Encode writes the header from f with a zero checksum, to be computed
// once the body is in place.
func (b ICMPv6) Encode(f *ICMPFields) { encodeICMP(b, f) }

// ICMPv6Rest4884 is the second word of an ICMPv6 error with an RFC 4884
// length of words 64-bit words.
func ICMPv6Rest4884(words uint8) uint32 { return uint32(words) << 24 }

// IsICMPv6Error reports whether an ICMPv6 type is an error message (RFC 4443
// §2.1: types 0-127).
func IsICMPv6Error(t uint8) bool { return t < 128 }
