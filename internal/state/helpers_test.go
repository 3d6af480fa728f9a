package state

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

const sec = int64(time.Second)

var (
	tcp  = nat64.TCP
	udp  = nat64.UDP
	icmp = nat64.ICMP
)

func a6(s string) [16]byte { return netip.MustParseAddr(s).As16() }
func a4(s string) [4]byte  { return netip.MustParseAddr(s).As4() }

// testInstance is a small instance: pool4 203.0.113.1/32 on ports
// 1024-65535 unless mod changes it.
func testInstance(mod func(*Config)) *Config {
	in := &Config{
		Prefix: nat64.MustPrefix("64:ff9b:1::/96"),
		Pool4: []nat64.Pool4Range{{
			Prefix: netip.MustParsePrefix("203.0.113.1/32"), FirstPort: 1024, LastPort: 65535,
		}},
		MaxSessions:          1 << 16,
		MaxSessionsPerSource: 4096,
	}
	if mod != nil {
		mod(in)
	}
	return in
}

func poolRanges(prefix string, lo, hi uint16) []nat64.Pool4Range {
	return []nat64.Pool4Range{{Prefix: netip.MustParsePrefix(prefix), FirstPort: lo, LastPort: hi}}
}

func newTestTable(tb testing.TB, in *Config, opts Options) *Table {
	tb.Helper()
	if opts.Secret == ([32]byte{}) {
		opts.Secret[0] = 42
	}
	if opts.Shards == 0 {
		opts.Shards = 8
	}
	t, err := New(in, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return t
}

func flow6(p nat64.Transport, src string, sport uint16, dst string, dport uint16) *Flow6 {
	return &Flow6{Proto: p, Src: a6(src), SrcPort: sport, Dst: a4(dst), DstPort: dport}
}

// reply4 is the IPv4 packet answering an outbound flow that was mapped to
// t:port.
func reply4(f *Flow6, t [4]byte, port uint16) *Flow4 {
	sp := f.DstPort
	if f.Proto == nat64.ICMP {
		sp = port
	}
	return &Flow4{Proto: f.Proto, Src: f.Dst, SrcPort: sp, Dst: t, DstPort: port}
}

func mustOut(tb testing.TB, tab *Table, f *Flow6, flags uint8, now int64) ([4]byte, uint16) {
	tb.Helper()
	a, p, r := tab.Outbound(f, flags, now)
	if r != nat64.Translated {
		tb.Fatalf("Outbound %+v: %v", f, r)
	}
	return a, p
}

// sessionState returns the state and expiry of the one session matching f.
func sessionOf(tb testing.TB, tab *Table, f *Flow6) (SessionEntry, bool) {
	tb.Helper()
	var found SessionEntry
	ok := false
	want := addrPort6(f.Src, f.SrcPort)
	tab.WalkSessions(f.Proto, func(e *SessionEntry) bool {
		if e.Src6 == want && e.Dst4.Addr() == netip.AddrFrom4(f.Dst) {
			found, ok = *e, true
			return false
		}
		return true
	})
	return found, ok
}

// check verifies the table's invariants: every session is in both
// indexes and on its BIB entry's list and the wheel exactly once; every
// BIB entry is in both BIB indexes; pool4 ports are unique per protocol
// and address and match the bitmaps; all counters match.
func (t *Table) check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	type pk struct {
		proto nat64.Transport
		a     [4]byte
		port  uint16
	}
	ports := map[pk]uint32{}
	var bibs, statics, sessPer [3]int
	srcSess := map[[16]byte]int32{}
	srcBIB := map[[16]byte]int32{}
	for ref := uint32(0); ref < t.bibNext; ref++ {
		be := t.bibAt(ref)
		if be.proto == 0 {
			continue
		}
		pi := protoIndex(be.proto)
		bibs[pi]++
		if be.static {
			statics[pi]++
		}
		k := pk{be.proto, be.pool4, be.pport}
		if other, dup := ports[k]; dup {
			return fmt.Errorf("BIB %d and %d share %v", other, ref, k)
		}
		ports[k] = ref
		if r, ok := t.findBIB6(be.proto, &be.src6, be.sport); !ok || r != ref {
			return fmt.Errorf("BIB %d not in bib6 index", ref)
		}
		if r, ok := t.findBIB4(be.proto, be.pool4, be.pport); !ok || r != ref {
			return fmt.Errorf("BIB %d not in bib4 index", ref)
		}
		if !t.portTaken(pi, be.pool4, be.pport) {
			return fmt.Errorf("BIB %d port not marked", ref)
		}
		if be.nsess == 0 && !be.static {
			return fmt.Errorf("dynamic BIB %d has no session", ref)
		}
		n := uint32(0)
		for s := be.head; s != nilRef; s = t.sess(s).bnext {
			if t.sess(s).bib != ref {
				return fmt.Errorf("session %d on BIB %d list points at %d", s, ref, t.sess(s).bib)
			}
			n++
		}
		if n != be.nsess {
			return fmt.Errorf("BIB %d lists %d sessions, counts %d", ref, n, be.nsess)
		}
		srcBIB[be.src6]++
	}
	if int(t.bib6.count) != sum(bibs) || int(t.bib4.count) != sum(bibs) {
		return fmt.Errorf("bib index counts %d/%d, entries %d", t.bib6.count, t.bib4.count, sum(bibs))
	}
	for pi := range bibs {
		if bibs[pi] != t.perProto[pi].bibs || statics[pi] != t.perProto[pi].statics || bibs[pi] != t.portsUsed[pi] {
			return fmt.Errorf("proto %d: %d BIB (%d static), counted %+v, ports %d", pi, bibs[pi], statics[pi], t.perProto[pi], t.portsUsed[pi])
		}
	}
	// Walk only the wheel slots that live sessions name, so the check
	// costs O(sessions), not O(wheel).
	inWheel := map[uint32]int{}
	walked := map[uint32]bool{}
	for ref := uint32(0); ref < t.sessNext; ref++ {
		slot := t.sess(ref).wslot
		if t.sess(ref).proto == 0 || walked[slot] {
			continue
		}
		if slot >= wheelSlots {
			return fmt.Errorf("session %d not in the wheel", ref)
		}
		walked[slot] = true
		prev := nilRef
		for r := t.wheel.heads[slot]; r != nilRef; r = t.sess(r).wnext {
			s := t.sess(r)
			if s.wslot != slot || s.wprev != prev || inWheel[r] > 0 {
				return fmt.Errorf("session %d wheel links broken", r)
			}
			inWheel[r]++
			prev = r
		}
	}
	total := 0
	for ref := uint32(0); ref < t.sessNext; ref++ {
		s := t.sess(ref)
		if s.proto == 0 {
			continue
		}
		total++
		sessPer[protoIndex(s.proto)]++
		srcSess[s.src6]++
		be := t.bibAt(s.bib)
		if be.proto != s.proto || be.src6 != s.src6 || be.sport != s.sport || be.pool4 != s.pool4 || be.pport != s.pport {
			return fmt.Errorf("session %d does not match its BIB %d", ref, s.bib)
		}
		if inWheel[ref] != 1 {
			return fmt.Errorf("session %d is %d times in the wheel", ref, inWheel[ref])
		}
		f6 := Flow6{Proto: s.proto, Src: s.src6, SrcPort: s.sport, Dst: s.rem4, DstPort: s.rport}
		h6 := t.hash.key6(uint8(s.proto), &s.src6, s.sport, s.rem4, s.rport)
		if r, ok := t.find6(&t.shard6[h6>>t.shShift], uint32(h6), &f6, s.rport); !ok || r != ref {
			return fmt.Errorf("session %d not in the IPv6 index", ref)
		}
		f4 := Flow4{Proto: s.proto, Src: s.rem4, SrcPort: s.rport, Dst: s.pool4, DstPort: s.pport}
		h4 := t.hash.key4(uint8(s.proto), s.rem4, s.rport, s.pool4, s.pport)
		if r, ok := t.find4(&t.shard4[h4>>t.shShift], uint32(h4), &f4, s.rport); !ok || r != ref {
			return fmt.Errorf("session %d not in the IPv4 index", ref)
		}
	}
	if len(inWheel) != total {
		return fmt.Errorf("wheel holds %d sessions, table %d", len(inWheel), total)
	}
	n6, n4 := 0, 0
	for i := range t.shard6 {
		n6 += int(t.shard6[i].ix.count)
		n4 += int(t.shard4[i].ix.count)
	}
	if total != t.nsess || n6 != total || n4 != total {
		return fmt.Errorf("sessions: %d live, counted %d, indexed %d/%d", total, t.nsess, n6, n4)
	}
	for pi := range sessPer {
		if sessPer[pi] != t.perProto[pi].sessions {
			return fmt.Errorf("proto %d: %d sessions, counted %d", pi, sessPer[pi], t.perProto[pi].sessions)
		}
	}
	for x, rec := range t.srcs {
		if rec.sessions != srcSess[x] || rec.bibs != srcBIB[x] {
			return fmt.Errorf("source %x: record %+v, real %d sessions %d BIB", x, rec, srcSess[x], srcBIB[x])
		}
	}
	for x := range srcBIB {
		if _, ok := t.srcs[x]; !ok {
			return fmt.Errorf("source %x has BIB entries but no record", x)
		}
	}
	used := 0
	for pi := range t.ports {
		for _, pm := range t.ports[pi] {
			used += pm.used
		}
	}
	if used != sum(bibs) {
		return fmt.Errorf("port bitmaps hold %d, BIB %d", used, sum(bibs))
	}
	if t.held.n != len(t.held.byKey) {
		return fmt.Errorf("held %d, keyed %d", t.held.n, len(t.held.byKey))
	}
	return t.checkMirror()
}

func sum(a [3]int) int { return a[0] + a[1] + a[2] }

func mustCheck(tb testing.TB, t *Table) {
	tb.Helper()
	if err := t.check(); err != nil {
		tb.Fatal(err)
	}
}
