package state

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// fakeMirror records what the table hands it; idle is what Idle answers
// for every session it has.
type fakeMirror struct {
	has           map[MirrorSession]bool
	adds, removes int
	idle          time.Duration
}

func newFakeMirror() *fakeMirror {
	return &fakeMirror{has: map[MirrorSession]bool{}, idle: 24 * time.Hour}
}

func (m *fakeMirror) Add(s *MirrorSession) {
	if m.has[*s] {
		panic(fmt.Sprintf("mirror: %+v added twice", *s))
	}
	m.has[*s] = true
	m.adds++
}

func (m *fakeMirror) Remove(s *MirrorSession) {
	if !m.has[*s] {
		panic(fmt.Sprintf("mirror: %+v removed but never added", *s))
	}
	delete(m.has, *s)
	m.removes++
}

func (m *fakeMirror) Idle(s *MirrorSession) (time.Duration, bool) {
	return m.idle, m.has[*s]
}

// checkMirror: the mirror holds exactly the sessions marked mirrored, each
// as its current tuples, and a session is mirrored exactly when it may be.
// t.mu held.
func (t *Table) checkMirror() error {
	m, ok := t.mirror.(*fakeMirror)
	if !ok {
		return nil
	}
	n := 0
	var err error
	t.forEachSession(func(s *session) {
		if err != nil {
			return
		}
		if s.mirrored != t.mirrorable(s) {
			err = fmt.Errorf("session %x:%d -> %v: mirrored %v, mirrorable %v", s.src6, s.sport, s.rem4, s.mirrored, t.mirrorable(s))
			return
		}
		if !s.mirrored {
			return
		}
		n++
		t.fillMirrorSession(s)
		if !m.has[t.mirrorSess] {
			err = fmt.Errorf("mirrored session %+v not in the mirror", t.mirrorSess)
		}
	})
	if err == nil && n != len(m.has) {
		err = fmt.Errorf("mirror holds %d sessions, the table marks %d", len(m.has), n)
	}
	return err
}

func mirrorOf(t *testing.T, tab *Table) *fakeMirror {
	t.Helper()
	m := newFakeMirror()
	tab.SetMirror(m)
	return m
}

func TestMirrorUDPAndICMPFromTheFirstPacket(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	m := mirrorOf(t, tab)
	u := flow6(udp, "2001:db8:1::1", 5000, "198.51.100.7", 53)
	t4, p4 := mustOut(t, tab, u, 0, 0)
	want := MirrorSession{Proto: udp, Src6: u.Src, SrcPort6: 5000,
		Dst6: nat64.MustPrefix("64:ff9b:1::/96").Embed(u.Dst), DstPort6: 53,
		Src4: t4, SrcPort4: p4, Dst4: u.Dst, DstPort4: 53}
	if !m.has[want] || len(m.has) != 1 {
		t.Fatalf("after the first UDP packet the mirror has %+v, want %+v", m.has, want)
	}
	e := flow6(icmp, "2001:db8:1::1", 77, "198.51.100.7", 77)
	t4, id4 := mustOut(t, tab, e, 0, 0)
	wantEcho := MirrorSession{Proto: icmp, Src6: e.Src, SrcPort6: 77,
		Dst6: want.Dst6, DstPort6: 77, Src4: t4, SrcPort4: id4, Dst4: e.Dst, DstPort4: id4}
	if !m.has[wantEcho] {
		t.Fatalf("echo session not mirrored as %+v: %+v", wantEcho, m.has)
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorTCPOnlyWhileEstablished(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	m := mirrorOf(t, tab)
	f := flow6(tcp, "2001:db8:1::1", 40000, "198.51.100.7", 80)
	step := func(what string, wantMirrored bool, do func()) {
		t.Helper()
		do()
		if got := len(m.has) == 1; got != wantMirrored {
			t.Fatalf("%s: mirrored %v, want %v", what, got, wantMirrored)
		}
		if err := tab.check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	var t4 [4]byte
	var p4 uint16
	step("v6 SYN (V6 INIT)", false, func() { t4, p4 = mustOut(t, tab, f, nat64.TCPSyn, 0) })
	back := reply4(f, t4, p4)
	step("v4 SYN+ACK (ESTABLISHED)", true, func() { tab.Inbound(back, nat64.TCPSyn|nat64.TCPAck, nil, sec) })
	step("data", true, func() { mustOut(t, tab, f, nat64.TCPAck, 2*sec) })
	step("v6 FIN", false, func() { mustOut(t, tab, f, nat64.TCPFin|nat64.TCPAck, 3*sec) })
	step("data in V6 FIN RCV", false, func() { tab.Inbound(back, nat64.TCPAck, nil, 4*sec) })
	step("RST (TRANS)", false, func() { tab.Inbound(back, nat64.TCPRst, nil, 5*sec) })
	step("data after RST (ESTABLISHED again)", true, func() { mustOut(t, tab, f, nat64.TCPAck, 6*sec) })
	step("session expires", false, func() { tab.Expire(6*sec+int64(nat64.DefaultTCPEstablishedTimeout)+sec, nil) })
	if m.adds != 2 || m.removes != 2 {
		t.Fatalf("adds %d removes %d, want 2 and 2", m.adds, m.removes)
	}
}

// A flow the mirror carries alone never reaches the table; expiry asks the
// mirror, and the session lives while it is busy.
func TestMirrorIdleKeepsABusySessionAlive(t *testing.T) {
	in := testInstance(func(in *Config) { in.Timeouts.UDP = 2 * time.Minute })
	tab := newTestTable(t, in, Options{})
	m := mirrorOf(t, tab)
	mustOut(t, tab, flow6(udp, "2001:db8:1::1", 5000, "198.51.100.7", 53), 0, 0)
	now := int64(0)
	m.idle = 10 * time.Second
	for i := 0; i < 10; i++ { // 10 timeouts, the table seeing no packet
		now += int64(2*time.Minute) + sec
		tab.Expire(now, nil)
		if st := tab.Stats(); st.Sessions != 1 {
			t.Fatalf("after %d s, the mirror busy: %d sessions, want 1", now/sec, st.Sessions)
		}
	}
	// The mirror last carried a packet 10 s before the last check: the
	// session now lasts until then plus the UDP timeout, and no longer.
	due := now - int64(10*time.Second) + int64(2*time.Minute)
	m.idle = 24 * time.Hour
	tab.Expire(due-sec, nil)
	if st := tab.Stats(); st.Sessions != 1 {
		t.Fatalf("expired before the extended lifetime: %+v", st)
	}
	tab.Expire(due+sec, nil)
	if st := tab.Stats(); st.Sessions != 0 || len(m.has) != 0 {
		t.Fatalf("idle session survived: %+v, mirror %d", st, len(m.has))
	}
}

func TestMirrorSkipsHairpinnedSessions(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	m := mirrorOf(t, tab)
	mustOut(t, tab, flow6(udp, "2001:db8:1::1", 5000, "203.0.113.1", 2000), 0, 0)
	if len(m.has) != 0 {
		t.Fatalf("hairpinned session mirrored: %+v", m.has)
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorFollowsReconfigure(t *testing.T) {
	in := testInstance(func(in *Config) { in.Pool4 = poolRanges("203.0.113.0/31", 1024, 65535) })
	tab := newTestTable(t, in, Options{})
	m := mirrorOf(t, tab)
	for i := 1; i <= 8; i++ {
		mustOut(t, tab, flow6(udp, fmt.Sprintf("2001:db8:1::%d", i), 5000, "198.51.100.7", 53), 0, 0)
	}
	// The pool shrinks: sessions on the address that left are removed from
	// the mirror; the prefix changes: the rest are handed out again with
	// the new IPv6 tuple.
	in2 := *in
	in2.Pool4 = poolRanges("203.0.113.0/32", 1024, 65535)
	in2.Prefix = nat64.MustPrefix("2001:db8:64::/96")
	if err := tab.Reconfigure(&in2); err != nil {
		t.Fatal(err)
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
	st := tab.Stats()
	if len(m.has) != st.Sessions || st.Sessions == 8 || st.Sessions == 0 {
		t.Fatalf("after Reconfigure: %d sessions, mirror %d (want equal, some but not all kept)", st.Sessions, len(m.has))
	}
	newY := nat64.MustPrefix("2001:db8:64::/96").Embed(a4("198.51.100.7"))
	for s := range m.has {
		if s.Dst6 != newY || s.Src4 != a4("203.0.113.0") {
			t.Fatalf("mirror kept %+v", s)
		}
	}
}

func TestSetMirrorHandsOverExistingSessions(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	f := flow6(tcp, "2001:db8:1::1", 40000, "198.51.100.7", 80)
	t4, p4 := mustOut(t, tab, f, nat64.TCPSyn, 0)
	tab.Inbound(reply4(f, t4, p4), nat64.TCPSyn|nat64.TCPAck, nil, 0)
	mustOut(t, tab, flow6(tcp, "2001:db8:1::2", 40000, "198.51.100.7", 80), nat64.TCPSyn, 0) // V6 INIT
	mustOut(t, tab, flow6(udp, "2001:db8:1::1", 5000, "198.51.100.7", 53), 0, 0)
	m := mirrorOf(t, tab)
	if len(m.has) != 2 {
		t.Fatalf("mirror got %d sessions, want the established TCP and the UDP one", len(m.has))
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
}

// Packets of one TCP connection from both sides at once, on many
// connections: however the transitions interleave, the mirror ends up
// holding exactly the established sessions.
func TestMirrorConcurrentTransitions(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	m := mirrorOf(t, tab)
	const conns = 64
	flows := make([]*Flow6, conns)
	backs := make([]*Flow4, conns)
	for i := range flows {
		flows[i] = flow6(tcp, "2001:db8:1::1", uint16(30000+i), "198.51.100.7", 80)
		t4, p4 := mustOut(t, tab, flows[i], nat64.TCPSyn, 0)
		backs[i] = reply4(flows[i], t4, p4)
	}
	var wg sync.WaitGroup
	for side := 0; side < 2; side++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				for i := range flows {
					flags := []uint8{nat64.TCPSyn | nat64.TCPAck, nat64.TCPAck, nat64.TCPRst, nat64.TCPAck}[(round+i)%4]
					if side == 0 {
						tab.Outbound(flows[i], flags, sec)
					} else {
						tab.Inbound(backs[i], flags, nil, sec)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
	est := 0
	tab.WalkSessions(tcp, func(e *SessionEntry) bool {
		if e.State == Established {
			est++
		}
		return true
	})
	if est != len(m.has) {
		t.Fatalf("%d established, mirror holds %d", est, len(m.has))
	}
}

// Removing a static BIB entry ends its sessions, and the mirror loses them.
func TestMirrorLosesTheSessionsOfARemovedStaticEntry(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	m := mirrorOf(t, tab)
	e := nat64.StaticBIB{Proto: udp, IPv6: netip.MustParseAddrPort("[2001:db8:1::9]:6000"), IPv4: netip.MustParseAddrPort("203.0.113.1:6000")}
	if err := tab.AddStatic(e); err != nil {
		t.Fatal(err)
	}
	mustOut(t, tab, flow6(udp, "2001:db8:1::9", 6000, "198.51.100.7", 53), 0, 0)
	mustOut(t, tab, flow6(udp, "2001:db8:1::9", 6000, "198.51.100.8", 53), 0, 0)
	if len(m.has) != 2 {
		t.Fatalf("mirror has %d sessions, want the static entry's 2", len(m.has))
	}
	if err := tab.RemoveStatic(e); err != nil {
		t.Fatal(err)
	}
	if len(m.has) != 0 {
		t.Fatalf("after RemoveStatic the mirror still has %+v", m.has)
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
}
