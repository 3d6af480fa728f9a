package state

import (
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Mirror is a copy of some sessions kept outside the table: the kernel fast
// path, which translates their packets without the table seeing them. The
// table stays the only source of truth: it tells the mirror which sessions
// it may carry, takes them back when they end, and asks how long each has
// been idle before it lets one expire, so a flow carried only by the
// mirror never times out while busy.
//
// Every call is made with the table's writer lock held, so calls for one
// session never race; they must not call the Table.
type Mirror interface {
	Add(*MirrorSession)
	Remove(*MirrorSession)
	// Idle is how long ago the mirror last carried a packet of the
	// session; false when it has not got it.
	Idle(*MirrorSession) (time.Duration, bool)
}

// MirrorSession is one session as a mirror sees it: both tuples complete.
type MirrorSession struct {
	Proto nat64.Transport
	// The IPv6 side: X:x to Y:y, Y being Z embedded in the prefix. For
	// ICMP both ports are the IPv6-side identifier x.
	Src6     [16]byte
	SrcPort6 uint16
	Dst6     [16]byte
	DstPort6 uint16
	// The IPv4 side: T:t to Z:z. For ICMP both ports are the IPv4-side
	// identifier t.
	Src4     [4]byte
	SrcPort4 uint16
	Dst4     [4]byte
	DstPort4 uint16
}

// SetMirror attaches a mirror (nil detaches it) and hands it every session
// it may carry now. Detaching does not call Remove: the caller is
// discarding the mirror whole.
func (t *Table) SetMirror(m Mirror) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mirror = m
	t.mirrorOn.Store(m != nil)
	t.forEachSession(func(s *session) { s.mirrored = false })
	t.mirrorAll()
}

// forEachSession calls fn for every live session; t.mu held.
func (t *Table) forEachSession(fn func(*session)) {
	for ref := uint32(0); ref < t.sessNext; ref++ {
		if s := t.sess(ref); s.proto != 0 {
			fn(s)
		}
	}
}

// mirrorAll hands the mirror every session it may carry and has not got.
func (t *Table) mirrorAll() { t.forEachSession(t.syncMirror) }

// unmirrorAll takes every session back from the mirror, for a change the
// mirrored tuples depend on (the prefix); mirrorAll then hands them out
// again.
func (t *Table) unmirrorAll() { t.forEachSession(t.unmirror) }

// mirrorable says whether the mirror may carry the session's packets: UDP
// and ICMP sessions from their first packet, TCP only while ESTABLISHED
// (its SYN, FIN and RST segments must reach the state machine, which then
// takes the session back). A hairpinned session (its remote is one of our
// own pool4 addresses) needs both directions translated in one step, which
// only the table can do.
func (t *Table) mirrorable(s *session) bool {
	if s.proto == nat64.TCP && TCPState(s.word.Load()&stateMask) != Established {
		return false
	}
	return !t.pool.Load().hasAddr(s.rem4)
}

// syncMirror makes the mirror agree with the session's current state.
// Called with t.mu held.
func (t *Table) syncMirror(s *session) {
	if t.mirror == nil {
		return
	}
	want := t.mirrorable(s)
	if want == s.mirrored {
		return
	}
	t.fillMirrorSession(s)
	if want {
		t.mirror.Add(&t.mirrorSess)
	} else {
		t.mirror.Remove(&t.mirrorSess)
	}
	s.mirrored = want
}

// unmirror takes a session being removed back from the mirror.
func (t *Table) unmirror(s *session) {
	if !s.mirrored {
		return
	}
	s.mirrored = false
	if t.mirror != nil {
		t.fillMirrorSession(s)
		t.mirror.Remove(&t.mirrorSess)
	}
}

func (t *Table) fillMirrorSession(s *session) {
	m := &t.mirrorSess
	m.Proto = s.proto
	m.Src6, m.SrcPort6 = s.src6, s.sport
	m.Dst6 = t.params.Load().prefix.Embed(s.rem4)
	m.Src4, m.SrcPort4 = s.pool4, s.pport
	m.Dst4 = s.rem4
	if s.proto == nat64.ICMP {
		m.DstPort6, m.DstPort4 = s.sport, s.pport
	} else {
		m.DstPort6, m.DstPort4 = s.rport, s.rport
	}
}

// resyncOutbound and resyncInbound run when a packet moved a TCP session into or out of
// ESTABLISHED. The packet path found the session under a shard read lock,
// which it has released: the writer lock cannot be taken while holding one.
// So the session is found again by its tuple (it may be gone by now) and
// made to agree with its state at this moment, whichever packet got here
// first.
func (t *Table) resyncOutbound(f *Flow6, rport uint16, h uint64) {
	t.mu.Lock()
	if ref, ok := t.find6(&t.shard6[h>>t.shShift], uint32(h), f, rport); ok {
		t.syncMirror(t.sess(ref))
	}
	t.mu.Unlock()
}

func (t *Table) resyncInbound(f *Flow4, rport uint16, h uint64) {
	t.mu.Lock()
	if ref, ok := t.find4(&t.shard4[h>>t.shShift], uint32(h), f, rport); ok {
		t.syncMirror(t.sess(ref))
	}
	t.mu.Unlock()
}

// extendFromMirror is asked by expiry about a due session the mirror has
// been carrying: if the mirror saw a packet recently, the session's expiry
// moves to that packet's time plus the timeout of its state, as if the
// table had seen it. Reports whether the session now lives past now.
func (t *Table) extendFromMirror(s *session, now int64) bool {
	if !s.mirrored || t.mirror == nil {
		return false
	}
	t.fillMirrorSession(s)
	idle, ok := t.mirror.Idle(&t.mirrorSess)
	if !ok {
		return false
	}
	p := t.params.Load()
	for {
		w := s.word.Load()
		st := TCPState(w & stateMask)
		var life int64
		switch {
		case s.proto == nat64.UDP:
			life = p.udp
		case s.proto == nat64.ICMP:
			life = p.icmp
		case st == Established:
			life = p.tcpEst
		default:
			return wordExpiry(w) > now
		}
		exp := now - int64(idle) + life
		if exp <= wordExpiry(w) {
			return wordExpiry(w) > now
		}
		if s.word.CompareAndSwap(w, packWord(exp, st)) {
			return exp > now
		}
	}
}
