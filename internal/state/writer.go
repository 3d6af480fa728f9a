package state

import (
	"net/netip"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Everything in this file runs with t.mu held: every structural change of
// the table (sessions and BIB entries made and removed, ports taken and
// freed, held SYNs, static entries). It stays one file, longer than most,
// so that the locking rule can be checked by reading a single file.

func (t *Table) outboundLocked(f *Flow6, rport uint16, h uint64, flags uint8, now int64) ([4]byte, uint16, nat64.DropReason) {
	// Another goroutine may have created the session since the read-locked
	// miss; no other writer can run now, so the index is read unlocked.
	if ref, ok := t.find6(&t.shard6[h>>t.shShift], uint32(h), f, rport); ok {
		s := t.sess(ref)
		if t.touch(s, true, flags, now) {
			t.syncMirror(s)
		}
		return s.pool4, s.pport, nat64.Translated
	}
	t.lastNow = now
	p := t.params.Load()
	pi := protoIndex(f.Proto)
	st, exp := Closed, int64(0)
	switch f.Proto {
	case nat64.TCP:
		// CLOSED state: only a SYN opens a session.
		if flags&nat64.TCPSyn == 0 || flags&nat64.TCPRst != 0 {
			return [4]byte{}, 0, nat64.NotSYN
		}
		st, exp = V6Init, now+p.tcpTrans
	case nat64.UDP:
		exp = now + p.udp
	default:
		exp = now + p.icmp
	}
	if t.nsess >= p.maxSessions {
		return [4]byte{}, 0, nat64.TableFull
	}
	if int(t.srcs[f.Src].sessions) >= p.maxPerSource {
		return [4]byte{}, 0, nat64.SessionLimit
	}
	bref, ok := t.findBIB6(f.Proto, &f.Src, f.SrcPort)
	if !ok {
		a, port, ok := t.allocate(pi, f.Proto, &f.Src, f.SrcPort)
		if !ok {
			return [4]byte{}, 0, nat64.Pool4Exhausted
		}
		bref = t.newBIB(f.Proto, f.Src, f.SrcPort, a, port, false)
	}
	be := t.bibAt(bref)
	if f.Proto == nat64.TCP && t.held.n > 0 {
		// Simultaneous open: the IPv4 SYN held for this connection is
		// discarded, and as in V4 INIT a V6 SYN means ESTABLISHED.
		if t.held.drop(Flow4{Proto: nat64.TCP, Src: f.Dst, SrcPort: f.DstPort, Dst: be.pool4, DstPort: be.pport}) {
			st, exp = Established, now+p.tcpEst
		}
	}
	t.newSession(bref, be, f.Dst, rport, st, exp, now)
	return be.pool4, be.pport, nat64.Translated
}

func (t *Table) inboundLocked(f *Flow4, rport uint16, h uint64, flags uint8, pkt []byte, now int64) ([16]byte, uint16, nat64.DropReason) {
	if ref, ok := t.find4(&t.shard4[h>>t.shShift], uint32(h), f, rport); ok {
		s := t.sess(ref)
		if t.touch(s, false, flags, now) {
			t.syncMirror(s)
		}
		return s.src6, s.sport, nat64.Translated
	}
	t.lastNow = now
	p := t.params.Load()
	bref, haveBIB := t.findBIB4(f.Proto, f.Dst, f.DstPort)
	var be *bibEntry
	allowed := false
	if haveBIB {
		be = t.bibAt(bref)
		// Static entries exist to let IPv4 in, so filtering does not
		// apply to them.
		allowed = be.static || p.eif || t.bibTalksTo(be, f.Src)
	}
	st, exp := Closed, int64(0)
	switch f.Proto {
	case nat64.TCP:
		if flags&nat64.TCPSyn == 0 || flags&nat64.TCPRst != 0 {
			if !haveBIB {
				return [16]byte{}, 0, nat64.NoBinding
			}
			return [16]byte{}, 0, nat64.NotSYN
		}
		if !allowed {
			if !haveBIB && !t.pool.Load().contains(f.Dst, f.DstPort) {
				return [16]byte{}, 0, nat64.NoBinding // no IPv6 SYN could ever claim it
			}
			return [16]byte{}, 0, t.holdSYN(f, pkt, now)
		}
		st, exp = V4Init, now+p.tcpSyn
	case nat64.UDP:
		exp = now + p.udp
	default:
		exp = now + p.icmp
	}
	if !haveBIB {
		return [16]byte{}, 0, nat64.NoBinding
	}
	if !allowed {
		return [16]byte{}, 0, nat64.Filtered
	}
	if t.nsess >= p.maxSessions {
		return [16]byte{}, 0, nat64.TableFull
	}
	if int(t.srcs[be.src6].sessions) >= p.maxPerSource {
		return [16]byte{}, 0, nat64.SessionLimit
	}
	if f.Proto == nat64.TCP && t.held.n > 0 {
		// A SYN held earlier (say, before a Reconfigure to endpoint-
		// independent filtering) is superseded by this session: no ICMP
		// error for it later.
		t.held.drop(Flow4{Proto: nat64.TCP, Src: f.Src, SrcPort: f.SrcPort, Dst: f.Dst, DstPort: f.DstPort})
	}
	t.newSession(bref, be, f.Src, rport, st, exp, now)
	return be.src6, be.sport, nat64.Translated
}

func (t *Table) holdSYN(f *Flow4, pkt []byte, now int64) nat64.DropReason {
	key := Flow4{Proto: nat64.TCP, Src: f.Src, SrcPort: f.SrcPort, Dst: f.Dst, DstPort: f.DstPort}
	if t.held.has(key) {
		return nat64.SYNHeld // a retransmission; the first copy stays
	}
	if !t.held.add(key, pkt, now) {
		return nat64.HeldSYNFull
	}
	return nat64.SYNHeld
}

// bibTalksTo is the address-dependent filtering test: does the BIB entry
// have a session with remote address z (any port)?
func (t *Table) bibTalksTo(be *bibEntry, z [4]byte) bool {
	for ref := be.head; ref != nilRef; {
		s := t.sess(ref)
		if s.rem4 == z {
			return true
		}
		ref = s.bnext
	}
	return false
}

func (t *Table) findBIB6(proto nat64.Transport, src *[16]byte, port uint16) (uint32, bool) {
	h := uint32(t.hash.bib6(uint8(proto), src, port))
	pos, ok := t.bib6.first(h)
	for ok {
		ref := t.bib6.ref(pos)
		if b := t.bibAt(ref); b.src6 == *src && b.sport == port && b.proto == proto {
			return ref, true
		}
		pos, ok = t.bib6.next(h, pos)
	}
	return 0, false
}

func (t *Table) findBIB4(proto nat64.Transport, a [4]byte, port uint16) (uint32, bool) {
	h := uint32(t.hash.bib4(uint8(proto), a, port))
	pos, ok := t.bib4.first(h)
	for ok {
		ref := t.bib4.ref(pos)
		if b := t.bibAt(ref); b.pool4 == a && b.pport == port && b.proto == proto {
			return ref, true
		}
		pos, ok = t.bib4.next(h, pos)
	}
	return 0, false
}

func (t *Table) newBIB(proto nat64.Transport, src [16]byte, sport uint16, a [4]byte, pport uint16, static bool) uint32 {
	var ref uint32
	if t.bibFree != nilRef {
		ref = t.bibFree
		t.bibFree = t.bibAt(ref).head
	} else {
		ref = t.bibNext
		t.bibNext++
		if int(ref>>t.cshift) == len(t.bibDir) {
			t.bibDir = append(t.bibDir, make([]bibEntry, 1<<t.cshift))
		}
	}
	be := t.bibAt(ref)
	*be = bibEntry{src6: src, sport: sport, pool4: a, pport: pport, proto: proto, static: static, head: nilRef}
	t.bib6.insert(uint32(t.hash.bib6(uint8(proto), &src, sport)), ref)
	t.bib4.insert(uint32(t.hash.bib4(uint8(proto), a, pport)), ref)
	pi := protoIndex(proto)
	t.markPort(pi, a, pport)
	rec := t.srcs[src]
	rec.bibs++
	if !rec.paired && t.pool.Load().hasAddr(a) {
		rec.addr, rec.paired = a, true
	}
	t.srcs[src] = rec
	t.perProto[pi].bibs++
	if static {
		t.perProto[pi].statics++
	}
	if t.onMapping != nil {
		t.emitBIB(BIBCreated, be)
	}
	return ref
}

func (t *Table) freeBIB(ref uint32, be *bibEntry) {
	t.bib6.remove(uint32(t.hash.bib6(uint8(be.proto), &be.src6, be.sport)), ref)
	t.bib4.remove(uint32(t.hash.bib4(uint8(be.proto), be.pool4, be.pport)), ref)
	pi := protoIndex(be.proto)
	t.releasePort(pi, be.pool4, be.pport)
	rec := t.srcs[be.src6]
	rec.bibs--
	t.putSource(be.src6, rec)
	t.perProto[pi].bibs--
	if be.static {
		t.perProto[pi].statics--
	}
	if t.onMapping != nil {
		t.emitBIB(BIBRemoved, be)
	}
	*be = bibEntry{head: t.bibFree}
	t.bibFree = ref
}

func (t *Table) putSource(x [16]byte, rec source) {
	if rec.bibs <= 0 && rec.sessions <= 0 {
		delete(t.srcs, x)
		return
	}
	t.srcs[x] = rec
}

// removeBIB deletes a BIB entry and every session using it.
func (t *Table) removeBIB(ref uint32) {
	be := t.bibAt(ref)
	if be.static {
		be.static = false
		t.perProto[protoIndex(be.proto)].statics--
	}
	if be.head == nilRef {
		t.freeBIB(ref, be)
		return
	}
	// The last session's removal frees the (now dynamic) entry, so count
	// rather than look at be afterwards.
	for n := be.nsess; n > 0; n-- {
		t.removeSession(be.head, false, 0)
	}
}

func (t *Table) newSession(bref uint32, be *bibEntry, rem [4]byte, rport uint16, st TCPState, exp, now int64) {
	var ref uint32
	if t.sessFree != nilRef {
		ref = t.sessFree
		t.sessFree = t.sess(ref).wnext
	} else {
		ref = t.sessNext
		t.sessNext++
		if t.sessDir[ref>>t.cshift] == nil {
			t.sessDir[ref>>t.cshift] = make([]session, 1<<t.cshift)
		}
	}
	s := t.sess(ref)
	s.src6, s.sport, s.pool4, s.pport, s.proto = be.src6, be.sport, be.pool4, be.pport, be.proto
	s.rem4, s.rport = rem, rport
	s.word.Store(packWord(exp, st))
	s.bib = bref
	s.bprev, s.bnext = nilRef, be.head
	if be.head != nilRef {
		t.sess(be.head).bprev = ref
	}
	be.head = ref
	be.nsess++
	s.wslot = noSlot
	t.wheelAdd(ref, s, now)

	h6 := t.hash.key6(uint8(s.proto), &s.src6, s.sport, s.rem4, s.rport)
	sh := &t.shard6[h6>>t.shShift]
	sh.mu.Lock()
	sh.ix.insert(uint32(h6), ref)
	sh.mu.Unlock()
	h4 := t.hash.key4(uint8(s.proto), s.rem4, s.rport, s.pool4, s.pport)
	sh = &t.shard4[h4>>t.shShift]
	sh.mu.Lock()
	sh.ix.insert(uint32(h4), ref)
	sh.mu.Unlock()

	t.nsess++
	t.perProto[protoIndex(s.proto)].sessions++
	rec := t.srcs[s.src6]
	rec.sessions++
	t.srcs[s.src6] = rec
	if t.onMapping != nil {
		t.emitSession(SessionCreated, s)
	}
	t.syncMirror(s)
}

// removeSession takes a session out of both indexes and frees it. With
// onlyIfExpired, it first checks under both shard write locks (so no packet
// can be refreshing it) that the session is still expired at now, and
// returns false, changing nothing, when a packet refreshed it meanwhile.
func (t *Table) removeSession(ref uint32, onlyIfExpired bool, now int64) bool {
	s := t.sess(ref)
	h6 := t.hash.key6(uint8(s.proto), &s.src6, s.sport, s.rem4, s.rport)
	h4 := t.hash.key4(uint8(s.proto), s.rem4, s.rport, s.pool4, s.pport)
	sh6 := &t.shard6[h6>>t.shShift]
	sh4 := &t.shard4[h4>>t.shShift]
	sh6.mu.Lock()
	sh4.mu.Lock()
	if onlyIfExpired && wordExpiry(s.word.Load()) > now {
		sh4.mu.Unlock()
		sh6.mu.Unlock()
		return false
	}
	sh6.ix.remove(uint32(h6), ref)
	sh4.ix.remove(uint32(h4), ref)
	sh4.mu.Unlock()
	sh6.mu.Unlock()
	t.unmirror(s)

	t.wheelRemove(ref, s)
	bref := s.bib
	be := t.bibAt(bref)
	if s.bprev != nilRef {
		t.sess(s.bprev).bnext = s.bnext
	} else {
		be.head = s.bnext
	}
	if s.bnext != nilRef {
		t.sess(s.bnext).bprev = s.bprev
	}
	be.nsess--
	t.nsess--
	t.perProto[protoIndex(s.proto)].sessions--
	rec := t.srcs[s.src6]
	rec.sessions--
	t.srcs[s.src6] = rec
	if t.onMapping != nil {
		t.emitSession(SessionRemoved, s)
	}
	if be.nsess == 0 && !be.static {
		t.freeBIB(bref, be)
	} else {
		t.putSource(s.src6, t.srcs[s.src6])
	}
	s.src6, s.rem4, s.pool4 = [16]byte{}, [4]byte{}, [4]byte{}
	s.sport, s.rport, s.pport, s.proto = 0, 0, 0, 0
	s.word.Store(0)
	s.bib, s.bprev, s.bnext, s.wprev = nilRef, nilRef, nilRef, nilRef
	s.wnext = t.sessFree
	t.sessFree = ref
	return true
}

// addStaticLocked installs a static BIB entry. A dynamic entry holding
// either side is evicted with its sessions (configuration wins); one that
// already maps exactly these tuples just becomes static, keeping its
// sessions. Another static entry on either side is an error.
func (t *Table) addStaticLocked(e nat64.StaticBIB) error {
	pi := protoIndex(e.Proto)
	if pi < 0 {
		return errorf("static BIB: unknown protocol %d", e.Proto)
	}
	if !e.IPv6.Addr().Is6() || e.IPv6.Addr().Is4In6() {
		return errorf("static BIB %v: %v is not an IPv6 address", e.Proto, e.IPv6)
	}
	if !e.IPv4.Addr().Is4() {
		return errorf("static BIB %v: %v is not an IPv4 address", e.Proto, e.IPv4)
	}
	x := e.IPv6.Addr().As16()
	a := e.IPv4.Addr().As4()
	if ref, ok := t.findBIB6(e.Proto, &x, e.IPv6.Port()); ok {
		be := t.bibAt(ref)
		same := be.pool4 == a && be.pport == e.IPv4.Port()
		switch {
		case be.static && same:
			return nil
		case be.static:
			return errorf("static BIB %v %v: that IPv6 address is already mapped to %v", e.Proto, e.IPv6, addrPort4(be.pool4, be.pport))
		case same:
			be.static = true
			t.perProto[pi].statics++
			return nil
		}
		t.removeBIB(ref)
	}
	if ref, ok := t.findBIB4(e.Proto, a, e.IPv4.Port()); ok {
		be := t.bibAt(ref)
		if be.static {
			return errorf("static BIB %v %v: that IPv4 address is already mapped to %v", e.Proto, e.IPv4, addrPort6(be.src6, be.sport))
		}
		t.removeBIB(ref)
	}
	t.newBIB(e.Proto, x, e.IPv6.Port(), a, e.IPv4.Port(), true)
	return nil
}

func addrPort4(a [4]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(a), port)
}

func addrPort6(a [16]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a), port)
}
