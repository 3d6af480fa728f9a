package state

import (
	"fmt"
	"math/rand"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// benchInstance has room for many sessions: pool4 a /24 with all ports.
func benchInstance(sessions int) *Config {
	return testInstance(func(in *Config) {
		in.Pool4 = poolRanges("203.0.113.0/24", 1024, 65535)
		in.MaxSessions = max(sessions, 1<<16)
		in.MaxSessionsPerSource = 1 << 16
	})
}

// benchFlow is the i-th of a family of distinct flows: 1024 source ports
// on each of many hosts, each flow its own BIB entry (the worst case for
// memory: nothing shared).
var benchSrc, benchDst = a6("2001:db8:100::"), a4("198.51.100.7")

func benchFlow(f *Flow6, proto nat64.Transport, i int) {
	f.Proto = proto
	f.Src = benchSrc
	f.Src[12], f.Src[13], f.Src[14], f.Src[15] = byte(i>>26), byte(i>>18), byte(i>>10), 1
	f.SrcPort = 1024 + uint16(i&1023)
	f.Dst = benchDst
	f.DstPort = 80
	if proto == icmp {
		f.DstPort = f.SrcPort
	}
}

func fill(b *testing.B, tab *Table, proto nat64.Transport, n int) {
	var f Flow6
	for i := range n {
		benchFlow(&f, proto, i)
		if _, _, r := tab.Outbound(&f, nat64.TCPSyn, 0); r != nat64.Translated {
			b.Fatalf("fill %d: %v", i, r)
		}
	}
}

func BenchmarkOutboundWarm(b *testing.B) {
	for _, proto := range []nat64.Transport{tcp, udp} {
		b.Run(proto.String(), func(b *testing.B) {
			tab := newTestTable(b, benchInstance(0), Options{})
			f := flow6(proto, hostA, 5000, server, 80)
			mustOut(b, tab, f, nat64.TCPSyn, 0)
			now := int64(0)
			b.ReportAllocs()
			for b.Loop() {
				now += 1000
				tab.Outbound(f, nat64.TCPAck, now)
			}
		})
	}
}

func BenchmarkInboundWarm(b *testing.B) {
	for _, proto := range []nat64.Transport{tcp, udp} {
		b.Run(proto.String(), func(b *testing.B) {
			tab := newTestTable(b, benchInstance(0), Options{})
			f := flow6(proto, hostA, 5000, server, 80)
			a, p := mustOut(b, tab, f, nat64.TCPSyn, 0)
			r4 := reply4(f, a, p)
			now := int64(0)
			b.ReportAllocs()
			for b.Loop() {
				now += 1000
				tab.Inbound(r4, nat64.TCPAck, nil, now)
			}
		})
	}
}

// BenchmarkWarmParallel: every goroutine translates its own flows both
// ways, as the TUN queues do.
func BenchmarkWarmParallel(b *testing.B) {
	tab := newTestTable(b, benchInstance(0), Options{})
	const flows = 1024
	fill(b, tab, udp, flows)
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var f Flow6
		i := int(next.Add(1)) * 7919
		now := int64(0)
		for pb.Next() {
			i++
			benchFlow(&f, udp, i%flows)
			now += 1000
			a, p, _ := tab.Outbound(&f, 0, now)
			tab.Inbound(&Flow4{Proto: udp, Src: f.Dst, SrcPort: f.DstPort, Dst: a, DstPort: p}, 0, nil, now)
		}
	})
}

// BenchmarkInsert: creating a session and its BIB entry (a new pool4 port).
func BenchmarkInsert(b *testing.B) {
	tab := newTestTable(b, benchInstance(MaxCapacity), Options{})
	var f Flow6
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		benchFlow(&f, udp, i)
		i++
		if _, _, r := tab.Outbound(&f, 0, 0); r != nat64.Translated {
			b.Fatal(r)
		}
	}
}

// BenchmarkLookup: a warm Outbound on a random existing session of a table
// of N sessions.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			tab := newTestTable(b, benchInstance(n), Options{})
			fill(b, tab, udp, n)
			const picks = 1 << 16
			flows := make([]Flow6, picks)
			r := rand.New(rand.NewSource(1))
			for i := range flows {
				benchFlow(&flows[i], udp, r.Intn(n))
			}
			now := int64(0)
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				now += 1000
				if _, _, r := tab.Outbound(&flows[i&(picks-1)], 0, now); r != nat64.Translated {
					b.Fatal(r)
				}
				i++
			}
			b.ReportMetric(meanProbes(tab), "probes/hit")
		})
	}
}

// BenchmarkMemoryPerSession fills a table with 1 M UDP sessions, each with
// its own BIB entry, and reports the heap it took per session (HeapInuse
// after minus before, everything included: slabs, indexes, port bitmaps,
// per-source records).
func BenchmarkMemoryPerSession(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tab := newTestTable(b, benchInstance(n), Options{})
		fill(b, tab, udp, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tab.Stats().Sessions != n {
			b.Fatal("not filled")
		}
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "bytes/session")
		runtime.KeepAlive(tab)
	}
}

// meanProbes is the average number of IPv6-index slots a successful lookup
// reads: the work per lookup, which must not grow with the table.
func meanProbes(tab *Table) float64 {
	total, n := 0, 0
	for i := range tab.shard6 {
		ix := &tab.shard6[i].ix
		for pos, e := range ix.slots {
			if e != 0 {
				home := uint32(e>>32) & ix.mask
				total += int((uint32(pos)-home)&ix.mask) + 1
				n++
			}
		}
	}
	return float64(total) / float64(n)
}
