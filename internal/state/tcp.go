package state

import "github.com/nat64kit/nat64kit/internal/nat64"

// TCPState is a state of the RFC 6146 §3.5.2 TCP state machine. CLOSED is
// the absence of a session.
type TCPState uint8

const (
	// Closed is only reported for UDP and ICMP sessions (no TCP state).
	Closed TCPState = iota
	V4Init
	V6Init
	Established
	V4FinRcv
	V6FinRcv
	V4V6FinRcv
	Trans
)

var tcpStateNames = [...]string{"CLOSED", "V4_INIT", "V6_INIT", "ESTABLISHED", "V4_FIN_RCV", "V6_FIN_RCV", "V4_FIN_V6_FIN_RCV", "TRANS"}

func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return "UNKNOWN"
}

// tcpStep is one packet of RFC 6146 §3.5.2.2 on an existing session: from6
// says which side sent it. It returns the new state and expiry; "lifetime
// unchanged" returns exp as it was.
//
//	V6 INIT:  V4 SYN -> ESTABLISHED (TCP_EST); V6 SYN -> lifetime TCP_TRANS
//	V4 INIT:  V6 SYN -> ESTABLISHED (TCP_EST); V4 SYN -> lifetime TCP_INCOMING_SYN
//	ESTABLISHED: V4 FIN -> V4 FIN RCV; V6 FIN -> V6 FIN RCV; RST -> TRANS
//	          (TCP_TRANS); anything else refreshes TCP_EST
//	V4 FIN RCV: V6 FIN -> V4 FIN + V6 FIN RCV (TCP_TRANS); else TCP_EST
//	V6 FIN RCV: V4 FIN -> V4 FIN + V6 FIN RCV (TCP_TRANS); else TCP_EST
//	V4 FIN + V6 FIN RCV: translated, lifetime not extended
//	TRANS:    RST keeps the lifetime; anything else -> ESTABLISHED (TCP_EST)
//
// A RST in a FIN state moves to TRANS as in ESTABLISHED (the connection is
// gone; RFC 6146 leaves this case implicit, Jool does the same).
func tcpStep(st TCPState, exp int64, from6 bool, flags uint8, now int64, p *params) (TCPState, int64) {
	syn := flags&nat64.TCPSyn != 0 && flags&nat64.TCPRst == 0
	fin := flags&nat64.TCPFin != 0
	rst := flags&nat64.TCPRst != 0
	switch st {
	case V6Init:
		if syn && !from6 {
			return Established, now + p.tcpEst
		}
		if syn && from6 {
			return V6Init, now + p.tcpTrans
		}
		return st, exp
	case V4Init:
		if syn && from6 {
			return Established, now + p.tcpEst
		}
		if syn && !from6 {
			return V4Init, now + p.tcpSyn
		}
		return st, exp
	case Established:
		switch {
		case rst:
			return Trans, now + p.tcpTrans
		case fin && from6:
			return V6FinRcv, now + p.tcpEst
		case fin:
			return V4FinRcv, now + p.tcpEst
		}
		return st, now + p.tcpEst
	case V4FinRcv, V6FinRcv:
		switch {
		case rst:
			return Trans, now + p.tcpTrans
		case fin && from6 && st == V4FinRcv, fin && !from6 && st == V6FinRcv:
			return V4V6FinRcv, now + p.tcpTrans
		}
		return st, now + p.tcpEst
	case V4V6FinRcv:
		return st, exp
	case Trans:
		if rst {
			return st, exp
		}
		return Established, now + p.tcpEst
	}
	return st, exp
}
