package packet

import (
	"encoding/binary"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

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

// AddrSum is the one's-complement sum of the source and destination
// addresses: the part of a pseudo-header that translation replaces.
func (b IPv6) AddrSum() uint16 { return Checksum(b[ipv6Src:ipv6Dst+16], 0) }

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
	b = b[:IPv6HeaderLen] // one bounds check for every write below
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
