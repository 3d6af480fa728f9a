package packet

import (
	"encoding/binary"

	"github.com/nat64kit/nat64kit/internal/nat64"
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

// AddrSum is the one's-complement sum of the source and destination
// addresses: the part of a pseudo-header that translation replaces.
func (b IPv4) AddrSum() uint16 { return Checksum(b[ipv4Src:ipv4Dst+4], 0) }
func (b IPv4) SetTotalLen(v uint16) {
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], v)
}
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }
func (b IPv4) HeaderChecksumOK() bool {
	return Checksum(b[:b.HeaderLen()], 0) == 0xffff
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
	b = b[:IPv4MinHeader] // one bounds check for every write below
	flags := uint16(f.FragOffset/8) & ipv4Offset
	if f.DF {
		flags |= IPv4FlagDF
	}
	if f.MF {
		flags |= IPv4FlagMF
	}
	versionIHL := uint8(0x40 | IPv4MinHeader/4)
	b[ipv4VersionIHL] = versionIHL
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsOffset:], flags)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = uint8(f.Protocol)
	copy(b[ipv4Src:ipv4Src+4], f.Src[:])
	copy(b[ipv4Dst:ipv4Dst+4], f.Dst[:])
	// The checksum is summed from the fields: reading back the bytes just
	// written would wait on those stores.
	s := uint32(versionIHL)<<8 | uint32(f.TOS)
	s += uint32(f.TotalLen) + uint32(f.ID) + uint32(flags)
	s += uint32(f.TTL)<<8 | uint32(f.Protocol)
	s += uint32(binary.BigEndian.Uint16(f.Src[:2])) + uint32(binary.BigEndian.Uint16(f.Src[2:]))
	s += uint32(binary.BigEndian.Uint16(f.Dst[:2])) + uint32(binary.BigEndian.Uint16(f.Dst[2:]))
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	binary.BigEndian.PutUint16(b[ipv4Checksum:], ^uint16(s))
}
