package packet

import (
	"encoding/binary"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Reason says why Parse rejected a packet; OK (zero) means it did not.
type Reason uint8

// Parse verdicts.
const (
	OK                Reason = iota
	TooShort                 // shorter than the fixed IP header
	BadVersion               // version nibble is neither 4 nor 6 (or not the one asked for)
	BadHeaderLen             // IPv4 IHL < 5 or beyond the data
	BadTotalLen              // IPv4 total length / IPv6 payload length disagrees with the data
	BadHeaderChecksum        // IPv4 header checksum wrong
	BadExtHeader             // IPv6 extension header chain truncated or out of order
	TooManyExtHeaders        // more extension headers than maxExtHeaders
	BadFragment              // fragment fields impossible (e.g. offset+length > 65535)
	L4TooShort               // first fragment or whole packet too short for its L4 header
	BadTCPHeader             // TCP data offset < 20 or beyond the data
	BadUDPLength             // UDP length disagrees with the IP payload
	Jumbogram                // IPv6 payload length 0 (RFC 2675): not translatable
	numReasons
)

var reasonNames = [numReasons]string{
	OK:                "ok",
	TooShort:          "too_short",
	BadVersion:        "bad_version",
	BadHeaderLen:      "bad_header_len",
	BadTotalLen:       "bad_total_len",
	BadHeaderChecksum: "bad_header_checksum",
	BadExtHeader:      "bad_ext_header",
	TooManyExtHeaders: "too_many_ext_headers",
	BadFragment:       "bad_fragment",
	L4TooShort:        "l4_too_short",
	BadTCPHeader:      "bad_tcp_header",
	BadUDPLength:      "bad_udp_length",
	Jumbogram:         "jumbogram",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// maxExtHeaders bounds the IPv6 extension header walk, so a chain of tiny
// headers costs a bounded amount of work.
const maxExtHeaders = 8

// Info is what Parse learned about a packet, so later steps never re-walk
// headers. Offsets are from the start of the packet.
type Info struct {
	Version uint8
	Proto   nat64.Proto // upper-layer protocol: IPv4 protocol, or the last IPv6 next header
	L4Off   int         // start of the upper-layer header (after IPv6 extension headers)
	Len     int         // packet length as its IP header says (never beyond the data)

	// Fragment fields. For IPv6, FragHdrOff is the Fragment header's offset
	// (0 when there is none; an atomic fragment has one with Fragmented false).
	FragHdrOff int
	Fragmented bool   // MF set or offset non-zero
	FragOffset int    // bytes
	MoreFrags  bool   // MF / M
	FragID     uint32 // IPv4 identification or IPv6 fragment identification
	DF         bool   // IPv4 only

	// SegLeftOff is the offset of the Segments Left field of an IPv6 Routing
	// header whose Segments Left is not zero (RFC 7915 §5.1 answers such
	// packets with Parameter Problem), or 0.
	SegLeftOff int

	// Truncated is set by ParseInner when the data ends before the length
	// the header claims (an ICMP error's quoted packet).
	Truncated bool
}

// HasL4Header reports whether the packet carries the upper-layer header:
// unfragmented, or the first fragment.
func (in *Info) HasL4Header() bool { return in.FragOffset == 0 }

// L4Len is the number of upper-layer bytes (header and data) present.
func (in *Info) L4Len() int { return in.Len - in.L4Off }

// Parse validates the IPv4 or IPv6 packet b once and fills in. It never
// panics; on any verdict other than OK, in is partly filled and must not be
// used. Bytes after the length the IP header gives are ignored (link
// padding).
func Parse(b []byte, in *Info) Reason {
	if len(b) < 1 {
		return TooShort
	}
	switch b[0] >> 4 {
	case 4:
		return parse4(b, in, false)
	case 6:
		return parse6(b, in, false)
	}
	return BadVersion
}

// ParseIPv4 is Parse for a packet that must be IPv4.
func ParseIPv4(b []byte, in *Info) Reason {
	if len(b) >= 1 && b[0]>>4 != 4 {
		return BadVersion
	}
	return parse4(b, in, false)
}

// ParseIPv6 is Parse for a packet that must be IPv6.
func ParseIPv6(b []byte, in *Info) Reason {
	if len(b) >= 1 && b[0]>>4 != 6 {
		return BadVersion
	}
	return parse6(b, in, false)
}

// ParseInner parses the packet quoted inside an ICMP error: it may be
// truncated, the IPv4 header checksum is not checked, and of the upper-layer
// header only the first 8 bytes (ports, or ICMP type/code/id) are required.
func ParseInner(b []byte, version uint8, in *Info) Reason {
	if len(b) < 1 || b[0]>>4 != version {
		return BadVersion
	}
	if version == 4 {
		return parse4(b, in, true)
	}
	return parse6(b, in, true)
}

func parse4(b []byte, in *Info, inner bool) Reason {
	*in = Info{Version: 4}
	if len(b) < IPv4MinHeader {
		return TooShort
	}
	h := IPv4(b)
	hl := h.HeaderLen()
	if hl < IPv4MinHeader || hl > len(b) {
		return BadHeaderLen
	}
	tl := int(h.TotalLen())
	if tl < hl {
		return BadTotalLen
	}
	if tl > len(b) {
		if !inner {
			return BadTotalLen
		}
		in.Truncated = true
		tl = len(b)
	}
	if !inner && !h.HeaderChecksumOK() {
		return BadHeaderChecksum
	}
	in.Proto = h.Protocol()
	in.L4Off = hl
	in.Len = tl
	in.FragOffset = h.FragOffset()
	in.MoreFrags = h.MF()
	in.Fragmented = in.MoreFrags || in.FragOffset != 0
	in.FragID = uint32(h.ID())
	in.DF = h.DF()
	if in.FragOffset+int(h.TotalLen())-hl > IPv4MaxTotLen {
		return BadFragment
	}
	return checkL4(b, in, inner)
}

func parse6(b []byte, in *Info, inner bool) Reason {
	*in = Info{Version: 6}
	if len(b) < IPv6HeaderLen {
		return TooShort
	}
	pl := int(binary.BigEndian.Uint16(b[4:]))
	if pl == 0 && nat64.Proto(b[6]) == nat64.ProtoHopByHop {
		return Jumbogram
	}
	end := IPv6HeaderLen + pl
	if end > len(b) {
		if !inner {
			return BadTotalLen
		}
		in.Truncated = true
		end = len(b)
	}
	in.Len = end
	next := nat64.Proto(b[6])
	off := IPv6HeaderLen
walk:
	for n := 0; ; n++ {
		if n > maxExtHeaders {
			return TooManyExtHeaders
		}
		switch next {
		case nat64.ProtoHopByHop, nat64.ProtoRouting, nat64.ProtoDestOpts:
			if next == nat64.ProtoHopByHop && n != 0 {
				return BadExtHeader // RFC 8200 §4.1: only right after the IPv6 header
			}
			if off+8 > end {
				return BadExtHeader
			}
			l := (int(b[off+1]) + 1) * 8
			if off+l > end {
				return BadExtHeader
			}
			if next == nat64.ProtoRouting && b[off+3] != 0 && in.SegLeftOff == 0 {
				in.SegLeftOff = off + 3
			}
			next = nat64.Proto(b[off])
			off += l
			continue
		case nat64.ProtoFragment:
			if in.FragHdrOff != 0 {
				return BadExtHeader
			}
			if off+FragmentLen > end {
				return BadExtHeader
			}
			f := IPv6Fragment(b[off:])
			in.FragHdrOff = off
			in.FragOffset = f.Offset()
			in.MoreFrags = f.More()
			in.Fragmented = in.MoreFrags || in.FragOffset != 0
			in.FragID = f.ID()
			next = f.NextHeader()
			off += FragmentLen
			if in.FragOffset != 0 {
				// What follows a non-first fragment's header is payload.
				in.Proto = next
				in.L4Off = off
				if in.FragOffset+end-off > IPv4MaxTotLen {
					return BadFragment
				}
				return OK
			}
			continue
		}
		break walk
	}
	in.Proto = next
	in.L4Off = off
	return checkL4(b, in, inner)
}

// checkL4 makes sure the upper-layer header Parse reports is really there.
func checkL4(b []byte, in *Info, inner bool) Reason {
	if !in.HasL4Header() {
		return OK
	}
	l4 := in.Len - in.L4Off
	switch in.Proto {
	case nat64.ProtoTCP:
		if inner {
			if l4 < 8 {
				return L4TooShort
			}
			return OK
		}
		if l4 < TCPMinHeader {
			return L4TooShort
		}
		do := TCP(b[in.L4Off:]).DataOffset()
		if do < TCPMinHeader || do > l4 {
			return BadTCPHeader
		}
	case nat64.ProtoUDP:
		if l4 < UDPHeaderLen {
			return L4TooShort
		}
		if !inner && !in.Fragmented {
			if ul := int(UDP(b[in.L4Off:]).Length()); ul != l4 {
				// A UDP length of 0 is only meaningful for IPv6 jumbograms.
				return BadUDPLength
			}
		}
	case nat64.ProtoICMPv4, nat64.ProtoICMPv6:
		if l4 < ICMPHeaderLen {
			return L4TooShort
		}
	}
	return OK
}
