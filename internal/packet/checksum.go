package packet

import (
	"encoding/binary"
	"math/bits"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Checksum returns the 16-bit one's-complement sum of b (RFC 1071) added to
// initial, folded but not complemented. An odd trailing byte is padded with
// a zero byte, as the Internet checksum asks. It sums 8 bytes per step with
// end-around carry, which is where the time goes for large packets.
func Checksum(b []byte, initial uint16) uint16 {
	var acc uint64 = uint64(initial)
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), 0)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		acc += carry
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc += carry
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), 0)
		acc += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc += carry
	}
	return fold64(acc)
}

func fold64(acc uint64) uint16 {
	// Fold 64 -> 32 -> 16 bits with end-around carry at each step.
	s := (acc >> 32) + (acc & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// Add returns the one's-complement sum a + b.
func Add(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderSum4 is the sum of the IPv4 pseudo-header (RFC 768, RFC 793):
// source, destination, zero, protocol, upper-layer length.
func PseudoHeaderSum4(src, dst [4]byte, proto nat64.Proto, length uint16) uint16 {
	s := Checksum(src[:], 0)
	s = Checksum(dst[:], s)
	s = Add(s, uint16(proto))
	return Add(s, length)
}

// PseudoHeaderSum6 is the sum of the IPv6 pseudo-header (RFC 8200 §8.1):
// source, destination, 32-bit upper-layer length, 24 zero bits, next header.
func PseudoHeaderSum6(src, dst *[16]byte, proto nat64.Proto, length uint32) uint16 {
	return AddPseudoHeader6(Checksum(dst[:], Checksum(src[:], 0)), proto, length)
}

// AddPseudoHeader6 completes an IPv6 pseudo-header sum from the sum of its
// two addresses (IPv6.AddrSum), adding length and next header.
func AddPseudoHeader6(addrSum uint16, proto nat64.Proto, length uint32) uint16 {
	s := Add(addrSum, uint16(length>>16))
	s = Add(s, uint16(length))
	return Add(s, uint16(proto))
}

// UpdateChecksum returns the checksum field value after data it covers
// changed from contributing old to contributing new: one 16-bit word, or a
// folded sum of many (from Checksum or PseudoHeaderSum*, as when addresses
// change family). It is RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'). An
// incorrect checksum stays incorrect by the same amount, which RFC 7915
// asks of a translator.
func UpdateChecksum(cksum, old, new uint16) uint16 {
	return ^Add(Add(^cksum, ^old), new)
}
