// Package control is nat64ctl's HTTP control plane: /healthz (what the
// dns64 plugin polls), /metrics (Prometheus), and a small JSON API over the
// session table, the BIB and the counters, with the typed client the CLI
// uses. Reads are GETs; nothing changes state without a POST or DELETE.
package control

import (
	"net/netip"
	"time"
)

// Paths of the API, version 1.
const (
	PathHealthz  = "/healthz"
	PathMetrics  = "/metrics"
	PathSessions = "/api/v1/sessions" // GET ?proto=tcp|udp|icmp
	PathBIB      = "/api/v1/bib"      // GET ?proto=...
	PathStatic   = "/api/v1/bib/static"
	PathStats    = "/api/v1/stats"
	PathReload   = "/api/v1/reload" // POST
)

// Session is one RFC 6146 session: the flow as seen on both sides.
type Session struct {
	Proto     string         `json:"proto"`
	IPv6Src   netip.AddrPort `json:"ipv6_src"` // the IPv6 host X:x
	IPv6Dst   netip.AddrPort `json:"ipv6_dst"` // the synthesized address Y':y
	IPv4Src   netip.AddrPort `json:"ipv4_src"` // the pool4 transport address T:t
	IPv4Dst   netip.AddrPort `json:"ipv4_dst"` // the IPv4 server Z:z
	State     string         `json:"state,omitempty"`
	ExpiresIn Seconds        `json:"expires_in"`
}

// BIBEntry is one binding of an IPv6 transport address to a pool4 one.
type BIBEntry struct {
	Proto    string         `json:"proto"`
	IPv6     netip.AddrPort `json:"ipv6"`
	IPv4     netip.AddrPort `json:"ipv4"`
	Static   bool           `json:"static"`
	Sessions int            `json:"sessions"`
}

// StaticEntry is the body of POST and DELETE on PathStatic.
type StaticEntry struct {
	Proto string         `json:"proto"`
	IPv6  netip.AddrPort `json:"ipv6"`
	IPv4  netip.AddrPort `json:"ipv4"`
}

// Stats is the translator's counters at one moment.
type Stats struct {
	Instance string  `json:"instance"`
	Healthy  bool    `json:"healthy"`
	Uptime   Seconds `json:"uptime"`

	// Traffic by "6to4/tcp", "4to6/udp", ... .
	Packets map[string]uint64 `json:"packets"`
	Bytes   map[string]uint64 `json:"bytes"`
	// Drops by reason; every drop is counted under exactly one.
	Drops map[string]uint64 `json:"drops"`
	// ICMPErrors counts the ICMP errors the translator originated itself
	// (Time Exceeded, Packet Too Big, Fragmentation Needed, Parameter
	// Problem, Address and Port Unreachable); Hairpinned the IPv6 packets
	// sent straight back to the IPv6 side (RFC 6146 §3.8).
	ICMPErrors uint64 `json:"icmp_errors_sent"`
	// ICMPErrorsSuppressed counts the errors of that kind the rate limit
	// (icmp_error_rate, icmp_error_burst) refused to send.
	ICMPErrorsSuppressed uint64 `json:"icmp_errors_suppressed"`
	Hairpinned           uint64 `json:"hairpinned"`
	// FragmentsHeld counts the ICMP fragments taken into reassembly (the
	// checksum covers the whole datagram); Reassembled the datagrams
	// completed from them. What was not completed is under the
	// reassembly_* drops.
	FragmentsHeld uint64 `json:"fragments_held"`
	Reassembled   uint64 `json:"reassembled"`

	Sessions        map[string]int `json:"sessions"` // by protocol
	BIBEntries      map[string]int `json:"bib_entries"`
	Pool4PortsInUse int            `json:"pool4_ports_in_use"`
	Pool4Ports      int            `json:"pool4_ports"`

	// FastPath is the kernel fast path's part of the traffic above.
	FastPath *FastPathStats `json:"fastpath,omitempty"`

	// TUNBatches counts the batches read from the TUN device by size:
	// BatchBounds[i] is the largest size counted in TUNBatches[i].
	BatchBounds []int    `json:"tun_batch_bounds,omitempty"`
	TUNBatches  []uint64 `json:"tun_batches,omitempty"`
}

// FastPathStats is what the kernel fast path carried. Its packets and
// bytes are part of Stats.Packets and Stats.Bytes, which count every
// translated packet whichever path took it.
type FastPathStats struct {
	Mode   string `json:"mode"`             // the fastpath setting: auto, on, off
	Active bool   `json:"active"`           // the program is attached
	Reason string `json:"reason,omitempty"` // why it is not, when it is not
	// Sessions the maps hold (the kernel may carry their packets), and
	// sessions the maps refused, full, which stay on the slow path.
	Sessions     int    `json:"sessions"`
	InsertErrors uint64 `json:"insert_errors"`
	// By "6to4/tcp", ... as Stats.Packets.
	Packets map[string]uint64 `json:"packets,omitempty"`
	Bytes   map[string]uint64 `json:"bytes,omitempty"`
	// Passed counts the packets the program left to the user-space
	// translator, by reason.
	Passed map[string]uint64 `json:"passed,omitempty"`
	// Dropped counts packets lost because a rewrite failed half way.
	Dropped uint64 `json:"dropped"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Seconds is a duration that travels as a number of seconds.
type Seconds float64

// Duration converts s back.
func (s Seconds) Duration() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// SecondsOf converts d.
func SecondsOf(d time.Duration) Seconds { return Seconds(d.Seconds()) }
