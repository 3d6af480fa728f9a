package state

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// FuzzOperations drives a small table (a tiny pool4, low limits) with a
// random sequence of packets, expiry, static entry changes and
// reconfigurations, checking after every step that the invariants hold
// (every session's BIB entry exists and matches, pool4 ports are unique
// per protocol and address, all counts agree) and that a session just
// used outbound maps its reply back to the host.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0, 0, 0, 0, 8, 0, 16, 0, 24, 1, 1, 1, 2, 200, 2, 255})
	f.Add([]byte{3, 0, 1, 9, 9, 9, 4, 0, 5, 1, 5, 2, 0, 7, 7, 2, 40})
	f.Add([]byte{1, 2, 2, 1, 1, 0, 66, 2, 7, 0, 0, 0, 3, 3, 0, 2, 6, 2, 6})
	f.Fuzz(runOps)
}

func runOps(t *testing.T, ops []byte) {
	debug.SetTraceback("all")
	watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("runOps hung on %x", ops)) })
	defer watchdog.Stop()
	{
		pools := [][]nat64.Pool4Range{
			poolRanges("203.0.113.0/31", 1024, 1031),
			poolRanges("203.0.113.1/32", 1024, 1027),
			poolRanges("203.0.113.0/30", 1, 1030),
		}
		statics := []nat64.StaticBIB{
			{Proto: tcp, IPv6: netip.MustParseAddrPort("[2001:db8:1::1]:80"), IPv4: netip.MustParseAddrPort("203.0.113.1:1025")},
			{Proto: udp, IPv6: netip.MustParseAddrPort("[2001:db8:1::2]:53"), IPv4: netip.MustParseAddrPort("203.0.113.0:1024")},
			{Proto: icmp, IPv6: netip.MustParseAddrPort("[2001:db8:1::1]:1"), IPv4: netip.MustParseAddrPort("203.0.113.1:1024")},
		}
		in := testInstance(func(in *Config) {
			in.Pool4 = pools[0]
			in.MaxSessions = 24
			in.MaxSessionsPerSource = 10
			in.Static = statics[:1]
		})
		tab := newTestTable(t, in, Options{Shards: 2, MaxHeldSYNs: 3, HeldSYNBytes: 4, ExpireBudget: 5})
		mirror := newFakeMirror()
		tab.SetMirror(mirror)
		protos := [3]nat64.Transport{tcp, udp, icmp}
		flagSets := [6]uint8{nat64.TCPSyn, nat64.TCPAck, nat64.TCPFin | nat64.TCPAck, nat64.TCPRst, nat64.TCPSyn | nat64.TCPAck, 0}
		now := int64(0)
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			op := next()
			a, b := next(), next()
			proto := protos[a%3]
			flags := flagSets[b%6]
			switch op % 8 {
			case 0, 1: // outbound, then its reply
				src := a6("2001:db8:1::1")
				src[15] = 1 + a>>4%4
				fl := &Flow6{Proto: proto, Src: src, SrcPort: 1024 + uint16(b>>3%8), Dst: [4]byte{198, 51, 100, 1 + b%3}, DstPort: 80 + uint16(a>>2%2)}
				if proto == icmp {
					fl.DstPort = fl.SrcPort
				}
				t4, p4, r := tab.Outbound(fl, flags, now)
				if r == nat64.Translated {
					if !tab.OwnsIPv4(t4) && !isStatic4(statics, t4, p4) {
						t.Fatalf("mapped to %v:%d outside pool4", t4, p4)
					}
					d6, dp, r2 := tab.Inbound(reply4(fl, t4, p4), nat64.TCPAck, nil, now)
					if r2 != nat64.Translated || d6 != fl.Src || dp != fl.SrcPort {
						t.Fatalf("reply of %+v via %v:%d: %x %d %v", fl, t4, p4, d6, dp, r2)
					}
				}
			case 2: // unsolicited inbound
				fl := &Flow4{Proto: proto, Src: [4]byte{198, 51, 100, 1 + b%3}, SrcPort: 80 + uint16(a>>2%2), Dst: [4]byte{203, 0, 113, b >> 6}, DstPort: 1024 + uint16(a>>4%8)}
				if proto == icmp {
					fl.SrcPort = fl.DstPort
				}
				tab.Inbound(fl, flags, []byte{a, b, 1, 2, 3}, now)
			case 3:
				now += int64(a) * int64(b) * sec / 8
				tab.Expire(now, func(p []byte) {
					if len(p) > 4 {
						t.Fatalf("held packet of %d bytes, room for 4", len(p))
					}
				})
			case 4:
				_ = tab.AddStatic(statics[a%3])
			case 5:
				_ = tab.RemoveStatic(statics[a%3])
			case 6:
				in2 := *in
				in2.Pool4 = pools[a%3]
				in2.Static = statics[:b%4]
				in2.EndpointIndependentFiltering = a&8 != 0
				if err := tab.Reconfigure(&in2); err != nil {
					t.Fatal(err)
				}
			case 7:
				now += int64(a) * sec
				// The mirror carried packets of every session just now, or
				// long ago.
				mirror.idle = time.Duration(b%2) * 24 * time.Hour
			}
			if err := tab.check(); err != nil {
				t.Fatal(err)
			}
		}
		mirror.idle = 24 * time.Hour
		tab.Expire(now+4*3600*sec, nil)
		if err := tab.check(); err != nil {
			t.Fatal(err)
		}
		st := tab.Stats()
		if len(mirror.has) != 0 {
			t.Fatalf("after everything expired the mirror still has %d sessions", len(mirror.has))
		}
		if st.Sessions != 0 || st.TCP.BIB != st.TCP.StaticBIB || st.UDP.BIB != st.UDP.StaticBIB || st.ICMP.BIB != st.ICMP.StaticBIB {
			t.Fatalf("after everything expired: %+v", st)
		}
	}
}

func isStatic4(s []nat64.StaticBIB, a [4]byte, p uint16) bool {
	for _, e := range s {
		if e.IPv4 == netip.AddrPortFrom(netip.AddrFrom4(a), p) {
			return true
		}
	}
	return false
}
