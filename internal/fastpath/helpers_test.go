package fastpath

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// The verdicts of a tc program.
const (
	actOK       = 0 // TC_ACT_OK: on to the slow path
	actShot     = 2 // TC_ACT_SHOT
	actRedirect = 7 // TC_ACT_REDIRECT: translated, back in through the ingress
)

// ethLen is the Ethernet header BPF_PROG_TEST_RUN puts in front.
const ethLen = 14

// loadForTest loads the program for BPF_PROG_TEST_RUN with the given
// limits, or skips saying why it cannot.
func loadForTest(t testing.TB, mtu, mtu4, low int) *FastPath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF program needs root (CAP_BPF)")
	}
	f, err := Load(Config{MaxSessions: 1024, MTU: mtu, IPv4MTU: mtu4, LowestIPv6MTU: low, l3Offset: ethLen})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("BPF cannot load here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// runner runs packets through a loaded program, reusing its buffers.
type runner struct {
	f       *FastPath
	in, out []byte
}

func newRunner(f *FastPath) *runner {
	return &runner{f: f, in: make([]byte, 0, 1<<17), out: make([]byte, 1<<17)}
}

// run runs the IP packet pkt through the program and returns its verdict
// and the IP packet it left (translated, or as it was). The packet's
// family is read from its first byte.
func (r *runner) run(t testing.TB, pkt []byte) (uint32, []byte) {
	t.Helper()
	return r.runAs(t, len(pkt) > 0 && pkt[0]>>4 == 6, pkt)
}

// runAs runs pkt as an IPv6 packet (or IPv4): the protocol the kernel
// gives a packet routed into the device, whatever its bytes say.
func (r *runner) runAs(t testing.TB, v6 bool, pkt []byte) (uint32, []byte) {
	t.Helper()
	r.in = r.in[:0]
	r.in = append(r.in, make([]byte, 12)...)
	etype := uint16(unix.ETH_P_IP)
	if v6 {
		etype = unix.ETH_P_IPV6
	}
	r.in = binary.BigEndian.AppendUint16(r.in, etype)
	r.in = append(r.in, pkt...)
	opts := ebpf.RunOptions{Data: r.in, DataOut: r.out}
	ret, err := r.f.objs.Translate.Run(&opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, opts.DataOut[ethLen:]
}

// tuple is an IP packet's addresses and ports (the identifier, twice, for
// ICMP echo), read with the Go translator's own parser.
type tuple struct {
	v6       bool
	proto    nat64.Proto
	src, dst [16]byte // IPv4 in the first 4 bytes
	sport    uint16
	dport    uint16
	hasL4    bool
}

func readTuple(b []byte) (tuple, bool) {
	var in packet.Info
	var tp tuple
	if len(b) == 0 {
		return tp, false
	}
	switch b[0] >> 4 {
	case 6:
		if packet.ParseIPv6(b, &in) != packet.OK {
			return tp, false
		}
		h := packet.IPv6(b)
		tp.v6, tp.src, tp.dst = true, h.Src(), h.Dst()
	case 4:
		if packet.ParseIPv4(b, &in) != packet.OK {
			return tp, false
		}
		h := packet.IPv4(b)
		s, d := h.Src(), h.Dst()
		copy(tp.src[:], s[:])
		copy(tp.dst[:], d[:])
	default:
		return tp, false
	}
	tp.proto = in.Proto
	if !in.HasL4Header() {
		return tp, true
	}
	l4 := b[in.L4Off:in.Len]
	tp.hasL4 = true
	switch in.Proto {
	case nat64.ProtoTCP, nat64.ProtoUDP:
		tp.sport, tp.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	case nat64.ProtoICMPv4, nat64.ProtoICMPv6:
		tp.sport = binary.BigEndian.Uint16(l4[4:])
		tp.dport = tp.sport
	}
	return tp, true
}

func transportOf(p nat64.Proto) nat64.Transport {
	tr, _ := nat64.TransportOf(p)
	return tr
}

// sessionOf is the session a translated pair shows: in, and what the Go
// translator made of it.
func sessionOf(in, out tuple) (Session, bool) {
	if in.v6 == out.v6 || !in.hasL4 || !out.hasL4 || !transportOf(in.proto).Valid() {
		return Session{}, false
	}
	s := Session{Proto: transportOf(in.proto)}
	if in.v6 {
		s.Src6, s.Src6Port, s.Dst6, s.Dst6Port = in.src, in.sport, in.dst, in.dport
		copy(s.Src4[:], out.src[:4])
		copy(s.Dst4[:], out.dst[:4])
		s.Src4Port, s.Dst4Port = out.sport, out.dport
	} else {
		copy(s.Src4[:], in.dst[:4])
		copy(s.Dst4[:], in.src[:4])
		s.Src4Port, s.Dst4Port = in.dport, in.sport
		s.Src6, s.Src6Port, s.Dst6, s.Dst6Port = out.dst, out.dport, out.src, out.sport
	}
	return s, true
}

// someSession is a session for an input the Go translator did not
// translate: its own side from the packet, the other side made up.
func someSession(in tuple) (Session, bool) {
	var out tuple
	out.v6, out.hasL4, out.sport, out.dport = !in.v6, true, 40000, in.dport
	if in.v6 {
		out.src = [16]byte{198, 51, 100, 1}
		out.dst = [16]byte{192, 0, 2, 33}
	} else {
		out.src = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 15: 1}
		out.dst = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 15: 5}
	}
	if in.proto == nat64.ProtoICMPv4 || in.proto == nat64.ProtoICMPv6 {
		out.dport = out.sport
	}
	return sessionOf(in, out)
}
