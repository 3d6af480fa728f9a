// Package packet holds zero-copy header views over []byte for the headers the
// NAT64 translator reads and rewrites (IPv4, IPv6, the IPv6 Fragment header,
// TCP, UDP, ICMPv4, ICMPv6), a one-pass validating Parse, and Internet
// checksum arithmetic (full sums and RFC 1624 incremental updates).
//
// A view is just the byte slice starting at its header. Accessors do not
// check lengths: callers run Parse first, which guarantees that every header
// it reports lies inside the slice.
package packet

import (
	"encoding/binary"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Sizes and limits.
const (
	IPv4MinHeader  = 20
	IPv6HeaderLen  = 40
	FragmentLen    = 8
	TCPMinHeader   = 20
	UDPHeaderLen   = 8
	ICMPHeaderLen  = 8
	IPv4MaxTotLen  = 65535
	IPv6MinMTU     = 1280
	IPv4MinMTU     = 68
	ICMPv4ErrorMax = 576  // RFC 1812 §4.3.2.3: an ICMPv4 error stays within 576 bytes
	ICMPv6ErrorMax = 1280 // RFC 4443 §2.4(c): an ICMPv6 error stays within the minimum MTU
)

// IPv4 is an IPv4 header (RFC 791 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: bit 0 reserved, bit 1 DF, bit 2 MF. Fragment Offset counts 8-byte
// units; FragOffset returns bytes.
type IPv4 []byte

// Field offsets of the IPv4 header.
const (
	ipv4VersionIHL  = 0
	ipv4TOS         = 1
	ipv4TotalLen    = 2
	ipv4ID          = 4
	ipv4FlagsOffset = 6
	ipv4TTL         = 8
	ipv4Protocol    = 9
	ipv4Checksum    = 10
	ipv4Src         = 12
	ipv4Dst         = 16
)

// IPv4 flag bits in the 16-bit flags/offset word.
const (
	IPv4FlagDF = 0x4000
	IPv4FlagMF = 0x2000
	ipv4Offset = 0x1fff
)

func (b IPv4) Version() uint8        { return b[ipv4VersionIHL] >> 4 }
func (b IPv4) HeaderLen() int        { return int(b[ipv4VersionIHL]&0x0f) * 4 }
func (b IPv4) TOS() uint8            { return b[ipv4TOS] }
func (b IPv4) TotalLen() uint16      { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }
func (b IPv4) ID() uint16            { return binary.BigEndian.Uint16(b[ipv4ID:]) }
func (b IPv4) flagsOffset() uint16   { return binary.BigEndian.Uint16(b[ipv4FlagsOffset:]) }
func (b IPv4) DF() bool              { return b.flagsOffset()&IPv4FlagDF != 0 }
func (b IPv4) MF() bool              { return b.flagsOffset()&IPv4FlagMF != 0 }
func (b IPv4) FragOffset() int       { return int(b.flagsOffset()&ipv4Offset) * 8 }
func (b IPv4) TTL() uint8            { return b[ipv4TTL] }
func (b IPv4) Protocol() nat64.Proto { return nat64.Proto(b[ipv4Protocol]) }
func (b IPv4) Checksum() uint16      { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }
func (b IPv4) Src() (a [4]byte)      { copy(a[:], b[ipv4Src:ipv4Src+4]); return }
func (b IPv4) Dst() (a [4]byte)      { copy(a[:], b[ipv4Dst:ipv4Dst+4]); return }
func (b IPv4) SetTotalLen(v uint16) {
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], v)
}
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }
func (b IPv4) HeaderChecksumOK() bool {
	return Checksum(b[:b.HeaderLen()], 0) == 0xffff
}

// ComputeHeaderChecksum writes the header checksum over the header as it
// stands.
func (b IPv4) ComputeHeaderChecksum() {
	b.SetChecksum(0)
	b.SetChecksum(^Checksum(b[:b.HeaderLen()], 0))
}

// IPv4Fields are the fields of an IPv4 header without options.
type IPv4Fields struct {
	TOS        uint8
	TotalLen   uint16
	ID         uint16
	DF, MF     bool
	FragOffset int // bytes, a multiple of 8
	TTL        uint8
	Protocol   nat64.Proto
	Src, Dst   [4]byte
}

// Encode writes a 20-byte header from f, with its checksum.
func (b IPv4) Encode(f *IPv4Fields) {
	flags := uint16(f.FragOffset/8) & ipv4Offset
	if f.DF {
		flags |= IPv4FlagDF
	}
	if f.MF {
		flags |= IPv4FlagMF
	}
	b[ipv4VersionIHL] = 0x40 | IPv4MinHeader/4
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsOffset:], flags)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = uint8(f.Protocol)
	copy(b[ipv4Src:ipv4Src+4], f.Src[:])
	copy(b[ipv4Dst:ipv4Dst+4], f.Dst[:])
	b.ComputeHeaderChecksum()
}

// IPv6 is the IPv6 fixed header (RFC 8200 §3):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Source Address (128 bits)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Destination Address (128 bits)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6 []byte

// Field offsets of the IPv6 header.
const (
	ipv6VersionClassFlow = 0
	ipv6PayloadLen       = 4
	ipv6NextHeader       = 6
	ipv6HopLimit         = 7
	ipv6Src              = 8
	ipv6Dst              = 24
)

func (b IPv6) Version() uint8      { return b[ipv6VersionClassFlow] >> 4 }
func (b IPv6) TrafficClass() uint8 { return b[0]<<4 | b[1]>>4 }
func (b IPv6) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(b[ipv6VersionClassFlow:]) & 0xfffff
}
func (b IPv6) PayloadLen() uint16      { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }
func (b IPv6) NextHeader() nat64.Proto { return nat64.Proto(b[ipv6NextHeader]) }
func (b IPv6) HopLimit() uint8         { return b[ipv6HopLimit] }
func (b IPv6) Src() (a [16]byte)       { copy(a[:], b[ipv6Src:ipv6Src+16]); return }
func (b IPv6) Dst() (a [16]byte)       { copy(a[:], b[ipv6Dst:ipv6Dst+16]); return }

// IPv6Fields are the fields of the IPv6 fixed header.
type IPv6Fields struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   uint16
	NextHeader   nat64.Proto
	HopLimit     uint8
	Src, Dst     *[16]byte
}

// Encode writes the 40-byte fixed header from f.
func (b IPv6) Encode(f *IPv6Fields) {
	binary.BigEndian.PutUint32(b[ipv6VersionClassFlow:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[ipv6PayloadLen:], f.PayloadLen)
	b[ipv6NextHeader] = uint8(f.NextHeader)
	b[ipv6HopLimit] = f.HopLimit
	copy(b[ipv6Src:ipv6Src+16], f.Src[:])
	copy(b[ipv6Dst:ipv6Dst+16], f.Dst[:])
}

// IPv6Fragment is the IPv6 Fragment extension header (RFC 8200 §4.5):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Fragment Offset counts 8-byte units; Offset returns bytes.
type IPv6Fragment []byte

// Field offsets of the Fragment header.
const (
	fragNextHeader   = 0
	fragOffsetMore   = 2
	fragIdentication = 4
)

func (b IPv6Fragment) NextHeader() nat64.Proto { return nat64.Proto(b[fragNextHeader]) }
func (b IPv6Fragment) Offset() int {
	return int(binary.BigEndian.Uint16(b[fragOffsetMore:])>>3) * 8
}
func (b IPv6Fragment) More() bool { return b[fragOffsetMore+1]&1 != 0 }
func (b IPv6Fragment) ID() uint32 { return binary.BigEndian.Uint32(b[fragIdentication:]) }

// IPv6FragmentFields are the fields of a Fragment header.
type IPv6FragmentFields struct {
	NextHeader nat64.Proto
	Offset     int // bytes, a multiple of 8
	More       bool
	ID         uint32
}

// Encode writes the whole Fragment header from f.
func (b IPv6Fragment) Encode(f *IPv6FragmentFields) {
	b[fragNextHeader] = uint8(f.NextHeader)
	b[fragNextHeader+1] = 0
	v := uint16(f.Offset/8) << 3
	if f.More {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[fragOffsetMore:], v)
	binary.BigEndian.PutUint32(b[fragIdentication:], f.ID)
}

// TCP is a TCP header (RFC 9293 §3.1):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type TCP []byte

// Field offsets of the TCP header.
const (
	tcpSrcPort    = 0
	tcpDstPort    = 2
	tcpSeq        = 4
	tcpAck        = 8
	tcpDataOffset = 12
	tcpFlags      = 13
	// TCPChecksumOffset is where the checksum lies in a TCP header.
	TCPChecksumOffset = 16
)

func (b TCP) SrcPort() uint16      { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }
func (b TCP) DstPort() uint16      { return binary.BigEndian.Uint16(b[tcpDstPort:]) }
func (b TCP) Seq() uint32          { return binary.BigEndian.Uint32(b[tcpSeq:]) }
func (b TCP) Ack() uint32          { return binary.BigEndian.Uint32(b[tcpAck:]) }
func (b TCP) DataOffset() int      { return int(b[tcpDataOffset]>>4) * 4 }
func (b TCP) Flags() uint8         { return b[tcpFlags] }
func (b TCP) Checksum() uint16     { return binary.BigEndian.Uint16(b[TCPChecksumOffset:]) }
func (b TCP) SetSrcPort(v uint16)  { binary.BigEndian.PutUint16(b[tcpSrcPort:], v) }
func (b TCP) SetDstPort(v uint16)  { binary.BigEndian.PutUint16(b[tcpDstPort:], v) }
func (b TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[TCPChecksumOffset:], v) }

// UDP is a UDP header (RFC 768):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Checksum 0 means "none" over IPv4 only; IPv6 forbids it (RFC 8200 §8.1).
type UDP []byte

// Field offsets of the UDP header.
const (
	udpSrcPort = 0
	udpDstPort = 2
	udpLength  = 4
	// UDPChecksumOffset is where the checksum lies in a UDP header.
	UDPChecksumOffset = 6
)

func (b UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(b[udpSrcPort:]) }
func (b UDP) DstPort() uint16      { return binary.BigEndian.Uint16(b[udpDstPort:]) }
func (b UDP) Length() uint16       { return binary.BigEndian.Uint16(b[udpLength:]) }
func (b UDP) Checksum() uint16     { return binary.BigEndian.Uint16(b[UDPChecksumOffset:]) }
func (b UDP) SetSrcPort(v uint16)  { binary.BigEndian.PutUint16(b[udpSrcPort:], v) }
func (b UDP) SetDstPort(v uint16)  { binary.BigEndian.PutUint16(b[udpDstPort:], v) }
func (b UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[UDPChecksumOffset:], v) }

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
