package state

// RFC 6146 behaviour of the table, one test per rule: mappings, timeouts,
// held SYNs, filtering, pool4 and limits, static entries, port allocation,
// reconfiguration. It is long because each rule needs its own scenario;
// the fixtures are in helpers_test.go.

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

const (
	hostA  = "2001:db8:1::a"
	hostB  = "2001:db8:1::b"
	server = "198.51.100.7"
	other  = "198.51.100.8"
)

func TestUDPRoundTripAndEndpointIndependentMapping(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	now := 10 * sec
	f := flow6(udp, hostA, 40000, server, 53)
	t4, p4 := mustOut(t, tab, f, 0, now)
	if t4 != a4("203.0.113.1") {
		t.Fatalf("mapped to %v", t4)
	}
	// Another destination from the same X:x reuses the mapping (RFC 6146
	// endpoint-independent mapping).
	t4b, p4b := mustOut(t, tab, flow6(udp, hostA, 40000, other, 123), 0, now)
	if t4b != t4 || p4b != p4 {
		t.Fatalf("second destination got %v:%d, first %v:%d", t4b, p4b, t4, p4)
	}
	d6, dp, r := tab.Inbound(reply4(f, t4, p4), 0, nil, now)
	if r != nat64.Translated || d6 != f.Src || dp != f.SrcPort {
		t.Fatalf("reply: %x %d %v", d6, dp, r)
	}
	if a, p, ok := tab.LookupOutbound(f); !ok || a != t4 || p != p4 {
		t.Fatalf("LookupOutbound: %v %d %v", a, p, ok)
	}
	if a, p, ok := tab.LookupInbound(reply4(f, t4, p4)); !ok || a != f.Src || p != f.SrcPort {
		t.Fatalf("LookupInbound: %v %d %v", a, p, ok)
	}
	st := tab.Stats()
	if st.UDP.Sessions != 2 || st.UDP.BIB != 1 || st.UDP.PortsInUse != 1 || st.Sessions != 2 || st.Sources != 1 {
		t.Fatalf("stats %+v", st)
	}
	mustCheck(t, tab)
}

func TestICMPIdentifiers(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	f := &Flow6{Proto: icmp, Src: a6(hostA), SrcPort: 7, Dst: a4(server), DstPort: 7}
	t4, id4 := mustOut(t, tab, f, 0, 0)
	// The reply carries the IPv4-side identifier in both port fields.
	d6, id6, r := tab.Inbound(&Flow4{Proto: icmp, Src: a4(server), SrcPort: id4, Dst: t4, DstPort: id4}, 0, nil, sec)
	if r != nat64.Translated || d6 != f.Src || id6 != 7 {
		t.Fatalf("echo reply: %x %d %v", d6, id6, r)
	}
	// The same identifier from another host gets a different IPv4 one.
	g := &Flow6{Proto: icmp, Src: a6(hostB), SrcPort: 7, Dst: a4(server), DstPort: 7}
	if _, id, _ := tab.Outbound(g, 0, sec); id == id4 {
		t.Fatalf("two hosts share identifier %d", id)
	}
	mustCheck(t, tab)
}

// TestTimeouts checks each lifetime with a fake clock: alive just before,
// gone just after; and that traffic refreshes it.
func TestTimeouts(t *testing.T) {
	in := testInstance(func(in *Config) {
		in.Timeouts = nat64.Timeouts{UDP: 3 * time.Minute, ICMP: 70 * time.Second,
			TCPEstablished: 3 * time.Hour, TCPTransitory: 5 * time.Minute}
		in.EndpointIndependentFiltering = true
	})
	cases := []struct {
		name  string
		setup func(tab *Table, f *Flow6, now int64)
		proto nat64.Transport
		life  time.Duration
	}{
		{"udp", func(tab *Table, f *Flow6, now int64) { mustOut(t, tab, f, 0, now) }, udp, 3 * time.Minute},
		{"icmp", func(tab *Table, f *Flow6, now int64) { mustOut(t, tab, f, 0, now) }, icmp, 70 * time.Second},
		{"tcp v6 init", func(tab *Table, f *Flow6, now int64) { mustOut(t, tab, f, nat64.TCPSyn, now) }, tcp, 5 * time.Minute},
		{"tcp established", func(tab *Table, f *Flow6, now int64) {
			a, p := mustOut(t, tab, f, nat64.TCPSyn, now)
			tab.Inbound(reply4(f, a, p), nat64.TCPSyn|nat64.TCPAck, nil, now)
		}, tcp, 3 * time.Hour},
		{"tcp trans", func(tab *Table, f *Flow6, now int64) {
			a, p := mustOut(t, tab, f, nat64.TCPSyn, now)
			tab.Inbound(reply4(f, a, p), nat64.TCPSyn|nat64.TCPAck, nil, now)
			tab.Inbound(reply4(f, a, p), nat64.TCPRst, nil, now)
		}, tcp, 5 * time.Minute},
		{"tcp v4 init (incoming SYN)", func(tab *Table, f *Flow6, now int64) {
			a, p := mustOut(t, tab, &Flow6{Proto: tcp, Src: f.Src, SrcPort: f.SrcPort, Dst: a4(other), DstPort: 1}, nat64.TCPSyn, now-sec)
			// Endpoint-independent filtering lets a SYN from a new
			// remote open a session on the existing BIB entry.
			if _, _, r := tab.Inbound(reply4(f, a, p), nat64.TCPSyn, nil, now); r != nat64.Translated {
				t.Fatalf("incoming SYN: %v", r)
			}
			tab.Expire(now, nil) // drop nothing, but make sure the other session is not the one seen
		}, tcp, 6 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, refreshed := range []bool{false, true} {
				tab := newTestTable(t, in, Options{})
				f := flow6(c.proto, hostA, 5000, server, 80)
				if c.proto == icmp {
					f.DstPort = f.SrcPort
				}
				start := 1000 * sec
				c.setup(tab, f, start)
				life := int64(c.life)
				if refreshed && c.name != "tcp trans" && c.name != "tcp v6 init" && c.name != "tcp v4 init (incoming SYN)" {
					// A packet half-way restarts the lifetime.
					tab.Expire(start+life/2, nil)
					mustOut(t, tab, f, nat64.TCPAck, start+life/2)
					start += life / 2
				}
				for now := start; now < start+life-sec; now += 7 * sec {
					tab.Expire(now, nil)
				}
				tab.Expire(start+life-sec, nil)
				if _, _, ok := tab.LookupOutbound(f); !ok {
					t.Fatalf("refreshed=%v: gone 1 s before its lifetime", refreshed)
				}
				tab.Expire(start+life+sec, nil)
				if _, _, ok := tab.LookupOutbound(f); ok {
					t.Fatalf("refreshed=%v: alive 1 s after its lifetime", refreshed)
				}
				mustCheck(t, tab)
			}
		})
	}
}

func TestExpiryRemovesBIBAndFreesPort(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	f := flow6(udp, hostA, 40000, server, 53)
	mustOut(t, tab, f, 0, 0)
	tab.Expire(6*int64(time.Minute), nil)
	st := tab.Stats()
	if st.UDP.Sessions != 0 || st.UDP.BIB != 0 || st.UDP.PortsInUse != 0 || st.Sources != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
	mustCheck(t, tab)
}

// TestClockJump: Expire not called for longer than a wheel turn.
func TestClockJump(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	for i := range 100 {
		mustOut(t, tab, flow6(udp, hostA, uint16(2000+i), server, 53), 0, 0)
	}
	mustOut(t, tab, flow6(tcp, hostA, 3000, server, 80), nat64.TCPSyn, 0)
	tab.Expire(sec, nil)
	mustOut(t, tab, flow6(udp, hostA, 9999, server, 53), 0, 5*3600*sec)
	tab.Expire(5*3600*sec+sec, nil)
	if st := tab.Stats(); st.Sessions != 1 {
		t.Fatalf("after jump: %d sessions, want 1", st.Sessions)
	}
	mustCheck(t, tab)
}

func TestHeldSYNTimesOut(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{MaxHeldSYNs: 2})
	syn := []byte("an IPv4 SYN packet")
	in := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 4444, Dst: a4("203.0.113.1"), DstPort: 5555}
	if _, _, r := tab.Inbound(in, nat64.TCPSyn, syn, 100*sec); r != nat64.SYNHeld {
		t.Fatalf("SYN without BIB: %v", r)
	}
	syn[0] = 'X' // the table must have copied it
	if _, _, r := tab.Inbound(in, nat64.TCPSyn, syn, 101*sec); r != nat64.SYNHeld {
		t.Fatalf("retransmitted SYN: %v", r)
	}
	in2 := *in
	in2.SrcPort++
	tab.Inbound(&in2, nat64.TCPSyn, syn, 102*sec)
	in3 := *in
	in3.SrcPort += 2
	if _, _, r := tab.Inbound(&in3, nat64.TCPSyn, syn, 102*sec); r != nat64.HeldSYNFull {
		t.Fatalf("third SYN with room for two: %v", r)
	}
	// Not a SYN, no BIB: nothing to hold.
	if _, _, r := tab.Inbound(&in3, nat64.TCPAck, syn, 102*sec); r != nat64.NoBinding {
		t.Fatalf("ACK without BIB: %v", r)
	}
	// A port outside pool4 can never be mapped: no point holding.
	in4 := *in
	in4.DstPort = 80
	if _, _, r := tab.Inbound(&in4, nat64.TCPSyn, syn, 102*sec); r != nat64.NoBinding {
		t.Fatalf("SYN to a port outside pool4: %v", r)
	}
	var got [][]byte
	collect := func(p []byte) { got = append(got, bytes.Clone(p)) }
	tab.Expire(105*sec, collect)
	if len(got) != 0 {
		t.Fatalf("released after 5 s: %d", len(got))
	}
	tab.Expire(106*sec, collect)
	if len(got) != 1 || string(got[0]) != "an IPv4 SYN packet" {
		t.Fatalf("after 6 s: %q", got)
	}
	tab.Expire(108*sec, collect)
	if len(got) != 2 || tab.Stats().HeldSYNs != 0 {
		t.Fatalf("second held SYN: %d released, %d held", len(got), tab.Stats().HeldSYNs)
	}
	// Room again.
	if _, _, r := tab.Inbound(&in3, nat64.TCPSyn, syn, 109*sec); r != nat64.SYNHeld {
		t.Fatalf("after release: %v", r)
	}
	mustCheck(t, tab)
}

func TestHeldSYNTruncated(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{HeldSYNBytes: 8})
	in := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 4444, Dst: a4("203.0.113.1"), DstPort: 5555}
	tab.Inbound(in, nat64.TCPSyn, []byte("0123456789abcdef"), 0)
	var got string
	tab.Expire(7*sec, func(p []byte) { got = string(p) })
	if got != "01234567" {
		t.Fatalf("held %q", got)
	}
}

// TestSimultaneousOpen: under address-dependent filtering an IPv4 SYN from
// a remote the host has not talked to is held; the host's own SYN to that
// remote releases (discards) it and the session is ESTABLISHED, with no
// ICMP error later.
func TestSimultaneousOpen(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	first := flow6(tcp, hostA, 6000, other, 443)
	a, p := mustOut(t, tab, first, nat64.TCPSyn, 0)
	in := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 7000, Dst: a, DstPort: p}
	if _, _, r := tab.Inbound(in, nat64.TCPSyn, []byte("syn"), sec); r != nat64.SYNHeld {
		t.Fatalf("ADF, unknown remote: %v", r)
	}
	out := flow6(tcp, hostA, 6000, server, 7000)
	if a2, p2, r := tab.Outbound(out, nat64.TCPSyn, 2*sec); r != nat64.Translated || a2 != a || p2 != p {
		t.Fatalf("IPv6 SYN: %v %d %v", a2, p2, r)
	}
	if e, ok := sessionOf(t, tab, out); !ok || e.State != Established {
		t.Fatalf("state %v", e.State)
	}
	if tab.Stats().HeldSYNs != 0 {
		t.Fatal("held SYN not discarded")
	}
	called := false
	tab.Expire(20*sec, func([]byte) { called = true })
	if called {
		t.Fatal("ICMP error asked for a released SYN")
	}
	mustCheck(t, tab)
}

func TestFiltering(t *testing.T) {
	for _, eif := range []bool{false, true} {
		tab := newTestTable(t, testInstance(func(in *Config) { in.EndpointIndependentFiltering = eif }), Options{})
		f := flow6(udp, hostA, 40000, server, 53)
		a, p := mustOut(t, tab, f, 0, 0)
		// Same address, other port: allowed by both (address-dependent).
		if _, _, r := tab.Inbound(&Flow4{Proto: udp, Src: a4(server), SrcPort: 5353, Dst: a, DstPort: p}, 0, nil, sec); r != nat64.Translated {
			t.Fatalf("eif=%v: same remote address, other port: %v", eif, r)
		}
		// Another address: only endpoint-independent filtering lets it in.
		_, _, r := tab.Inbound(&Flow4{Proto: udp, Src: a4(other), SrcPort: 53, Dst: a, DstPort: p}, 0, nil, sec)
		if want := map[bool]nat64.DropReason{false: nat64.Filtered, true: nat64.Translated}[eif]; r != want {
			t.Fatalf("eif=%v: other remote: %v, want %v", eif, r, want)
		}
		// TCP SYN from an unknown remote: held under ADF, passed under EIF.
		ft := flow6(tcp, hostA, 40001, server, 80)
		a, p = mustOut(t, tab, ft, nat64.TCPSyn, 0)
		_, _, r = tab.Inbound(&Flow4{Proto: tcp, Src: a4(other), SrcPort: 80, Dst: a, DstPort: p}, nat64.TCPSyn, []byte{1}, sec)
		if want := map[bool]nat64.DropReason{false: nat64.SYNHeld, true: nat64.Translated}[eif]; r != want {
			t.Fatalf("eif=%v: TCP SYN from other remote: %v, want %v", eif, r, want)
		}
		// No BIB at all.
		if _, _, r := tab.Inbound(&Flow4{Proto: udp, Src: a4(other), SrcPort: 53, Dst: a, DstPort: 9}, 0, nil, sec); r != nat64.NoBinding {
			t.Fatalf("eif=%v: no BIB: %v", eif, r)
		}
		mustCheck(t, tab)
	}
}

func TestPoolExhaustion(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.9/32", 2000, 2003)
	}), Options{})
	seen := map[uint16]bool{}
	for i := range 4 {
		a, p := mustOut(t, tab, flow6(udp, hostA, uint16(30000+i), server, 53), 0, 0)
		if a != a4("203.0.113.9") || p < 2000 || p > 2003 || seen[p] {
			t.Fatalf("flow %d mapped to %v:%d", i, a, p)
		}
		seen[p] = true
	}
	if _, _, r := tab.Outbound(flow6(udp, hostB, 30000, server, 53), 0, 0); r != nat64.Pool4Exhausted {
		t.Fatalf("fifth mapping: %v", r)
	}
	// Other protocols have their own ports.
	mustOut(t, tab, flow6(tcp, hostB, 30000, server, 80), nat64.TCPSyn, 0)
	tab.Expire(10*60*sec, nil)
	mustOut(t, tab, flow6(udp, hostB, 30000, server, 53), 0, 10*60*sec)
	mustCheck(t, tab)
}

func TestLimits(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.MaxSessions = 5
		in.MaxSessionsPerSource = 3
	}), Options{})
	for i := range 3 {
		mustOut(t, tab, flow6(udp, hostA, 1000, server, uint16(i+1)), 0, 0)
	}
	if _, _, r := tab.Outbound(flow6(udp, hostA, 1001, server, 1), 0, 0); r != nat64.SessionLimit {
		t.Fatalf("4th session of a host: %v", r)
	}
	// Existing sessions still work.
	mustOut(t, tab, flow6(udp, hostA, 1000, server, 2), 0, 0)
	mustOut(t, tab, flow6(udp, hostB, 1000, server, 1), 0, 0)
	mustOut(t, tab, flow6(udp, hostB, 1000, server, 2), 0, 0)
	if _, _, r := tab.Outbound(flow6(udp, "2001:db8:1::c", 1000, server, 1), 0, 0); r != nat64.TableFull {
		t.Fatalf("6th session: %v", r)
	}
	mustCheck(t, tab)
	st := tab.Stats()
	if st.Sessions != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLimitsInbound: sessions created from the IPv4 side on a static entry
// count against the IPv6 server's per-source limit.
func TestLimitsInbound(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.MaxSessionsPerSource = 2
		in.Static = []nat64.StaticBIB{{Proto: udp, IPv6: netip.MustParseAddrPort("[2001:db8:10::53]:53"), IPv4: netip.MustParseAddrPort("203.0.113.1:5353")}}
	}), Options{})
	q := func(port uint16) nat64.DropReason {
		_, _, r := tab.Inbound(&Flow4{Proto: udp, Src: a4(server), SrcPort: port, Dst: a4("203.0.113.1"), DstPort: 5353}, 0, nil, 0)
		return r
	}
	if q(1) != nat64.Translated || q(2) != nat64.Translated {
		t.Fatal("first two clients refused")
	}
	if r := q(3); r != nat64.SessionLimit {
		t.Fatalf("third client: %v", r)
	}
	mustCheck(t, tab)
}

// TestLookupsChangeNothing: the Lookup methods neither refresh nor create.
func TestLookupsChangeNothing(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	f := flow6(tcp, hostA, 5000, server, 80)
	a, p := mustOut(t, tab, f, nat64.TCPSyn, 0)
	before, _ := sessionOf(t, tab, f)
	for range 3 {
		tab.LookupOutbound(f)
		tab.LookupInbound(reply4(f, a, p))
	}
	if after, _ := sessionOf(t, tab, f); after != before {
		t.Fatalf("lookup changed the session: %+v -> %+v", before, after)
	}
	if _, _, ok := tab.LookupOutbound(flow6(tcp, hostB, 5000, server, 80)); ok {
		t.Fatal("lookup found a session that does not exist")
	}
	if st := tab.Stats(); st.Sessions != 1 {
		t.Fatalf("stats after lookups: %+v", st)
	}
}

func TestOwnsIPv4(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Pool4 = append(poolRanges("203.0.113.8/29", 1024, 2000), poolRanges("192.0.2.1/32", 1, 65535)...)
	}), Options{})
	for addr, want := range map[string]bool{
		"203.0.113.8": true, "203.0.113.15": true, "203.0.113.16": false, "203.0.113.7": false,
		"192.0.2.1": true, "192.0.2.2": false,
	} {
		if got := tab.OwnsIPv4(a4(addr)); got != want {
			t.Errorf("OwnsIPv4(%s) = %v", addr, got)
		}
	}
}

func TestStaticBIB(t *testing.T) {
	srv := netip.MustParseAddrPort("[2001:db8:10::80]:80")
	in := testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.9/32", 2000, 2003)
		in.Static = []nat64.StaticBIB{{Proto: tcp, IPv6: srv, IPv4: netip.MustParseAddrPort("203.0.113.9:2001")}}
	})
	tab := newTestTable(t, in, Options{})
	// IPv4-initiated connection.
	syn := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 50000, Dst: a4("203.0.113.9"), DstPort: 2001}
	d6, dp, r := tab.Inbound(syn, nat64.TCPSyn, nil, 0)
	if r != nat64.Translated || d6 != srv.Addr().As16() || dp != 80 {
		t.Fatalf("SYN to the static entry: %x %d %v", d6, dp, r)
	}
	back := &Flow6{Proto: tcp, Src: d6, SrcPort: 80, Dst: a4(server), DstPort: 50000}
	if a, p, r := tab.Outbound(back, nat64.TCPSyn|nat64.TCPAck, sec); r != nat64.Translated || p != 2001 || a != a4("203.0.113.9") {
		t.Fatalf("SYN-ACK: %v %d %v", a, p, r)
	}
	if e, _ := sessionOf(t, tab, back); e.State != Established {
		t.Fatalf("state %v", e.State)
	}
	// The other three ports go to dynamic mappings, never 2001.
	for i := range 3 {
		_, p := mustOut(t, tab, flow6(tcp, hostA, uint16(3000+i), server, 80), nat64.TCPSyn, 0)
		if p == 2001 {
			t.Fatal("dynamic mapping got the static port")
		}
	}
	if _, _, r := tab.Outbound(flow6(tcp, hostA, 2001, server, 80), nat64.TCPSyn, 0); r != nat64.Pool4Exhausted {
		t.Fatalf("fourth dynamic mapping: %v", r)
	}
	// The static entry outlives its sessions.
	tab.Expire(3*3600*sec, nil)
	st := tab.Stats()
	if st.TCP.BIB != 1 || st.TCP.StaticBIB != 1 || st.TCP.Sessions != 0 {
		t.Fatalf("after expiry: %+v", st.TCP)
	}
	if _, _, r := tab.Inbound(syn, nat64.TCPSyn, nil, 3*3600*sec); r != nat64.Translated {
		t.Fatalf("SYN after expiry: %v", r)
	}
	mustCheck(t, tab)

	// Runtime add/remove.
	u := nat64.StaticBIB{Proto: udp, IPv6: netip.MustParseAddrPort("[2001:db8:10::53]:53"), IPv4: netip.MustParseAddrPort("203.0.113.9:2002")}
	if err := tab.AddStatic(u); err != nil {
		t.Fatal(err)
	}
	clash := u
	clash.IPv6 = netip.MustParseAddrPort("[2001:db8:10::54]:53")
	if err := tab.AddStatic(clash); err == nil {
		t.Fatal("two static entries on one IPv4 port accepted")
	}
	q := &Flow4{Proto: udp, Src: a4(server), SrcPort: 999, Dst: a4("203.0.113.9"), DstPort: 2002}
	if _, _, r := tab.Inbound(q, 0, nil, 3*3600*sec); r != nat64.Translated {
		t.Fatalf("query to the added entry: %v", r)
	}
	if err := tab.RemoveStatic(nat64.StaticBIB{Proto: udp, IPv4: u.IPv4}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := tab.LookupInbound(q); ok {
		t.Fatal("session survived its static entry")
	}
	if err := tab.RemoveStatic(nat64.StaticBIB{Proto: udp, IPv4: u.IPv4}); err != ErrNoStatic {
		t.Fatalf("second remove: %v", err)
	}
	mustCheck(t, tab)
}

// TestStaticReplacesDynamic: a static entry added at run time evicts a
// dynamic mapping of its IPv4 port.
func TestStaticReplacesDynamic(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.9/32", 2000, 2000)
	}), Options{})
	f := flow6(udp, hostA, 2000, server, 53)
	mustOut(t, tab, f, 0, 0)
	if err := tab.AddStatic(nat64.StaticBIB{Proto: udp, IPv6: netip.MustParseAddrPort("[2001:db8:10::53]:53"), IPv4: netip.MustParseAddrPort("203.0.113.9:2000")}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := tab.LookupOutbound(f); ok {
		t.Fatal("dynamic session kept the static port")
	}
	mustCheck(t, tab)
}

func TestPortPreservationParityAndRange(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.1/32", 1, 65535)
	}), Options{})
	for _, x := range []uint16{40000, 40001, 80, 81} {
		if _, p := mustOut(t, tab, flow6(udp, hostA, x, server, 53), 0, 0); p != x {
			t.Fatalf("free port %d not preserved: %d", x, p)
		}
	}
	for _, x := range []uint16{40000, 40001, 80, 81} {
		_, p := mustOut(t, tab, flow6(udp, hostB, x, server, 53), 0, 0)
		if p == x || p%2 != x%2 || (x < 1024) != (p < 1024) {
			t.Fatalf("x=%d (taken) mapped to %d: want same parity and range", x, p)
		}
	}
	// A well-known source port with a pool that has none: any port.
	tab2 := newTestTable(t, testInstance(nil), Options{})
	if _, p := mustOut(t, tab2, flow6(udp, hostA, 53, server, 53), 0, 0); p < 1024 {
		t.Fatalf("port %d outside the pool range", p)
	}
	mustCheck(t, tab)
}

func TestRandomisedPortsSpread(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	// Every host uses source port 5000: all but the first are moved, and
	// the moved ones should not land on a predictable sequence.
	seq := 0
	var last uint16
	for i := range 50 {
		src := netip.AddrFrom16(a6(hostA)).Next()
		for range i {
			src = src.Next()
		}
		_, p := mustOut(t, tab, &Flow6{Proto: udp, Src: src.As16(), SrcPort: 5000, Dst: a4(server), DstPort: 53}, 0, 0)
		if p == last+2 {
			seq++
		}
		last = p
	}
	if seq > 10 {
		t.Fatalf("%d of 50 allocations were the previous port + 2", seq)
	}
}

func TestPairedPooling(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.8/29", 1024, 1087) // 8 addresses, 64 ports each
	}), Options{})
	addrsOf := func(host string, n int) map[[4]byte]int {
		m := map[[4]byte]int{}
		for i := range n {
			a, _ := mustOut(t, tab, flow6(tcp, host, uint16(1024+i), server, 80), nat64.TCPSyn, 0)
			m[a]++
		}
		return m
	}
	if m := addrsOf(hostA, 60); len(m) != 1 {
		t.Fatalf("one host spread over %d addresses: %v", len(m), m)
	}
	// Hosts are spread across the pool.
	all := map[[4]byte]bool{}
	for i := range 16 {
		src := netip.AddrFrom16(a6(hostB))
		for range i {
			src = src.Next()
		}
		a, _ := mustOut(t, tab, &Flow6{Proto: udp, Src: src.As16(), SrcPort: 9, Dst: a4(server), DstPort: 53}, 0, 0)
		all[a] = true
	}
	if len(all) < 3 {
		t.Fatalf("16 hosts on %d addresses", len(all))
	}
	// When its address is full, a host overflows to another.
	if m := addrsOf(hostA, 10); len(m) < 2 {
		t.Logf("overflow: %v", m)
	}
	mustCheck(t, tab)
}

func TestPairedOverflow(t *testing.T) {
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.8/31", 1024, 1027) // 2 addresses, 4 ports each
	}), Options{})
	m := map[[4]byte]int{}
	for i := range 8 {
		a, _ := mustOut(t, tab, flow6(udp, hostA, uint16(5000+i), server, 53), 0, 0)
		m[a]++
	}
	if len(m) != 2 || m[a4("203.0.113.8")] != 4 {
		t.Fatalf("%v", m)
	}
	if _, _, r := tab.Outbound(flow6(udp, hostA, 6000, server, 53), 0, 0); r != nat64.Pool4Exhausted {
		t.Fatal(r)
	}
	mustCheck(t, tab)
}

func TestTCPNeedsSYN(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	for _, flags := range []uint8{nat64.TCPAck, nat64.TCPFin | nat64.TCPAck, nat64.TCPRst, nat64.TCPSyn | nat64.TCPRst} {
		if _, _, r := tab.Outbound(flow6(tcp, hostA, 1234, server, 80), flags, 0); r != nat64.NotSYN {
			t.Fatalf("flags %#x without session: %v", flags, r)
		}
	}
	if _, _, r := tab.Outbound(&Flow6{Proto: 47}, 0, 0); r != nat64.UnsupportedProto {
		t.Fatal(r)
	}
	if tab.Stats().Sessions != 0 {
		t.Fatal("session created without SYN")
	}
}

func TestReconfigure(t *testing.T) {
	in := testInstance(func(in *Config) {
		in.Pool4 = []nat64.Pool4Range{
			{Prefix: netip.MustParsePrefix("203.0.113.1/32"), FirstPort: 1024, LastPort: 2047},
			{Prefix: netip.MustParsePrefix("203.0.113.2/32"), FirstPort: 1024, LastPort: 2047},
		}
		in.Static = []nat64.StaticBIB{
			{Proto: tcp, IPv6: netip.MustParseAddrPort("[2001:db8:10::80]:80"), IPv4: netip.MustParseAddrPort("203.0.113.1:1500")},
			{Proto: tcp, IPv6: netip.MustParseAddrPort("[2001:db8:10::81]:80"), IPv4: netip.MustParseAddrPort("203.0.113.1:1501")},
		}
	})
	tab := newTestTable(t, in, Options{})
	// Sessions on each address.
	var on1, on2 *Flow6
	for i := 0; on1 == nil || on2 == nil; i++ {
		if i > 200 {
			t.Fatal("no session landed on each address")
		}
		src := netip.AddrFrom16(a6(hostA))
		for range i {
			src = src.Next()
		}
		f := &Flow6{Proto: udp, Src: src.As16(), SrcPort: 1100, Dst: a4(server), DstPort: 53}
		a, _ := mustOut(t, tab, f, 0, 0)
		if a == a4("203.0.113.1") && on1 == nil {
			on1 = f
		}
		if a == a4("203.0.113.2") && on2 == nil {
			on2 = f
		}
	}
	s80 := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 4000, Dst: a4("203.0.113.1"), DstPort: 1500}
	s81 := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 4000, Dst: a4("203.0.113.1"), DstPort: 1501}
	for _, f := range []*Flow4{s80, s81} {
		if _, _, r := tab.Inbound(f, nat64.TCPSyn, nil, 0); r != nat64.Translated {
			t.Fatal(r)
		}
	}
	in2 := *in
	in2.Pool4 = in.Pool4[:1] // 203.0.113.2 leaves
	in2.Static = in.Static[:1]
	in2.Timeouts.UDP = 10 * time.Minute
	if err := tab.Reconfigure(&in2); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := tab.LookupOutbound(on1); !ok {
		t.Fatal("session on a kept address dropped")
	}
	if _, _, ok := tab.LookupOutbound(on2); ok {
		t.Fatal("session on a removed address kept")
	}
	if _, _, ok := tab.LookupInbound(s80); !ok {
		t.Fatal("session of a kept static entry dropped")
	}
	if _, _, ok := tab.LookupInbound(s81); ok {
		t.Fatal("session of a removed static entry kept")
	}
	if tab.OwnsIPv4(a4("203.0.113.2")) || !tab.OwnsIPv4(a4("203.0.113.1")) {
		t.Fatal("OwnsIPv4 after reconfigure")
	}
	// New timeout applies from the next packet.
	mustOut(t, tab, on1, 0, 60*sec)
	tab.Expire(60*sec+9*60*sec, nil)
	if _, _, ok := tab.LookupOutbound(on1); !ok {
		t.Fatal("new UDP timeout not applied")
	}
	// Shrinking the port range drops mappings outside it.
	in3 := in2
	in3.Pool4 = poolRanges("203.0.113.1/32", 1024, 1025)
	in3.Static = nil
	if err := tab.Reconfigure(&in3); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, tab)
	bad := in3
	bad.Pool4 = poolRanges("203.0.113.1/32", 3000, 2000)
	if err := tab.Reconfigure(&bad); err == nil {
		t.Fatal("empty port range accepted")
	}
	mustCheck(t, tab)
}

func TestMappingLog(t *testing.T) {
	var events []MappingEvent
	tab := newTestTable(t, testInstance(nil), Options{OnMapping: func(e *MappingEvent) { events = append(events, *e) }})
	f := flow6(udp, hostA, 40000, server, 53)
	a, p := mustOut(t, tab, f, 0, 5*sec)
	tab.Expire(10*60*sec, nil)
	want := []EventKind{BIBCreated, SessionCreated, SessionRemoved, BIBRemoved}
	if len(events) != len(want) {
		t.Fatalf("events %+v", events)
	}
	for i, e := range events {
		if e.Kind != want[i] || e.IPv6 != addrPort6(f.Src, 40000) || e.IPv4 != addrPort4(a, p) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if events[1].Remote != netip.MustParseAddrPort(server+":53") || events[1].Time != 5*sec {
		t.Fatalf("session event %+v", events[1])
	}
	tab.SetMappingLog(nil)
	mustOut(t, tab, f, 0, 11*60*sec)
	if len(events) != 4 {
		t.Fatal("event after SetMappingLog(nil)")
	}
}

func TestWalk(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	for i := range 3000 {
		mustOut(t, tab, flow6(udp, hostA, uint16(10000+i%1500), server, uint16(1+i/1500)), 0, 0)
	}
	mustOut(t, tab, flow6(tcp, hostA, 1, server, 80), nat64.TCPSyn, 0)
	if got := len(tab.AppendSessions(nil, udp)); got != 3000 {
		t.Fatalf("%d UDP sessions listed", got)
	}
	all := tab.AppendSessions(nil, 0)
	if len(all) != 3001 {
		t.Fatalf("%d sessions listed", len(all))
	}
	for _, e := range all {
		if e.Proto == tcp {
			if e.State != V6Init || e.Dst6 != netip.MustParseAddrPort("[64:ff9b:1::c633:6407]:80") {
				t.Fatalf("%+v", e)
			}
		}
	}
	if got := len(tab.AppendBIB(nil, udp)); got != 1500 {
		t.Fatalf("%d UDP BIB entries", got)
	}
	n := 0
	tab.WalkSessions(0, func(*SessionEntry) bool { n++; return n < 10 })
	if n != 10 {
		t.Fatalf("walk did not stop: %d", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	bad := []func(*Config){
		func(in *Config) { in.Pool4 = poolRanges("2001:db8::/64", 1, 2) },
		func(in *Config) { in.MaxSessions = MaxCapacity + 1 },
		func(in *Config) {
			in.Static = []nat64.StaticBIB{
				{Proto: tcp, IPv6: netip.MustParseAddrPort("[2001:db8::1]:80"), IPv4: netip.MustParseAddrPort("203.0.113.1:80")},
				{Proto: tcp, IPv6: netip.MustParseAddrPort("[2001:db8::2]:80"), IPv4: netip.MustParseAddrPort("203.0.113.1:80")},
			}
		},
	}
	for i, mod := range bad {
		if _, err := New(testInstance(mod), Options{}); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

// TestHeldSYNSupersededByReconfigure: a SYN held under address-dependent
// filtering whose retransmission opens a session after a switch to
// endpoint-independent filtering gets no ICMP error.
func TestHeldSYNSupersededByReconfigure(t *testing.T) {
	in := testInstance(nil)
	tab := newTestTable(t, in, Options{})
	a, p := mustOut(t, tab, flow6(tcp, hostA, 6000, other, 443), nat64.TCPSyn, 0)
	syn := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 7000, Dst: a, DstPort: p}
	if _, _, r := tab.Inbound(syn, nat64.TCPSyn, []byte("syn"), sec); r != nat64.SYNHeld {
		t.Fatal(r)
	}
	eif := *in
	eif.EndpointIndependentFiltering = true
	if err := tab.Reconfigure(&eif); err != nil {
		t.Fatal(err)
	}
	if _, _, r := tab.Inbound(syn, nat64.TCPSyn, []byte("syn"), 2*sec); r != nat64.Translated {
		t.Fatalf("retransmitted SYN under EIF: %v", r)
	}
	called := false
	tab.Expire(10*sec, func([]byte) { called = true })
	if called || tab.Stats().HeldSYNs != 0 {
		t.Fatal("superseded SYN still held")
	}
}

// TestEntrySizes pins the memory per entry the README promises.
func TestEntrySizes(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n != 64 {
		t.Errorf("session is %d bytes, want 64", n)
	}
	if n := unsafe.Sizeof(bibEntry{}); n > 40 {
		t.Errorf("BIB entry is %d bytes", n)
	}
	if n := unsafe.Sizeof(shard{}); n%64 != 0 {
		t.Errorf("shard is %d bytes, not a multiple of a cache line", n)
	}
}

// TestHairpin: an IPv6 host reaching another IPv6 host through the other's
// pool4 address (RFC 6146 §3.8). The pipeline sees OwnsIPv4(destination)
// and feeds the translated packet back in as IPv4-side input; the table
// must map both legs.
func TestHairpin(t *testing.T) {
	srv := netip.MustParseAddrPort("[2001:db8:10::80]:80")
	tab := newTestTable(t, testInstance(func(in *Config) {
		in.Static = []nat64.StaticBIB{{Proto: tcp, IPv6: srv, IPv4: netip.MustParseAddrPort("203.0.113.1:8080")}}
	}), Options{})
	out := &Flow6{Proto: tcp, Src: a6(hostA), SrcPort: 40000, Dst: a4("203.0.113.1"), DstPort: 8080}
	if !tab.OwnsIPv4(out.Dst) {
		t.Fatal("pool4 address not owned")
	}
	t1, p1 := mustOut(t, tab, out, nat64.TCPSyn, 0)
	d6, dp, r := tab.Inbound(&Flow4{Proto: tcp, Src: t1, SrcPort: p1, Dst: out.Dst, DstPort: out.DstPort}, nat64.TCPSyn, nil, 0)
	if r != nat64.Translated || d6 != srv.Addr().As16() || dp != 80 {
		t.Fatalf("hairpin inbound: %x %d %v", d6, dp, r)
	}
	// The server's answer goes the same way back.
	back := &Flow6{Proto: tcp, Src: d6, SrcPort: 80, Dst: t1, DstPort: p1}
	a, p := mustOut(t, tab, back, nat64.TCPSyn|nat64.TCPAck, 0)
	if a != out.Dst || p != out.DstPort {
		t.Fatalf("server answered from %v:%d", a, p)
	}
	d6, dp, r = tab.Inbound(&Flow4{Proto: tcp, Src: a, SrcPort: p, Dst: t1, DstPort: p1}, nat64.TCPSyn|nat64.TCPAck, nil, 0)
	if r != nat64.Translated || d6 != out.Src || dp != out.SrcPort {
		t.Fatalf("answer to the client: %x %d %v", d6, dp, r)
	}
	mustCheck(t, tab)
}
