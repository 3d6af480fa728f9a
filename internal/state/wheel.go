package state

import (
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// The timer wheel: sessions hang in the slot of the second they are due to
// be looked at. The packet path only moves a session's expiry forward (an
// atomic word), never the wheel; Expire looks at a due session, removes it
// if its expiry has passed, and otherwise hangs it again at its new
// expiry. So each session costs O(1) per timeout period, and nothing ever
// scans the table.
//
// One exception to "expiry only moves forward": a TCP packet can move a
// session from a long-lived state to TRANS (RST, FIN from both sides),
// shortening its life to TCP_TRANS from now. So TCP sessions are never
// hung further than TCP_TRANS ahead: whenever a session moves to TRANS, the
// wheel looks at it again before its new expiry.
const (
	wheelSlots = 1 << 13 // at one second a slot, longer than TCP_EST
	wheelTick  = int64(time.Second)
)

type wheel struct {
	heads   [wheelSlots]uint32
	last    int64 // the last tick processed
	started bool
}

func (w *wheel) init() {
	for i := range w.heads {
		w.heads[i] = nilRef
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func (t *Table) start(now int64) {
	if !t.wheel.started {
		t.wheel.started = true
		t.wheel.last = floorDiv(now, wheelTick) - 1
	}
}

// wheelAdd hangs a session at its expiry (TCP: at most TCP_TRANS ahead),
// in the first slot whose tick is at or after that time.
func (t *Table) wheelAdd(ref uint32, s *session, now int64) {
	t.start(now)
	due := wordExpiry(s.word.Load())
	if s.proto == nat64.TCP {
		due = min(due, now+t.params.Load().tcpTrans)
	}
	w := &t.wheel
	tick := floorDiv(due+wheelTick-1, wheelTick)
	tick = max(tick, w.last+1)
	tick = min(tick, w.last+wheelSlots-1)
	slot := uint32(tick & (wheelSlots - 1))
	s.wslot = slot
	s.wprev = nilRef
	s.wnext = w.heads[slot]
	if s.wnext != nilRef {
		t.sess(s.wnext).wprev = ref
	}
	w.heads[slot] = ref
}

func (t *Table) wheelRemove(ref uint32, s *session) {
	if s.wslot == noSlot {
		return
	}
	if s.wprev != nilRef {
		t.sess(s.wprev).wnext = s.wnext
	} else {
		t.wheel.heads[s.wslot] = s.wnext
	}
	if s.wnext != nilRef {
		t.sess(s.wnext).wprev = s.wprev
	}
	s.wslot, s.wprev, s.wnext = noSlot, nilRef, nilRef
}

// expireSessions processes the wheel up to now, within the budget.
func (t *Table) expireSessions(now int64) {
	w := &t.wheel
	if !w.started {
		t.start(now)
		return
	}
	nowTick := floorDiv(now, wheelTick)
	if nowTick-w.last >= wheelSlots {
		t.expireAll(now, nowTick)
		return
	}
	budget := t.budget
	for w.last < nowTick {
		slot := uint32((w.last + 1) & (wheelSlots - 1))
		for w.heads[slot] != nilRef {
			if budget == 0 {
				return // the rest of this slot waits for the next call
			}
			budget--
			ref := w.heads[slot]
			s := t.sess(ref)
			t.wheelRemove(ref, s)
			// Every session here is due at or before this tick; a
			// later expiry means packets refreshed it: hang it again
			// (always in a later slot, since that expiry is past now).
			if wordExpiry(s.word.Load()) > now || t.extendFromMirror(s, now) || !t.removeSession(ref, true, now) {
				t.wheelAdd(ref, s, now)
			}
		}
		w.last++
	}
}

// expireAll handles a clock jump of a whole wheel turn or more: every
// session is looked at once.
func (t *Table) expireAll(now, nowTick int64) {
	w := &t.wheel
	chain := nilRef
	for i := range w.heads {
		for ref := w.heads[i]; ref != nilRef; {
			s := t.sess(ref)
			next := s.wnext
			s.wslot, s.wprev, s.wnext = noSlot, nilRef, chain
			chain = ref
			ref = next
		}
		w.heads[i] = nilRef
	}
	w.last = nowTick
	for ref := chain; ref != nilRef; {
		s := t.sess(ref)
		next := s.wnext
		s.wnext = nilRef
		if wordExpiry(s.word.Load()) > now || t.extendFromMirror(s, now) || !t.removeSession(ref, true, now) {
			t.wheelAdd(ref, s, now)
		}
		ref = next
	}
}

// Expire removes the sessions (and BIB entries left without sessions) whose
// lifetime ended by now, and the held SYNs older than TCP_INCOMING_SYN,
// each handed to onHeldSYN (may be nil) so the caller can answer ICMP Port
// Unreachable (RFC 6146 §3.5.2.2). The daemon calls it about once a
// second. pkt is only valid during the call; onHeldSYN may call the Table.
func (t *Table) Expire(now int64, onHeldSYN func(pkt []byte)) {
	t.expireMu.Lock()
	defer t.expireMu.Unlock()
	t.mu.Lock()
	t.lastNow = now
	t.expireSessions(now)
	n := t.held.expire(now)
	t.mu.Unlock()
	if n == 0 {
		return
	}
	// The delivered slots are neither free nor indexed, so no packet can
	// overwrite them while the callbacks run without the lock.
	if onHeldSYN != nil {
		for _, i := range t.held.deliver {
			onHeldSYN(t.held.packet(i))
		}
	}
	t.mu.Lock()
	t.held.release()
	t.mu.Unlock()
}
