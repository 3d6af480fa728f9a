package nat64

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// RFC 6052 §2.2: an IPv4-embedded IPv6 address is the prefix, the 32 bits of
// IPv4 address (split around bits 64-71, the "u" octet, which is always
// zero), and a suffix that is zero here.
//
//	+--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//	|PL| 0-------------32--40--48--56--64--72--80--88--96--104---------|
//	+--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
//	|32|     prefix    |v4(32)         | u | suffix                    |
//	|40|     prefix        |v4(24)     | u |(8)| suffix                |
//	|48|     prefix            |v4(16) | u | (16)  | suffix            |
//	|56|     prefix                |(8)| u |  v4(24)   | suffix        |
//	|64|     prefix                    | u |   v4(32)      | suffix    |
//	|96|     prefix                                    |    v4(32)     |
//	+--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+

// WellKnownPrefix is 64:ff9b::/96 (RFC 6052 §2.1).
var WellKnownPrefix = netip.MustParsePrefix("64:ff9b::/96")

// Prefix is a validated NAT64 prefix (pool6). Its methods are
// allocation-free: the translator calls them once per packet.
type Prefix struct {
	addr [16]byte
	bits uint8
	// v4at holds, for each of the four IPv4 octets, its byte index in the
	// IPv6 address; precomputed so Embed and Extract are straight copies.
	v4at [4]uint8
	// wellKnown is true for 64:ff9b::/96, which RFC 6052 §3.1 forbids from
	// carrying non-global IPv4 addresses.
	wellKnown bool
	// mask covers the prefix's bytes, as two little-endian words, so that
	// Contains is two compares.
	mask [2]uint64
	// sum is the one's-complement sum of addr, for EmbedSum.
	sum uint16
}

// ErrPrefix is wrapped by every prefix validation error.
var ErrPrefix = errors.New("invalid NAT64 prefix")

// NewPrefix validates p against RFC 6052 §2.2: IPv6, length 32, 40, 48, 56,
// 64 or 96, no host bits set, and bits 64-71 zero.
func NewPrefix(p netip.Prefix) (Prefix, error) {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
		return Prefix{}, fmt.Errorf("%w: %s is not an IPv6 prefix", ErrPrefix, p)
	}
	if p.Addr().Zone() != "" {
		return Prefix{}, fmt.Errorf("%w: %s has a zone", ErrPrefix, p)
	}
	var v4at [4]uint8
	switch p.Bits() {
	case 32:
		v4at = [4]uint8{4, 5, 6, 7}
	case 40:
		v4at = [4]uint8{5, 6, 7, 9}
	case 48:
		v4at = [4]uint8{6, 7, 9, 10}
	case 56:
		v4at = [4]uint8{7, 9, 10, 11}
	case 64:
		v4at = [4]uint8{9, 10, 11, 12}
	case 96:
		v4at = [4]uint8{12, 13, 14, 15}
	default:
		return Prefix{}, fmt.Errorf("%w: %s: length must be 32, 40, 48, 56, 64 or 96 (RFC 6052 section 2.2)", ErrPrefix, p)
	}
	if p.Masked() != p {
		return Prefix{}, fmt.Errorf("%w: %s has bits set after /%d (did you mean %s?)", ErrPrefix, p, p.Bits(), p.Masked())
	}
	a := p.Addr().As16()
	if a[8] != 0 {
		return Prefix{}, fmt.Errorf("%w: %s: bits 64-71 must be zero (RFC 6052 section 2.2)", ErrPrefix, p)
	}
	var m [16]byte
	for i := 0; i < p.Bits()/8; i++ {
		m[i] = 0xff
	}
	mask := [2]uint64{binary.LittleEndian.Uint64(m[:8]), binary.LittleEndian.Uint64(m[8:])}
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(a[i])<<8 | uint32(a[i+1])
	}
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	return Prefix{addr: a, bits: uint8(p.Bits()), v4at: v4at, wellKnown: p == WellKnownPrefix, mask: mask, sum: uint16(sum)}, nil
}

// MustPrefix is NewPrefix for constants in tests and examples.
func MustPrefix(s string) Prefix {
	p, err := NewPrefix(netip.MustParsePrefix(s))
	if err != nil {
		panic(err)
	}
	return p
}

// ParsePrefix parses and validates a prefix in text form.
func ParsePrefix(s string) (Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Prefix{}, fmt.Errorf("%w: %q: %v", ErrPrefix, s, err)
	}
	return NewPrefix(p)
}

// IsValid reports whether p came from NewPrefix.
func (p Prefix) IsValid() bool { return p.bits != 0 }

// Netip returns the prefix as a netip.Prefix.
func (p Prefix) Netip() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(p.addr), int(p.bits))
}

// Bits returns the prefix length.
func (p Prefix) Bits() int { return int(p.bits) }

// IsWellKnown reports whether p is 64:ff9b::/96.
func (p Prefix) IsWellKnown() bool { return p.wellKnown }

// String returns the prefix in RFC 5952 form.
func (p Prefix) String() string { return p.Netip().String() }

// Contains reports whether a lies inside the prefix.
func (p Prefix) Contains(a [16]byte) bool {
	// The host bits of p.addr are zero, so p's own bytes compare equal
	// under the mask.
	hi := binary.LittleEndian.Uint64(a[:8]) ^ binary.LittleEndian.Uint64(p.addr[:8])
	lo := binary.LittleEndian.Uint64(a[8:]) ^ binary.LittleEndian.Uint64(p.addr[8:])
	return hi&p.mask[0]|lo&p.mask[1] == 0
}

// Embed returns the IPv4-embedded IPv6 address of v4 (RFC 6052 §2.2), with
// the u octet and the suffix zero.
func (p Prefix) Embed(v4 [4]byte) [16]byte {
	var a [16]byte
	p.EmbedTo(&a, v4)
	return a
}

// EmbedSum is the one's-complement sum (RFC 1071) of Embed(v4), computed
// without building the address: what a pseudo-header checksum needs.
func (p *Prefix) EmbedSum(v4 [4]byte) uint16 {
	s := uint32(p.sum)
	for i, at := range p.v4at {
		if at&1 == 0 {
			s += uint32(v4[i]) << 8
		} else {
			s += uint32(v4[i])
		}
	}
	s = s&0xffff + s>>16
	return uint16(s&0xffff + s>>16)
}

// EmbedTo is Embed writing into a, for the packet path: no temporary.
func (p *Prefix) EmbedTo(a *[16]byte, v4 [4]byte) {
	*a = p.addr
	if p.bits == 96 { // the usual prefix: one 4-byte store
		copy(a[12:], v4[:])
		return
	}
	a[p.v4at[0]&15] = v4[0]
	a[p.v4at[1]&15] = v4[1]
	a[p.v4at[2]&15] = v4[2]
	a[p.v4at[3]&15] = v4[3]
}

// Extract returns the IPv4 address embedded in a. ok is false when a is not
// inside the prefix. The u octet and the suffix are ignored, as RFC 6052
// §2.2 asks of a decoder.
func (p Prefix) Extract(a [16]byte) (v4 [4]byte, ok bool) {
	if !p.Contains(a) {
		return v4, false
	}
	if p.bits == 96 {
		return [4]byte(a[12:]), true
	}
	return [4]byte{a[p.v4at[0]&15], a[p.v4at[1]&15], a[p.v4at[2]&15], a[p.v4at[3]&15]}, true
}

// EmbedAddr is Embed for netip addresses; v4 must be IPv4.
func (p Prefix) EmbedAddr(v4 netip.Addr) netip.Addr {
	return netip.AddrFrom16(p.Embed(v4.As4()))
}

// ExtractAddr is Extract for netip addresses.
func (p Prefix) ExtractAddr(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	v4, ok := p.Extract(a.As16())
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(v4), true
}

// CanCarry reports whether v4 may be embedded in p: RFC 6052 §3.1 forbids
// the Well-Known Prefix from carrying non-global IPv4 addresses.
func (p Prefix) CanCarry(v4 [4]byte) bool {
	return !p.wellKnown || IsGlobalIPv4(v4)
}

// Overlaps reports whether the two prefixes share any address.
func (p Prefix) Overlaps(q Prefix) bool { return p.Netip().Overlaps(q.Netip()) }
