package state

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

type tcpStep6 struct {
	from6 bool
	flags uint8
}

var (
	v6SYN    = tcpStep6{true, nat64.TCPSyn}
	v6SYNACK = tcpStep6{true, nat64.TCPSyn | nat64.TCPAck}
	v6ACK    = tcpStep6{true, nat64.TCPAck}
	v6FIN    = tcpStep6{true, nat64.TCPFin | nat64.TCPAck}
	v6RST    = tcpStep6{true, nat64.TCPRst}
	v4SYN    = tcpStep6{false, nat64.TCPSyn}
	v4SYNACK = tcpStep6{false, nat64.TCPSyn | nat64.TCPAck}
	v4ACK    = tcpStep6{false, nat64.TCPAck}
	v4FIN    = tcpStep6{false, nat64.TCPFin | nat64.TCPAck}
	v4RST    = tcpStep6{false, nat64.TCPRst | nat64.TCPAck}
)

func seq(parts ...[]tcpStep6) []tcpStep6 {
	var out []tcpStep6
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestTCPStateMachine drives every transition of RFC 6146 §3.5.2.2 from
// both sides and checks the state and the lifetime after the last packet:
// "est", "trans", "syn" (TCP_INCOMING_SYN) counted from the packet that set
// it, or "kept" (the lifetime set by the packet before the last).
func TestTCPStateMachine(t *testing.T) {
	open6 := []tcpStep6{v6SYN, v4SYNACK, v6ACK}
	open4 := []tcpStep6{v4SYN, v6SYNACK, v4ACK}
	cases := []struct {
		name  string
		steps []tcpStep6
		state TCPState
		life  string
	}{
		{"v6 SYN opens V6 INIT", []tcpStep6{v6SYN}, V6Init, "trans"},
		{"V6 INIT + v6 SYN refreshes", []tcpStep6{v6SYN, v6SYN}, V6Init, "trans"},
		{"V6 INIT + v6 ACK keeps", []tcpStep6{v6SYN, v6ACK}, V6Init, "kept"},
		{"V6 INIT + v4 RST keeps", []tcpStep6{v6SYN, v4RST}, V6Init, "kept"},
		{"V6 INIT + v4 SYN -> ESTABLISHED", []tcpStep6{v6SYN, v4SYNACK}, Established, "est"},
		{"v4 SYN opens V4 INIT", []tcpStep6{v4SYN}, V4Init, "syn"},
		{"V4 INIT + v4 SYN refreshes", []tcpStep6{v4SYN, v4SYN}, V4Init, "syn"},
		{"V4 INIT + v6 ACK keeps", []tcpStep6{v4SYN, v6ACK}, V4Init, "kept"},
		{"V4 INIT + v6 SYN -> ESTABLISHED", []tcpStep6{v4SYN, v6SYNACK}, Established, "est"},
		{"ESTABLISHED from IPv6", open6, Established, "est"},
		{"ESTABLISHED from IPv4", open4, Established, "est"},
		{"ESTABLISHED + data refreshes", seq(open6, []tcpStep6{v4ACK}), Established, "est"},
		{"ESTABLISHED + v4 FIN", seq(open6, []tcpStep6{v4FIN}), V4FinRcv, "est"},
		{"ESTABLISHED + v6 FIN", seq(open6, []tcpStep6{v6FIN}), V6FinRcv, "est"},
		{"ESTABLISHED + v4 RST", seq(open6, []tcpStep6{v4RST}), Trans, "trans"},
		{"ESTABLISHED + v6 RST", seq(open4, []tcpStep6{v6RST}), Trans, "trans"},
		{"V4 FIN RCV + v6 FIN", seq(open6, []tcpStep6{v4FIN, v6FIN}), V4V6FinRcv, "trans"},
		{"V4 FIN RCV + data refreshes", seq(open6, []tcpStep6{v4FIN, v6ACK}), V4FinRcv, "est"},
		{"V4 FIN RCV + v4 FIN again", seq(open6, []tcpStep6{v4FIN, v4FIN}), V4FinRcv, "est"},
		{"V4 FIN RCV + RST", seq(open6, []tcpStep6{v4FIN, v6RST}), Trans, "trans"},
		{"V6 FIN RCV + v4 FIN", seq(open4, []tcpStep6{v6FIN, v4FIN}), V4V6FinRcv, "trans"},
		{"V6 FIN RCV + data refreshes", seq(open4, []tcpStep6{v6FIN, v4ACK}), V6FinRcv, "est"},
		{"V6 FIN RCV + v6 FIN again", seq(open4, []tcpStep6{v6FIN, v6FIN}), V6FinRcv, "est"},
		{"V6 FIN RCV + RST", seq(open4, []tcpStep6{v6FIN, v4RST}), Trans, "trans"},
		{"V4+V6 FIN RCV + v6 ACK keeps", seq(open6, []tcpStep6{v4FIN, v6FIN, v6ACK}), V4V6FinRcv, "kept"},
		{"V4+V6 FIN RCV + v4 ACK keeps", seq(open6, []tcpStep6{v6FIN, v4FIN, v4ACK}), V4V6FinRcv, "kept"},
		{"TRANS + v6 data -> ESTABLISHED", seq(open6, []tcpStep6{v4RST, v6ACK}), Established, "est"},
		{"TRANS + v4 data -> ESTABLISHED", seq(open6, []tcpStep6{v6RST, v4ACK}), Established, "est"},
		{"TRANS + RST keeps", seq(open6, []tcpStep6{v4RST, v6RST}), Trans, "kept"},
	}
	in := testInstance(func(in *Config) {
		in.Static = []nat64.StaticBIB{{Proto: tcp, IPv6: netip.MustParseAddrPort("[2001:db8:1::a]:5000"), IPv4: netip.MustParseAddrPort("203.0.113.1:5000")}}
	})
	p := params{tcpEst: int64(nat64.DefaultTCPEstablishedTimeout), tcpTrans: int64(nat64.DefaultTCPTransitoryTimeout), tcpSyn: int64(DefaultIncomingSYNTimeout)}
	life := map[string]int64{"est": p.tcpEst, "trans": p.tcpTrans, "syn": p.tcpSyn}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab := newTestTable(t, in, Options{})
			f6 := flow6(tcp, hostA, 5000, server, 80)
			f4 := &Flow4{Proto: tcp, Src: a4(server), SrcPort: 80, Dst: a4("203.0.113.1"), DstPort: 5000}
			now := 100 * sec
			var before int64
			for i, st := range c.steps {
				if i == len(c.steps)-1 {
					e, _ := sessionOf(t, tab, f6)
					before = e.Expires
				}
				now += sec
				var r nat64.DropReason
				if st.from6 {
					_, _, r = tab.Outbound(f6, st.flags, now)
				} else {
					_, _, r = tab.Inbound(f4, st.flags, nil, now)
				}
				if r != nat64.Translated {
					t.Fatalf("step %d: %v", i, r)
				}
			}
			e, ok := sessionOf(t, tab, f6)
			if !ok {
				t.Fatal("no session")
			}
			if e.State != c.state {
				t.Fatalf("state %v, want %v", e.State, c.state)
			}
			want := before
			if c.life != "kept" {
				want = now + life[c.life]
			}
			if e.Expires != want {
				t.Fatalf("expires %v after the last packet, want %v (%s)",
					time.Duration(e.Expires-now), time.Duration(want-now), c.life)
			}
			mustCheck(t, tab)
		})
	}
}

// TestTransitionToTransShortensLife: a session ESTABLISHED for a long time
// that gets a RST must go TCP_TRANS later, not TCP_EST later, even though
// the wheel had it hung at its old expiry.
func TestTransitionToTransShortensLife(t *testing.T) {
	tab := newTestTable(t, testInstance(nil), Options{})
	f := flow6(tcp, hostA, 5000, server, 80)
	a, p := mustOut(t, tab, f, nat64.TCPSyn, 0)
	tab.Inbound(reply4(f, a, p), nat64.TCPSyn|nat64.TCPAck, nil, sec)
	now := sec
	for ; now < 3600*sec; now += 10 * sec {
		mustOut(t, tab, f, nat64.TCPAck, now)
		tab.Expire(now, nil)
	}
	mustOut(t, tab, f, nat64.TCPRst, now)
	trans := int64(nat64.DefaultTCPTransitoryTimeout)
	for end := now + trans - sec; now < end; now += sec {
		tab.Expire(now, nil)
	}
	if _, _, ok := tab.LookupOutbound(f); !ok {
		t.Fatal("gone before TCP_TRANS")
	}
	tab.Expire(now+2*sec, nil)
	if _, _, ok := tab.LookupOutbound(f); ok {
		t.Fatal("TRANS session outlived TCP_TRANS")
	}
}
