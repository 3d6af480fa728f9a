// Package packet holds zero-copy header views over []byte for the headers the
// NAT64 translator reads and rewrites (IPv4, IPv6, the IPv6 Fragment header,
// TCP, UDP, ICMPv4, ICMPv6), a one-pass validating Parse, and Internet
// checksum arithmetic (full sums and RFC 1624 incremental updates).
//
// A view is just the byte slice starting at its header. Accessors do not
// check lengths: callers run Parse first, which guarantees that every header
// it reports lies inside the slice.
package packet

import "encoding/binary"

// Protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoHopByHop  = 0
	ProtoICMPv4    = 1
	ProtoTCP       = 6
	ProtoUDP       = 17
	ProtoRouting   = 43
	ProtoFragment  = 44
	ProtoICMPv6    = 58
	ProtoNoNext    = 59
	ProtoDestOpts  = 60
	ProtoESP       = 50
	ProtoAH        = 51
	ProtoMobility  = 135
	ProtoHIP       = 139
	ProtoShim6     = 140
	ProtoExp253    = 253
	ProtoExp254    = 254
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

// IPv4 flag bits in the 16-bit flags/offset word.
const (
	IPv4FlagDF = 0x4000
	IPv4FlagMF = 0x2000
)

func (b IPv4) Version() uint8         { return b[0] >> 4 }
func (b IPv4) HeaderLen() int         { return int(b[0]&0x0f) * 4 }
func (b IPv4) TOS() uint8             { return b[1] }
func (b IPv4) TotalLen() uint16       { return binary.BigEndian.Uint16(b[2:]) }
func (b IPv4) ID() uint16             { return binary.BigEndian.Uint16(b[4:]) }
func (b IPv4) flagsOffset() uint16    { return binary.BigEndian.Uint16(b[6:]) }
func (b IPv4) DF() bool               { return b.flagsOffset()&IPv4FlagDF != 0 }
func (b IPv4) MF() bool               { return b.flagsOffset()&IPv4FlagMF != 0 }
func (b IPv4) FragOffset() int        { return int(b.flagsOffset()&0x1fff) * 8 }
func (b IPv4) IsFragment() bool       { return b.flagsOffset()&(IPv4FlagMF|0x1fff) != 0 }
func (b IPv4) TTL() uint8             { return b[8] }
func (b IPv4) Protocol() uint8        { return b[9] }
func (b IPv4) Checksum() uint16       { return binary.BigEndian.Uint16(b[10:]) }
func (b IPv4) Src() (a [4]byte)       { copy(a[:], b[12:16]); return }
func (b IPv4) Dst() (a [4]byte)       { copy(a[:], b[16:20]); return }
func (b IPv4) Payload() []byte        { return b[b.HeaderLen():b.TotalLen()] }
func (b IPv4) SetTOS(v uint8)         { b[1] = v }
func (b IPv4) SetTotalLen(v uint16)   { binary.BigEndian.PutUint16(b[2:], v) }
func (b IPv4) SetID(v uint16)         { binary.BigEndian.PutUint16(b[4:], v) }
func (b IPv4) SetTTL(v uint8)         { b[8] = v }
func (b IPv4) SetProtocol(v uint8)    { b[9] = v }
func (b IPv4) SetChecksum(v uint16)   { binary.BigEndian.PutUint16(b[10:], v) }
func (b IPv4) SetSrc(a [4]byte)       { copy(b[12:16], a[:]) }
func (b IPv4) SetDst(a [4]byte)       { copy(b[16:20], a[:]) }
func (b IPv4) SetVersionIHL(ihl int)  { b[0] = 0x40 | uint8(ihl/4) }
func (b IPv4) HeaderChecksumOK() bool { return Checksum(b[:b.HeaderLen()], 0) == 0xffff }
func (b IPv4) ComputeHeaderChecksum() {
	b.SetChecksum(0)
	b.SetChecksum(^Checksum(b[:b.HeaderLen()], 0))
}
func (b IPv4) PseudoHeaderSum(proto uint8, l4len uint16) uint16 {
	return PseudoHeaderSum4(b.Src(), b.Dst(), proto, l4len)
}

// SetFlagsOffset writes DF, MF and the fragment offset (in bytes, a
// multiple of 8).
func (b IPv4) SetFlagsOffset(df, mf bool, offset int) {
	v := uint16(offset/8) & 0x1fff
	if df {
		v |= IPv4FlagDF
	}
	if mf {
		v |= IPv4FlagMF
	}
	binary.BigEndian.PutUint16(b[6:], v)
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

func (b IPv6) Version() uint8      { return b[0] >> 4 }
func (b IPv6) TrafficClass() uint8 { return b[0]<<4 | b[1]>>4 }
func (b IPv6) FlowLabel() uint32   { return binary.BigEndian.Uint32(b[0:]) & 0xfffff }
func (b IPv6) PayloadLen() uint16  { return binary.BigEndian.Uint16(b[4:]) }
func (b IPv6) NextHeader() uint8   { return b[6] }
func (b IPv6) HopLimit() uint8     { return b[7] }
func (b IPv6) Src() (a [16]byte)   { copy(a[:], b[8:24]); return }
func (b IPv6) Dst() (a [16]byte)   { copy(a[:], b[24:40]); return }

// SetVersionClassFlow writes version 6, the traffic class and the flow label.
func (b IPv6) SetVersionClassFlow(tc uint8, flow uint32) {
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(tc)<<20|flow&0xfffff)
}
func (b IPv6) SetPayloadLen(v uint16) { binary.BigEndian.PutUint16(b[4:], v) }
func (b IPv6) SetNextHeader(v uint8)  { b[6] = v }
func (b IPv6) SetHopLimit(v uint8)    { b[7] = v }
func (b IPv6) SetSrc(a *[16]byte)     { copy(b[8:24], a[:]) }
func (b IPv6) SetDst(a *[16]byte)     { copy(b[24:40], a[:]) }

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

func (b IPv6Fragment) NextHeader() uint8 { return b[0] }
func (b IPv6Fragment) Offset() int       { return int(binary.BigEndian.Uint16(b[2:])>>3) * 8 }
func (b IPv6Fragment) More() bool        { return b[3]&1 != 0 }
func (b IPv6Fragment) ID() uint32        { return binary.BigEndian.Uint32(b[4:]) }

// Set writes the whole Fragment header; offset is in bytes, a multiple of 8.
func (b IPv6Fragment) Set(next uint8, offset int, more bool, id uint32) {
	b[0] = next
	b[1] = 0
	v := uint16(offset/8) << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], id)
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

// TCP flag bits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

func (b TCP) SrcPort() uint16         { return binary.BigEndian.Uint16(b[0:]) }
func (b TCP) DstPort() uint16         { return binary.BigEndian.Uint16(b[2:]) }
func (b TCP) Seq() uint32             { return binary.BigEndian.Uint32(b[4:]) }
func (b TCP) Ack() uint32             { return binary.BigEndian.Uint32(b[8:]) }
func (b TCP) DataOffset() int         { return int(b[12]>>4) * 4 }
func (b TCP) Flags() uint8            { return b[13] }
func (b TCP) Checksum() uint16        { return binary.BigEndian.Uint16(b[16:]) }
func (b TCP) SetSrcPort(v uint16)     { binary.BigEndian.PutUint16(b[0:], v) }
func (b TCP) SetDstPort(v uint16)     { binary.BigEndian.PutUint16(b[2:], v) }
func (b TCP) SetChecksum(v uint16)    { binary.BigEndian.PutUint16(b[16:], v) }
func (b TCP) SetSeq(v uint32)         { binary.BigEndian.PutUint32(b[4:], v) }
func (b TCP) SetDataOffset(bytes int) { b[12] = uint8(bytes/4) << 4 }
func (b TCP) SetFlags(v uint8)        { b[13] = v }

// TCPChecksumOffset is where the checksum lies in a TCP header.
const TCPChecksumOffset = 16

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

func (b UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(b[0:]) }
func (b UDP) DstPort() uint16      { return binary.BigEndian.Uint16(b[2:]) }
func (b UDP) Length() uint16       { return binary.BigEndian.Uint16(b[4:]) }
func (b UDP) Checksum() uint16     { return binary.BigEndian.Uint16(b[6:]) }
func (b UDP) SetSrcPort(v uint16)  { binary.BigEndian.PutUint16(b[0:], v) }
func (b UDP) SetDstPort(v uint16)  { binary.BigEndian.PutUint16(b[2:], v) }
func (b UDP) SetLength(v uint16)   { binary.BigEndian.PutUint16(b[4:], v) }
func (b UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[6:], v) }

// UDPChecksumOffset is where the checksum lies in a UDP header.
const UDPChecksumOffset = 6

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

func (b ICMPv4) Type() uint8               { return b[0] }
func (b ICMPv4) Code() uint8               { return b[1] }
func (b ICMPv4) Checksum() uint16          { return binary.BigEndian.Uint16(b[2:]) }
func (b ICMPv4) Ident() uint16             { return binary.BigEndian.Uint16(b[4:]) }
func (b ICMPv4) Seq() uint16               { return binary.BigEndian.Uint16(b[6:]) }
func (b ICMPv4) Pointer() uint8            { return b[4] }
func (b ICMPv4) Length4884() int           { return int(b[5]) * 4 }
func (b ICMPv4) MTU() uint16               { return binary.BigEndian.Uint16(b[6:]) }
func (b ICMPv4) SetTypeCode(t, c uint8)    { b[0], b[1] = t, c }
func (b ICMPv4) SetChecksum(v uint16)      { binary.BigEndian.PutUint16(b[2:], v) }
func (b ICMPv4) SetIdent(v uint16)         { binary.BigEndian.PutUint16(b[4:], v) }
func (b ICMPv4) SetRest(v uint32)          { binary.BigEndian.PutUint32(b[4:], v) }
func (b ICMPv4) SetMTU(v uint16)           { binary.BigEndian.PutUint16(b[6:], v) }
func (b ICMPv4) SetPointer(v uint8)        { b[4] = v }
func (b ICMPv4) SetLength4884(words uint8) { b[5] = words }

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

func (b ICMPv6) Type() uint8               { return b[0] }
func (b ICMPv6) Code() uint8               { return b[1] }
func (b ICMPv6) Checksum() uint16          { return binary.BigEndian.Uint16(b[2:]) }
func (b ICMPv6) Ident() uint16             { return binary.BigEndian.Uint16(b[4:]) }
func (b ICMPv6) Seq() uint16               { return binary.BigEndian.Uint16(b[6:]) }
func (b ICMPv6) MTU() uint32               { return binary.BigEndian.Uint32(b[4:]) }
func (b ICMPv6) Pointer() uint32           { return binary.BigEndian.Uint32(b[4:]) }
func (b ICMPv6) Length4884() int           { return int(b[4]) * 8 }
func (b ICMPv6) SetTypeCode(t, c uint8)    { b[0], b[1] = t, c }
func (b ICMPv6) SetChecksum(v uint16)      { binary.BigEndian.PutUint16(b[2:], v) }
func (b ICMPv6) SetIdent(v uint16)         { binary.BigEndian.PutUint16(b[4:], v) }
func (b ICMPv6) SetRest(v uint32)          { binary.BigEndian.PutUint32(b[4:], v) }
func (b ICMPv6) SetLength4884(words uint8) { b[4] = words }

// IsICMPv6Error reports whether an ICMPv6 type is an error message (RFC 4443
// §2.1: types 0-127).
func IsICMPv6Error(t uint8) bool { return t < 128 }
