package xlat

import "github.com/nat64kit/nat64kit/internal/nat64"

// DropReason names why Process did not translate a packet. Translated (zero)
// means it did. Every other value is a counter in Counters.Drops, and every
// dropped packet increments exactly one of them.
type DropReason uint8

// Drop reasons. Where the translator answered the sender with an ICMP error
// (Time Exceeded, Packet Too Big, ...), the reason says so and the error is
// in the Output.
const (
	Translated                DropReason = iota
	MalformedIPv4                        // IPv4 header or L4 header invalid (packet.Parse)
	MalformedIPv6                        // IPv6 header, extension chain or L4 header invalid
	UnknownVersion                       // neither IPv4 nor IPv6
	NotPool6                             // IPv6 destination outside our prefix
	NotPool4                             // IPv4 destination not one of our pool4 addresses
	SrcNotEmbeddable                     // RFC 6052 §3.1: non-global IPv4 into the Well-Known Prefix
	TTLExpired                           // hop limit/TTL would reach 0; Time Exceeded sent
	SegmentsLeft                         // Routing header with Segments Left != 0; Parameter Problem sent
	UnsupportedProto                     // not TCP, UDP or ICMP
	UntranslatableICMP                   // ICMP type/code with no mapping (ND, MLD, ...), or its quoted packet unusable
	ICMPErrorInError                     // ICMP error quoting an ICMP error
	FragmentedICMP                       // ICMP needs reassembly to translate its checksum
	FragmentNoState                      // later fragment whose first fragment was not seen
	FragmentedZeroChecksumUDP            // IPv4 UDP fragment with checksum 0: cannot compute one
	ZeroChecksumUDP                      // IPv4 UDP with checksum 0, dropped by configuration
	UDP6ZeroChecksum                     // IPv6 UDP with checksum 0 (forbidden by RFC 8200)
	BadICMPChecksum                      // ICMP error with a wrong checksum (it would be recomputed)
	MalformedInner                       // ICMP error whose quoted packet does not parse
	NoBinding                            // state: no BIB entry for an inbound packet
	Filtered                             // state: address-dependent filtering refused it
	Pool4Exhausted                       // state: no free pool4 port; ICMPv6 Address Unreachable sent
	SessionLimit                         // state: per-source session limit
	TableFull                            // state: session table full
	SYNHeld                              // state: IPv4 SYN held for simultaneous open
	HeldSYNFull                          // state: IPv4 SYN to hold, but the store is full
	NotSYN                               // state: TCP without a session that does not open one
	StateError                           // state: any other refusal
	FragNeededSent                       // IPv4 DF packet too big; Fragmentation Needed sent
	PacketTooBigSent                     // IPv6 packet too big for the IPv4 side; Packet Too Big sent
	NoHeadroom                           // caller gave less headroom than the IPv6 header needs
	OutputFull                           // the Output had no room for the packets
	TUNReadError                         // a read from the TUN failed: a super-packet the batch cannot hold, or one malformed
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	Translated:                "translated",
	MalformedIPv4:             "malformed_ipv4",
	MalformedIPv6:             "malformed_ipv6",
	UnknownVersion:            "unknown_version",
	NotPool6:                  "not_pool6",
	NotPool4:                  "not_pool4",
	SrcNotEmbeddable:          "src_not_embeddable",
	TTLExpired:                "ttl_expired",
	SegmentsLeft:              "segments_left",
	UnsupportedProto:          "unsupported_proto",
	UntranslatableICMP:        "untranslatable_icmp",
	ICMPErrorInError:          "icmp_error_in_error",
	FragmentedICMP:            "fragmented_icmp",
	FragmentNoState:           "fragment_no_state",
	FragmentedZeroChecksumUDP: "fragmented_zero_checksum_udp",
	ZeroChecksumUDP:           "zero_checksum_udp",
	UDP6ZeroChecksum:          "udp6_zero_checksum",
	BadICMPChecksum:           "bad_icmp_checksum",
	MalformedInner:            "malformed_inner",
	NoBinding:                 "no_binding",
	Filtered:                  "filtered",
	Pool4Exhausted:            "pool4_exhausted",
	SessionLimit:              "session_limit",
	TableFull:                 "table_full",
	SYNHeld:                   "syn_held",
	HeldSYNFull:               "held_syn_full",
	NotSYN:                    "not_syn",
	StateError:                "state_error",
	FragNeededSent:            "frag_needed_sent",
	PacketTooBigSent:          "packet_too_big_sent",
	NoHeadroom:                "no_headroom",
	OutputFull:                "output_full",
	TUNReadError:              "tun_read_error",
}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Direction of translation, an index into Counters.
type Direction uint8

const (
	SixToFour Direction = iota // IPv6 -> IPv4 (outbound)
	FourToSix                  // IPv4 -> IPv6 (inbound)
	NumDirections
)

func (d Direction) String() string {
	if d == SixToFour {
		return "6to4"
	}
	return "4to6"
}

// Counters are one Translator's statistics: plain integers written only by
// its worker goroutine. The daemon sums them across workers (reading them
// from another goroutine is a benign race on monotonic counters; copy them
// under the worker's own synchronization if exact values matter).
type Counters struct {
	Drops   [NumDropReasons]uint64
	Packets [NumDirections][nat64.NumTransports]uint64 // by Transport.Index; translated packets (each emitted fragment counts)
	Bytes   [NumDirections][nat64.NumTransports]uint64 // translated bytes as emitted
	// ICMPErrors counts ICMP errors the translator generated itself (Time
	// Exceeded, Packet Too Big, Fragmentation Needed, Parameter Problem,
	// Port Unreachable for held SYNs).
	ICMPErrors uint64
	Hairpinned uint64
}

// Add adds o into c (for the daemon's aggregation).
func (c *Counters) Add(o *Counters) {
	for i := range c.Drops {
		c.Drops[i] += o.Drops[i]
	}
	for d := range c.Packets {
		for p := range c.Packets[d] {
			c.Packets[d][p] += o.Packets[d][p]
			c.Bytes[d][p] += o.Bytes[d][p]
		}
	}
	c.ICMPErrors += o.ICMPErrors
	c.Hairpinned += o.Hairpinned
}
