// Package packet holds zero-copy header views over []byte for the headers the
// NAT64 translator reads and rewrites (IPv4, IPv6, the IPv6 Fragment header,
// TCP, UDP, ICMPv4, ICMPv6), a one-pass validating Parse, and Internet
// checksum arithmetic (full sums and RFC 1624 incremental updates).
//
// A view is just the byte slice starting at its header. Accessors do not
// check lengths: callers run Parse first, which guarantees that every header
// it reports lies inside the slice.
package packet

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
