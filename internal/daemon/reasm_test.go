package daemon

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/tunio"
	"github.com/nat64kit/nat64kit/internal/tunio/tuntest"
	"github.com/nat64kit/nat64kit/internal/xlat"
)

// icmpPayload makes n bytes of echo data.
func icmpPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 13)
	}
	return b
}

// echoFrags6 is an ICMPv6 echo request from client to synth with data,
// in IPv6 fragments of at most 1448 bytes of data each (a 1500-byte link).
func echoFrags6(id uint16, data []byte, fragID uint32) [][]byte {
	icmp := make([]byte, 8+len(data))
	icmp[0] = 128
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], 1)
	copy(icmp[8:], data)
	s, d := client.Addr().As16(), synth.Addr().As16()
	sum := checksum(checksum(0, s[:]), d[:]) + uint32(len(icmp)) + 58
	binary.BigEndian.PutUint16(icmp[2:], fold(checksum(sum, icmp)))
	var frags [][]byte
	for off := 0; off < len(icmp); off += 1448 {
		end := min(off+1448, len(icmp))
		p := make([]byte, 48+end-off)
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(8+end-off))
		p[6], p[7] = 44, 64
		copy(p[8:], s[:])
		copy(p[24:], d[:])
		p[40] = 58
		fo := uint16(off)
		if end < len(icmp) {
			fo |= 1
		}
		binary.BigEndian.PutUint16(p[42:], fo)
		binary.BigEndian.PutUint32(p[44:], fragID)
		copy(p[48:], icmp[off:end])
		frags = append(frags, p)
	}
	return frags
}

// echoReplyFrags4 is the IPv4 echo reply from server to dst, in IPv4
// fragments of 1480 bytes of data.
func echoReplyFrags4(dst netip.Addr, id uint16, data []byte, ipID uint16) [][]byte {
	icmp := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], 1)
	copy(icmp[8:], data)
	binary.BigEndian.PutUint16(icmp[2:], fold(checksum(0, icmp)))
	s, d := server.Addr().As4(), dst.As4()
	var frags [][]byte
	for off := 0; off < len(icmp); off += 1480 {
		end := min(off+1480, len(icmp))
		p := make([]byte, 20+end-off)
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:], ipID)
		fo := uint16(off / 8)
		if end < len(icmp) {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(p[6:], fo)
		p[8], p[9] = 64, 1
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		binary.BigEndian.PutUint16(p[10:], fold(checksum(0, p[:20])))
		copy(p[20:], icmp[off:end])
		frags = append(frags, p)
	}
	return frags
}

// waitHeld waits until the workers have taken n fragments into reassembly.
func waitHeld(t *testing.T, d *Daemon, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var c xlat.Counters
		var b [numBuckets]uint64
		for _, w := range d.workers {
			w.snapshot(&c, &b)
		}
		if c.FragmentsHeld >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d fragments held, want %d (drops %v)", c.FragmentsHeld, n, (backend{d}).Stats().Drops)
		}
		time.Sleep(time.Millisecond)
	}
}

// The kernel may hand the fragments of one datagram to different TUN
// queues (see xlat.Fragments): here the first and last fragments of a
// ping -s 3000 reach queue 0 and the middle one queue 1, and the reply's
// the other way round; each datagram is reassembled, translated whole
// and sent as fragments by the worker that got its last fragment.
func TestDaemonReassemblesAcrossQueues(t *testing.T) {
	mems := []*tuntest.Memory{tuntest.NewMemory("nat64-t", 1500, 16, 64), tuntest.NewMemory("nat64-t", 1500, 16, 64)}
	d, _, _ := startMemoryWith(t, "203.0.113.1/32", Options{Log: slog.New(slog.DiscardHandler), Devices: []tunio.Device{mems[0], mems[1]}})
	data := icmpPayload(3000)

	req := echoFrags6(0x77, data, 0xabcd0001)
	mems[0].Inject(req[0])
	mems[0].Inject(req[2])
	waitHeld(t, d, 2)
	mems[1].Inject(req[1])
	var whole []byte
	var pool4 netip.Addr
	for i := range 3 {
		p := next(t, mems[1])
		if p[0]>>4 != 4 || p[9] != 1 || len(p) > 1500 {
			t.Fatalf("IPv4 fragment %d: % x", i, p[:20])
		}
		if off := int(binary.BigEndian.Uint16(p[6:])&0x1fff) * 8; off != len(whole) {
			t.Fatalf("IPv4 fragment %d at %d, want %d", i, off, len(whole))
		}
		pool4 = netip.AddrFrom4([4]byte(p[12:16]))
		whole = append(whole, p[20:]...)
	}
	if len(whole) != 3008 || whole[0] != 8 || fold(checksum(0, whole)) != 0 || !bytes.Equal(whole[8:], data) {
		t.Fatalf("reassembled IPv4 echo request wrong (%d bytes, type %d)", len(whole), whole[0])
	}
	if mems[0].Pending() != 0 {
		t.Fatal("the queue that held fragments sent something")
	}

	id4 := binary.BigEndian.Uint16(whole[4:])
	reply := echoReplyFrags4(pool4, id4, data, 0x5151)
	mems[1].Inject(reply[1])
	mems[1].Inject(reply[2])
	waitHeld(t, d, 4)
	mems[0].Inject(reply[0])
	whole = whole[:0]
	for len(whole) < 3008 {
		p := next(t, mems[0])
		if p[0]>>4 != 6 || p[6] != 44 || len(p) > 1280 {
			t.Fatalf("not an IPv6 fragment of at most 1280 bytes: % x", p[:48])
		}
		whole = append(whole, p[48:]...)
	}
	s, dst := synth.Addr().As16(), client.Addr().As16()
	sum := checksum(checksum(0, s[:]), dst[:]) + uint32(len(whole)) + 58
	if len(whole) != 3008 || whole[0] != 129 || binary.BigEndian.Uint16(whole[4:]) != 0x77 || fold(checksum(sum, whole)) != 0 || !bytes.Equal(whole[8:], data) {
		t.Fatalf("reassembled IPv6 echo reply wrong (%d bytes, type %d)", len(whole), whole[0])
	}
	st := (backend{d}).Stats()
	if st.Packets["6to4/icmp"] != 3 || st.Packets["4to6/icmp"] != 3 {
		t.Errorf("packets %v, want 3 fragments each way", st.Packets)
	}
}

// waitDrop waits until the instance has counted n drops of reason.
func waitDrop(t *testing.T, d *Daemon, reason string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for (backend{d}).Stats().Drops[reason] != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d (drops %v)", reason, (backend{d}).Stats().Drops[reason], n, (backend{d}).Stats().Drops)
		}
		time.Sleep(time.Millisecond)
	}
}

// Fragments drops reach the operator, in Stats and on /metrics: an
// overlap drops the fragment held with it, and the expiry (on the
// daemon's clock, here a fake one) drops a datagram left incomplete.
func TestDaemonCountsReassemblyDrops(t *testing.T) {
	var clock atomic.Int64
	clock.Store(1e12)
	d, mem, _ := startMemoryWith(t, "203.0.113.1/32", Options{Log: slog.New(slog.DiscardHandler), Clock: clock.Load})
	req := echoFrags6(0x78, icmpPayload(3000), 1)
	mem.Inject(req[0])
	overlapping := append([]byte(nil), req[1]...)
	binary.BigEndian.PutUint16(overlapping[42:], uint16(1440)|1) // 8 bytes over req[0]
	mem.Inject(overlapping)
	waitDrop(t, d, "reassembly_overlap", 2)

	mem.Inject(echoFrags6(0x78, icmpPayload(3000), 2)[0])
	waitHeld(t, d, 2)
	clock.Add(int64(2*time.Second) - 1)
	d.expire()
	if n := (backend{d}).Stats().Drops["reassembly_timeout"]; n != 0 {
		t.Fatalf("timed out before 2 s: %d", n)
	}
	clock.Add(1)
	d.expire()
	waitDrop(t, d, "reassembly_timeout", 1)

	resp, err := http.Get("http://" + d.control.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`nat64ctl_drops_total{reason="reassembly_overlap"} 2`, `nat64ctl_drops_total{reason="reassembly_timeout"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The same for TCP and UDP, which are translated fragment by fragment: a
// later fragment on another queue than its first still finds the first
// one's translation.
func TestDaemonFollowsFragmentsAcrossQueues(t *testing.T) {
	mems := []*tuntest.Memory{tuntest.NewMemory("nat64-t", 1500, 16, 64), tuntest.NewMemory("nat64-t", 1500, 16, 64)}
	d, _, _ := startMemoryWith(t, "203.0.113.1/32", Options{Log: slog.New(slog.DiscardHandler), Devices: []tunio.Device{mems[0], mems[1]}})
	whole := udp6(client, synth, string(icmpPayload(2000)))
	udp := whole[40:]
	for i, c := range [][2]int{{0, 1448}, {1448, len(udp)}} {
		p := make([]byte, 48+c[1]-c[0])
		copy(p, whole[:40])
		binary.BigEndian.PutUint16(p[4:], uint16(8+c[1]-c[0]))
		p[6], p[40] = 44, 17
		fo := uint16(c[0])
		if c[1] < len(udp) {
			fo |= 1
		}
		binary.BigEndian.PutUint16(p[42:], fo)
		binary.BigEndian.PutUint32(p[44:], 0x5eed)
		copy(p[48:], udp[c[0]:c[1]])
		mems[i].Inject(p)
		out := next(t, mems[i])
		if out[0]>>4 != 4 || out[9] != 17 || int(binary.BigEndian.Uint16(out[6:])&0x1fff)*8 != c[0] || netip.AddrFrom4([4]byte(out[16:20])) != server.Addr() {
			t.Fatalf("fragment at %d on queue %d translated to % x (drops %v)", c[0], i, out[:20], (backend{d}).Stats().Drops)
		}
	}
}
