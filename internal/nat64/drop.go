package nat64

// DropReason names why a packet is not translated, at whichever step
// decided it: parsing, the state table or the translation itself.
// Translated (zero) means it was. Every other value is a drop counter, and
// every dropped packet increments exactly one of them.
type DropReason uint8

// Drop reasons. Where the translator answered the sender with an ICMP error
// (Time Exceeded, Packet Too Big, ...), the reason says so.
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
	ReassemblyTimeout                    // fragment of an ICMP datagram not complete within the fragment timeout
	ReassemblyOverlap                    // fragment held (ICMP, or TCP/UDP before its first) with overlapping or inconsistent fragments (RFC 5722)
	ReassemblyTooMany                    // fragment to hold with no room: too many datagrams, bytes or pieces in flight
	ReassemblyTooBig                     // fragment of an ICMP datagram larger than an IPv4 packet can carry
	FragmentNoState                      // later fragment whose first fragment did not come within the fragment timeout
	FragmentedZeroChecksumUDP            // IPv4 UDP fragment with checksum 0: cannot compute one
	ZeroChecksumUDP                      // IPv4 UDP with checksum 0, dropped by configuration
	UDP6ZeroChecksum                     // IPv6 UDP with checksum 0 (forbidden by RFC 8200)
	BadICMPChecksum                      // ICMP error with a wrong checksum (it would be recomputed)
	MalformedInner                       // ICMP error whose quoted packet does not parse
	NoBinding                            // state: no BIB entry for an inbound packet; ICMPv4 Destination Unreachable sent (not for TCP non-SYN)
	Filtered                             // state: address-dependent filtering refused it
	Pool4Exhausted                       // state: no free pool4 port; ICMPv6 Address Unreachable sent
	SessionLimit                         // state: per-source session limit
	TableFull                            // state: session table full
	SYNHeld                              // state: IPv4 SYN held for simultaneous open
	HeldSYNFull                          // state: IPv4 SYN to hold, but the store is full
	NotSYN                               // state: TCP without a session that does not open one
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
	ReassemblyTimeout:         "reassembly_timeout",
	ReassemblyOverlap:         "reassembly_overlap",
	ReassemblyTooMany:         "reassembly_too_many",
	ReassemblyTooBig:          "reassembly_too_big",
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
