package tunio

import (
	"encoding/binary"
	"net/netip"
)

// Test packet builders: plain, allocating code that is fine outside the
// packet path. They make checksummed IPv4/IPv6 UDP datagrams.

func checksumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func checksumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)

	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	sum := checksumAdd(0, s)
	sum = checksumAdd(sum, d)
	sum += 17 + uint32(len(udp))
	sum = checksumAdd(sum, udp)
	cs := checksumFold(sum)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)

	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(udp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip[8] = 64
		ip[9] = 17
		copy(ip[12:], s)
		copy(ip[16:], d)
		binary.BigEndian.PutUint16(ip[10:], checksumFold(checksumAdd(0, ip)))
		return append(ip, udp...)
	}
	ip := make([]byte, 40, 40+len(udp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	ip[6] = 17
	ip[7] = 64
	copy(ip[8:], s)
	copy(ip[24:], d)
	return append(ip, udp...)
}

// parsedUDP is what a test checks of a packet read from the TUN.
type parsedUDP struct {
	src, dst netip.AddrPort
	payload  []byte
}

// parseUDP returns the UDP datagram in pkt, ok false for anything else
// (the kernel also sends router solicitations and MLD reports into a TUN).
func parseUDP(pkt []byte) (p parsedUDP, ok bool) {
	if len(pkt) < 1 {
		return p, false
	}
	var l4 []byte
	var s, d netip.Addr
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 28 || pkt[9] != 17 {
			return p, false
		}
		hl := int(pkt[0]&0xf) * 4
		s = netip.AddrFrom4([4]byte(pkt[12:16]))
		d = netip.AddrFrom4([4]byte(pkt[16:20]))
		l4 = pkt[hl:]
	case 6:
		if len(pkt) < 48 || pkt[6] != 17 {
			return p, false
		}
		s = netip.AddrFrom16([16]byte(pkt[8:24]))
		d = netip.AddrFrom16([16]byte(pkt[24:40]))
		l4 = pkt[40:]
	default:
		return p, false
	}
	ulen := int(binary.BigEndian.Uint16(l4[4:]))
	if ulen < 8 || ulen > len(l4) {
		return p, false
	}
	p.src = netip.AddrPortFrom(s, binary.BigEndian.Uint16(l4[0:]))
	p.dst = netip.AddrPortFrom(d, binary.BigEndian.Uint16(l4[2:]))
	p.payload = append([]byte(nil), l4[8:ulen]...)
	return p, true
}

// udpChecksumOK verifies the UDP checksum of a parsed packet's bytes.
func udpChecksumOK(pkt []byte) bool {
	var s, d, l4 []byte
	if pkt[0]>>4 == 4 {
		hl := int(pkt[0]&0xf) * 4
		s, d, l4 = pkt[12:16], pkt[16:20], pkt[hl:]
	} else {
		s, d, l4 = pkt[8:24], pkt[24:40], pkt[40:]
	}
	l4 = l4[:binary.BigEndian.Uint16(l4[4:])]
	sum := checksumAdd(0, s)
	sum = checksumAdd(sum, d)
	sum += 17 + uint32(len(l4))
	sum = checksumAdd(sum, l4)
	return checksumFold(sum) == 0
}
