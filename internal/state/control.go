package state

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

func errorf(format string, args ...any) error { return fmt.Errorf("state: "+format, args...) }

// EventKind says what a MappingEvent reports.
type EventKind uint8

// The mapping events.
const (
	BIBCreated EventKind = iota + 1
	BIBRemoved
	SessionCreated
	SessionRemoved
)

func (k EventKind) String() string {
	switch k {
	case BIBCreated:
		return "bib-created"
	case BIBRemoved:
		return "bib-removed"
	case SessionCreated:
		return "session-created"
	case SessionRemoved:
		return "session-removed"
	}
	return "unknown"
}

// MappingEvent is one RFC 6888 §4 mapping log record.
type MappingEvent struct {
	Kind   EventKind
	Proto  nat64.Transport
	Time   int64          // the caller's clock, as passed to the Table
	IPv6   netip.AddrPort // X:x
	IPv4   netip.AddrPort // T:t
	Remote netip.AddrPort // Z:z; sessions only (ICMP: the identifier t)
	Static bool           // BIB events: a static entry
}

func (t *Table) emitBIB(k EventKind, be *bibEntry) {
	t.event = MappingEvent{Kind: k, Proto: be.proto, Time: t.lastNow,
		IPv6: addrPort6(be.src6, be.sport), IPv4: addrPort4(be.pool4, be.pport), Static: be.static}
	t.onMapping(&t.event)
}

func (t *Table) emitSession(k EventKind, s *session) {
	t.event = MappingEvent{Kind: k, Proto: s.proto, Time: t.lastNow,
		IPv6: addrPort6(s.src6, s.sport), IPv4: addrPort4(s.pool4, s.pport), Remote: remote4(s)}
	t.onMapping(&t.event)
}

func remote4(s *session) netip.AddrPort {
	if s.proto == nat64.ICMP {
		return addrPort4(s.rem4, s.pport)
	}
	return addrPort4(s.rem4, s.rport)
}

// SetMappingLog replaces the mapping-log hook (nil turns it off); see
// Options.OnMapping.
func (t *Table) SetMappingLog(fn func(*MappingEvent)) {
	t.mu.Lock()
	t.onMapping = fn
	t.mu.Unlock()
}

// SessionEntry is one session for the control API: both tuples, the
// protocol, the TCP state and when it expires.
type SessionEntry struct {
	Proto nat64.Transport
	// The IPv6 side: X:x to Y:y, Y being Z embedded in the prefix.
	Src6, Dst6 netip.AddrPort
	// The IPv4 side: T:t to Z:z.
	Src4, Dst4 netip.AddrPort
	State      TCPState // Closed for UDP and ICMP
	Expires    int64    // on the caller's clock
}

// BIBEntry is one BIB entry for the control API.
type BIBEntry struct {
	Proto    nat64.Transport
	IPv6     netip.AddrPort // X:x
	IPv4     netip.AddrPort // T:t
	Static   bool
	Sessions int
}

// walkBatch is how many entries a walk copies per lock hold, so listing a
// big table never stalls the packet path's session creation for long.
const walkBatch = 1024

// WalkSessions calls fn for each session of proto (0: all) until fn
// returns false. Entries are copied in batches under the lock and fn runs
// without it, so fn may be slow or call the Table; sessions created or
// removed during the walk may or may not be seen.
func (t *Table) WalkSessions(proto nat64.Transport, fn func(*SessionEntry) bool) {
	var p *params
	walk(t, func() uint32 {
		p = t.params.Load()
		return t.sessNext
	}, func(ref uint32) (e SessionEntry, ok bool) {
		s := t.sess(ref)
		if s.proto == 0 || (proto != 0 && s.proto != proto) {
			return e, false
		}
		w := s.word.Load()
		e = SessionEntry{
			Proto:   s.proto,
			Src6:    addrPort6(s.src6, s.sport),
			Src4:    addrPort4(s.pool4, s.pport),
			Dst4:    remote4(s),
			Expires: wordExpiry(w),
		}
		if s.proto == nat64.TCP {
			e.State = TCPState(w & stateMask)
		}
		dport := s.rport
		if s.proto == nat64.ICMP {
			dport = s.sport
		}
		if p.prefix.IsValid() {
			e.Dst6 = addrPort6(p.prefix.Embed(s.rem4), dport)
		}
		return e, true
	}, fn)
}

// WalkBIB calls fn for each BIB entry of proto (0: all) until fn returns
// false, like WalkSessions.
func (t *Table) WalkBIB(proto nat64.Transport, fn func(*BIBEntry) bool) {
	walk(t, func() uint32 { return t.bibNext }, func(ref uint32) (BIBEntry, bool) {
		be := t.bibAt(ref)
		if be.proto == 0 || (proto != 0 && be.proto != proto) {
			return BIBEntry{}, false
		}
		return BIBEntry{Proto: be.proto, IPv6: addrPort6(be.src6, be.sport),
			IPv4: addrPort4(be.pool4, be.pport), Static: be.static, Sessions: int(be.nsess)}, true
	}, fn)
}

// walk visits the slots [0, end()) in batches: end and collect run under
// t.mu, fn after it is released.
func walk[T any](t *Table, end func() uint32, collect func(ref uint32) (T, bool), fn func(*T) bool) {
	buf := make([]T, 0, walkBatch)
	for ref := uint32(0); ; {
		buf = buf[:0]
		t.mu.Lock()
		n := end()
		for ; ref < n && len(buf) < walkBatch; ref++ {
			if e, ok := collect(ref); ok {
				buf = append(buf, e)
			}
		}
		t.mu.Unlock()
		for i := range buf {
			if !fn(&buf[i]) {
				return
			}
		}
		if ref >= n {
			return
		}
	}
}

// AppendSessions appends the sessions of proto (0: all) to dst.
func (t *Table) AppendSessions(dst []SessionEntry, proto nat64.Transport) []SessionEntry {
	t.WalkSessions(proto, func(e *SessionEntry) bool { dst = append(dst, *e); return true })
	return dst
}

// AppendBIB appends the BIB entries of proto (0: all) to dst.
func (t *Table) AppendBIB(dst []BIBEntry, proto nat64.Transport) []BIBEntry {
	t.WalkBIB(proto, func(e *BIBEntry) bool { dst = append(dst, *e); return true })
	return dst
}

// ProtoStats are the counts of one protocol.
type ProtoStats struct {
	Sessions   int
	BIB        int // dynamic and static
	StaticBIB  int
	PortsInUse int // pool4 ports (ICMP: identifiers) taken, = BIB entries
}

// Stats is a snapshot of the table's counters.
type Stats struct {
	TCP, UDP, ICMP ProtoStats
	Sessions       int
	Sources        int // IPv6 hosts with state
	HeldSYNs       int
}

// Proto returns the counts of p (nil for other protocols).
func (s *Stats) Proto(p nat64.Transport) *ProtoStats {
	switch p {
	case nat64.TCP:
		return &s.TCP
	case nat64.UDP:
		return &s.UDP
	case nat64.ICMP:
		return &s.ICMP
	}
	return nil
}

// Stats returns the current counts.
func (t *Table) Stats() Stats {
	var st Stats
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, p := range nat64.Transports {
		ps := st.Proto(p)
		ps.Sessions = t.perProto[i].sessions
		ps.BIB = t.perProto[i].bibs
		ps.StaticBIB = t.perProto[i].statics
		ps.PortsInUse = t.portsUsed[i]
	}
	st.Sessions = t.nsess
	st.Sources = len(t.srcs)
	st.HeldSYNs = t.held.n
	return st
}

// AddStatic adds a static BIB entry at run time (until the next
// Reconfigure, which makes the static entries those of its instance). A
// dynamic entry holding either side is removed with its sessions; another
// static entry there is an error.
func (t *Table) AddStatic(e nat64.StaticBIB) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addStaticLocked(e)
}

// ErrNoStatic is returned by RemoveStatic when no static entry matches.
var ErrNoStatic = errors.New("state: no such static BIB entry")

// RemoveStatic removes the static BIB entry of e.Proto whose IPv4 side is
// e.IPv4 (or, when e.IPv4 is the zero value, whose IPv6 side is e.IPv6),
// with its sessions. When both sides are given they must match one entry.
func (t *Table) RemoveStatic(e nat64.StaticBIB) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ref uint32
	var ok bool
	if e.IPv4.IsValid() {
		ref, ok = t.findBIB4(e.Proto, e.IPv4.Addr().As4(), e.IPv4.Port())
	} else if e.IPv6.IsValid() {
		x := e.IPv6.Addr().As16()
		ref, ok = t.findBIB6(e.Proto, &x, e.IPv6.Port())
	}
	if !ok || !t.bibAt(ref).static {
		return ErrNoStatic
	}
	be := t.bibAt(ref)
	if e.IPv4.IsValid() && e.IPv6.IsValid() && (be.src6 != e.IPv6.Addr().As16() || be.sport != e.IPv6.Port()) {
		return ErrNoStatic
	}
	t.removeBIB(ref)
	return nil
}

// Reconfigure applies a changed instance: timeouts, filtering, limits and
// prefix take effect for the next packets (a session keeps the expiry it
// has until its next packet); pool4 changes drop only the dynamic BIB
// entries, and their sessions, whose IPv4 address and port left the pool;
// the static entries become exactly in.Static (removed ones go with their
// sessions, kept ones keep theirs). Nothing is changed when in is invalid.
func (t *Table) Reconfigure(in *Config) error {
	p, pl, err := t.compile(in, t.params.Load().tcpSyn)
	if err != nil {
		return err
	}
	type key struct {
		proto nat64.Transport
		v6    netip.AddrPort
		v4    netip.AddrPort
	}
	type side struct {
		proto nat64.Transport
		ipv4  bool
		ap    netip.AddrPort
	}
	want := make(map[key]bool, len(in.Static))
	taken := make(map[side]bool, 2*len(in.Static))
	for _, s := range in.Static {
		if protoIndex(s.Proto) < 0 || !s.IPv6.Addr().Is6() || s.IPv6.Addr().Is4In6() || !s.IPv4.Addr().Is4() {
			return errorf("static BIB %v %v %v: invalid", s.Proto, s.IPv6, s.IPv4)
		}
		if want[key{s.Proto, s.IPv6, s.IPv4}] {
			continue // an exact duplicate is harmless
		}
		s6, s4 := side{s.Proto, false, s.IPv6}, side{s.Proto, true, s.IPv4}
		if taken[s6] || taken[s4] {
			return errorf("static BIB %v %v %v: conflicts with another static entry", s.Proto, s.IPv6, s.IPv4)
		}
		taken[s6], taken[s4] = true, true
		want[key{s.Proto, s.IPv6, s.IPv4}] = true
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if need := t.chunksFor(p.maxSessions); need > len(t.sessDir) {
		t.lockShards()
		dir := make([][]session, need)
		copy(dir, t.sessDir)
		t.sessDir = dir
		t.unlockShards()
	}
	prefixChanged := p.prefix != t.params.Load().prefix
	if prefixChanged {
		t.unmirrorAll() // the mirrored IPv6 tuples hold the old prefix
	}
	t.params.Store(p)
	t.pool.Store(pl)
	defer t.mirrorAll() // a session may have become hairpinned, or the prefix changed
	for ref := uint32(0); ref < t.bibNext; ref++ {
		be := t.bibAt(ref)
		if be.proto == 0 {
			continue
		}
		if be.static {
			if !want[key{be.proto, addrPort6(be.src6, be.sport), addrPort4(be.pool4, be.pport)}] {
				t.removeBIB(ref)
			}
			continue
		}
		if !pl.contains(be.pool4, be.pport) {
			t.removeBIB(ref)
		}
	}
	for _, s := range in.Static {
		if err := t.addStaticLocked(s); err != nil {
			return err // not reached: conflicts among statics were checked above
		}
	}
	// Paired addresses that left the pool are forgotten.
	for x, rec := range t.srcs {
		if rec.paired && !pl.hasAddr(rec.addr) {
			rec.paired = false
			t.srcs[x] = rec
		}
	}
	return nil
}

func (t *Table) lockShards() {
	for i := range t.shard6 {
		t.shard6[i].mu.Lock()
		t.shard4[i].mu.Lock()
	}
}

func (t *Table) unlockShards() {
	for i := range t.shard6 {
		t.shard4[i].mu.Unlock()
		t.shard6[i].mu.Unlock()
	}
}
