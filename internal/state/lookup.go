package state

// The packet path: what a packet goroutine runs, under one shard's read
// lock, to find its session. Structural changes are in writer.go.

import (
	"github.com/nat64kit/nat64kit/internal/nat64"
)

// sess returns the session of a ref published in an index.
func (t *Table) sess(ref uint32) *session {
	return &t.sessDir[ref>>t.cshift][ref&t.cmask]
}

func (t *Table) bibAt(ref uint32) *bibEntry {
	return &t.bibDir[ref>>t.cshift][ref&t.cmask]
}

// find6 looks a normalized IPv6-side key up in a shard (read-locked by the
// caller, or any shard when the caller holds t.mu).
func (t *Table) find6(sh *shard, h uint32, f *Flow6, rport uint16) (uint32, bool) {
	pos, ok := sh.ix.first(h)
	for ok {
		ref := sh.ix.ref(pos)
		s := t.sess(ref)
		if s.src6 == f.Src && s.sport == f.SrcPort && s.rem4 == f.Dst && s.rport == rport && s.proto == f.Proto {
			return ref, true
		}
		pos, ok = sh.ix.next(h, pos)
	}
	return 0, false
}

func (t *Table) find4(sh *shard, h uint32, f *Flow4, rport uint16) (uint32, bool) {
	pos, ok := sh.ix.first(h)
	for ok {
		ref := sh.ix.ref(pos)
		s := t.sess(ref)
		if s.rem4 == f.Src && s.rport == rport && s.pool4 == f.Dst && s.pport == f.DstPort && s.proto == f.Proto {
			return ref, true
		}
		pos, ok = sh.ix.next(h, pos)
	}
	return 0, false
}

// remotePort6 and remotePort4 normalize the remote port of a key: ICMP
// sessions are keyed without it, because the identifier differs between
// the sides (x on IPv6, t on IPv4).
func remotePort6(f *Flow6) uint16 {
	if f.Proto == nat64.ICMP {
		return 0
	}
	return f.DstPort
}

func remotePort4(f *Flow4) uint16 {
	if f.Proto == nat64.ICMP {
		return 0
	}
	return f.SrcPort
}

// Outbound handles a packet from the IPv6 side: it finds or creates the
// session (and BIB entry), runs the TCP state machine and returns the IPv4
// source to translate to.
func (t *Table) Outbound(f *Flow6, tcpFlags uint8, now int64) (src4 [4]byte, srcPort4 uint16, r nat64.DropReason) {
	if protoIndex(f.Proto) < 0 {
		return src4, 0, nat64.UnsupportedProto
	}
	rport := remotePort6(f)
	h := t.hash.key6(uint8(f.Proto), &f.Src, f.SrcPort, f.Dst, rport)
	sh := &t.shard6[h>>t.shShift]
	sh.mu.RLock()
	if ref, ok := t.find6(sh, uint32(h), f, rport); ok {
		s := t.sess(ref)
		src4, srcPort4 = s.pool4, s.pport
		resync := t.touch(s, true, tcpFlags, now)
		sh.mu.RUnlock()
		if resync {
			t.resyncOutbound(f, rport, h)
		}
		return src4, srcPort4, nat64.Translated
	}
	sh.mu.RUnlock()
	if f.Proto == nat64.TCP && (tcpFlags&nat64.TCPSyn == 0 || tcpFlags&nat64.TCPRst != 0) {
		// Cannot open a session: answer without the writer lock (after a
		// restart every old connection's packets come this way).
		return src4, 0, nat64.NotSYN
	}
	t.mu.Lock()
	src4, srcPort4, r = t.outboundLocked(f, rport, h, tcpFlags, now)
	t.mu.Unlock()
	return src4, srcPort4, r
}

// Inbound handles a packet from the IPv4 side addressed to pool4: it finds
// the session, or creates one when a BIB entry exists and filtering allows,
// or holds a TCP SYN for simultaneous open (copying pkt).
func (t *Table) Inbound(f *Flow4, tcpFlags uint8, pkt []byte, now int64) (dst6 [16]byte, dstPort6 uint16, r nat64.DropReason) {
	if protoIndex(f.Proto) < 0 {
		return dst6, 0, nat64.UnsupportedProto
	}
	rport := remotePort4(f)
	h := t.hash.key4(uint8(f.Proto), f.Src, rport, f.Dst, f.DstPort)
	sh := &t.shard4[h>>t.shShift]
	sh.mu.RLock()
	if ref, ok := t.find4(sh, uint32(h), f, rport); ok {
		s := t.sess(ref)
		dst6, dstPort6 = s.src6, s.sport
		resync := t.touch(s, false, tcpFlags, now)
		sh.mu.RUnlock()
		if resync {
			t.resyncInbound(f, rport, h)
		}
		return dst6, dstPort6, nat64.Translated
	}
	sh.mu.RUnlock()
	t.mu.Lock()
	dst6, dstPort6, r = t.inboundLocked(f, rport, h, tcpFlags, pkt, now)
	t.mu.Unlock()
	return dst6, dstPort6, r
}

// LookupOutbound finds the session of an IPv6-side tuple without changing
// anything (for the inner packet of an ICMP error).
func (t *Table) LookupOutbound(f *Flow6) (src4 [4]byte, srcPort4 uint16, ok bool) {
	if protoIndex(f.Proto) < 0 {
		return src4, 0, false
	}
	rport := remotePort6(f)
	h := t.hash.key6(uint8(f.Proto), &f.Src, f.SrcPort, f.Dst, rport)
	sh := &t.shard6[h>>t.shShift]
	sh.mu.RLock()
	ref, ok := t.find6(sh, uint32(h), f, rport)
	if ok {
		s := t.sess(ref)
		src4, srcPort4 = s.pool4, s.pport
	}
	sh.mu.RUnlock()
	return src4, srcPort4, ok
}

// LookupInbound finds the session of an IPv4-side tuple without changing
// anything.
func (t *Table) LookupInbound(f *Flow4) (dst6 [16]byte, dstPort6 uint16, ok bool) {
	if protoIndex(f.Proto) < 0 {
		return dst6, 0, false
	}
	rport := remotePort4(f)
	h := t.hash.key4(uint8(f.Proto), f.Src, rport, f.Dst, f.DstPort)
	sh := &t.shard4[h>>t.shShift]
	sh.mu.RLock()
	ref, ok := t.find4(sh, uint32(h), f, rport)
	if ok {
		s := t.sess(ref)
		dst6, dstPort6 = s.src6, s.sport
	}
	sh.mu.RUnlock()
	return dst6, dstPort6, ok
}

// OwnsIPv4 reports whether a is one of the pool4 addresses.
func (t *Table) OwnsIPv4(a [4]byte) bool { return t.pool.Load().hasAddr(a) }

// touch refreshes a found session for one packet: only its word changes.
// It reports whether a mirror must be told (a TCP session entered or left
// ESTABLISHED); the caller does that once it holds no shard lock.
func (t *Table) touch(s *session, from6 bool, flags uint8, now int64) (resyncMirror bool) {
	p := t.params.Load()
	switch s.proto {
	case nat64.UDP:
		refresh(s, now+p.udp)
	case nat64.ICMP:
		refresh(s, now+p.icmp)
	case nat64.TCP:
		for {
			w := s.word.Load()
			st, exp := TCPState(w&stateMask), wordExpiry(w)
			nst, nexp := tcpStep(st, exp, from6, flags, now, p)
			if nst == st && (nexp == exp || (nexp > exp && nexp-exp < refreshSlop)) {
				return false
			}
			if s.word.CompareAndSwap(w, packWord(nexp, nst)) {
				return (st == Established) != (nst == Established) && t.mirrorOn.Load()
			}
		}
	}
	return false
}

func refresh(s *session, exp int64) {
	w := s.word.Load()
	if exp-wordExpiry(w) < refreshSlop {
		return
	}
	// A lost race means a concurrent packet refreshed it just as well.
	s.word.CompareAndSwap(w, packWord(exp, 0))
}

const stateMask = 0xf

// packWord rounds the expiry up to a multiple of 16 ns, freeing the low
// bits for the TCP state, so both change in one atomic step.
func packWord(exp int64, st TCPState) uint64 {
	if exp < 0 {
		exp = 0
	}
	return uint64(exp+stateMask)&^stateMask | uint64(st)
}

func wordExpiry(w uint64) int64 { return int64(w &^ stateMask) }
