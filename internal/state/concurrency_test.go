package state

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// TestConcurrentPacketPath hammers one table from several goroutines: both
// directions of shared flows, creations, lookups, expiry with a moving
// clock, static changes and a reconfigure, each in a bounded loop. Run
// under -race it checks the locking; afterwards the invariants must hold
// and every reply must have found the host that opened the flow.
func TestConcurrentPacketPath(t *testing.T) {
	in := testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.0/30", 1024, 4095)
		in.MaxSessions = 20000
		in.MaxSessionsPerSource = 3000
	})
	tab := newTestTable(t, in, Options{Shards: 4, ExpireBudget: 100})
	var clock atomic.Int64
	clock.Store(sec)
	const workers = 4
	iters := 4000
	if testing.Short() {
		iters = 1000
	}
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iters {
				now := clock.Load()
				host := a6(hostA)
				host[15] = byte(i % 7)
				proto := []nat64.Transport{tcp, udp, icmp}[i%3]
				port := uint16(2000 + (i*7+w)%300)
				f := &Flow6{Proto: proto, Src: host, SrcPort: port, Dst: a4(server), DstPort: uint16(80 + i%5)}
				if proto == icmp {
					f.DstPort = port
				}
				flags := uint8(nat64.TCPAck)
				if i%4 == 0 {
					flags = nat64.TCPSyn
				}
				if i%50 == 0 {
					flags = nat64.TCPRst
				}
				a, p, r := tab.Outbound(f, flags, now)
				if r == nat64.Translated {
					d6, dp, r := tab.Inbound(reply4(f, a, p), nat64.TCPAck, nil, now)
					if r == nat64.Translated && (d6 != host || dp != port) {
						wrong.Add(1)
					}
					tab.LookupOutbound(f)
				}
				var pkt [20]byte
				binary.BigEndian.PutUint16(pkt[:], uint16(i))
				tab.Inbound(&Flow4{Proto: tcp, Src: a4(other), SrcPort: uint16(i), Dst: a4("203.0.113.1"), DstPort: uint16(1024 + i%3000)}, nat64.TCPSyn, pkt[:], now)
				tab.LookupInbound(&Flow4{Proto: udp, Src: a4(server), SrcPort: 80, Dst: a4("203.0.113.2"), DstPort: port})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range iters / 4 {
			now := clock.Add(3 * sec)
			tab.Expire(now, func(p []byte) {
				if len(p) != 20 {
					wrong.Add(1)
				}
			})
			if i%100 == 0 {
				s := nat64.StaticBIB{Proto: udp, IPv6: netip.MustParseAddrPort("[2001:db8:10::1]:53"), IPv4: netip.MustParseAddrPort("203.0.113.3:1500")}
				_ = tab.AddStatic(s)
				_ = tab.Stats()
				_ = tab.AppendSessions(nil, 0)
				_ = tab.RemoveStatic(s)
			}
			if i == iters/8 {
				in2 := *in
				in2.Pool4 = poolRanges("203.0.113.0/31", 1024, 4095)
				if err := tab.Reconfigure(&in2); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d replies went to the wrong host or bad held packets", n)
	}
	mustCheck(t, tab)
	tab.Expire(clock.Load()+3*3600*sec, nil)
	mustCheck(t, tab)
	if st := tab.Stats(); st.Sessions != 0 || st.UDP.BIB+st.TCP.BIB+st.ICMP.BIB != 0 {
		t.Fatalf("left after expiry: %+v", st)
	}
}

func TestWarmPathAllocatesNothing(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	for _, c := range []struct {
		proto nat64.Transport
		flags uint8
	}{{tcp, nat64.TCPAck}, {udp, 0}, {icmp, 0}} {
		f := flow6(c.proto, hostA, 5000, server, 80)
		if c.proto == icmp {
			f.DstPort = f.SrcPort
		}
		open := c.flags
		if c.proto == tcp {
			open = nat64.TCPSyn
		}
		a, p := mustOut(t, tab, f, open, 0)
		r4 := reply4(f, a, p)
		if c.proto == tcp {
			tab.Inbound(r4, nat64.TCPSyn|nat64.TCPAck, nil, 0)
		}
		now := int64(0)
		if n := testing.AllocsPerRun(1000, func() {
			now += 1 << 21
			tab.Outbound(f, c.flags, now)
		}); n != 0 {
			t.Errorf("%v Outbound: %v allocs", c.proto, n)
		}
		if n := testing.AllocsPerRun(1000, func() {
			now += 1 << 21
			tab.Inbound(r4, c.flags, nil, now)
		}); n != 0 {
			t.Errorf("%v Inbound: %v allocs", c.proto, n)
		}
		if n := testing.AllocsPerRun(1000, func() {
			tab.LookupOutbound(f)
			tab.LookupInbound(r4)
			tab.OwnsIPv4(a)
		}); n != 0 {
			t.Errorf("%v lookups: %v allocs", c.proto, n)
		}
	}
}
