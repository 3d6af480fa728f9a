package xlat

import (
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// flood sends n copies of pkt at time now through one buffer and Output,
// as the worker does, and returns how many packets came out.
func flood(tr *Translator, pkt []byte, n int, now int64, buf []byte, out *Output) int {
	sent := 0
	for range n {
		copy(buf[64:], pkt)
		tr.Process(buf, 64, len(pkt), now, out)
		sent += out.N
	}
	return sent
}

func ttl1UDP4() []byte {
	p := udp4(16, false)
	p[8] = 1
	setIPv4HeaderChecksum(p)
	return p
}

// The errors the translator originates pass one token bucket with the
// kernel's defaults (1000/s, bursts of 50), on the clock Process is given:
// a flood at one instant gets exactly the burst, then the rate as the
// clock advances, and every error not sent is counted as suppressed.
func TestICMPErrorRateLimit(t *testing.T) {
	tr := newTestTranslator(t, nil)
	buf, out := make([]byte, 2048), NewOutput()
	pkt := ttl1UDP4()
	packets := 0

	// 100 K packets at one instant: the burst, and nothing more.
	const n = 100_000
	if got := flood(tr, pkt, n, now0, buf, out); got != nat64.DefaultICMPErrorBurst {
		t.Fatalf("flood at one instant: %d errors, want the burst %d", got, nat64.DefaultICMPErrorBurst)
	}
	packets += n
	if tr.Counters.ICMPErrors != 50 || tr.Counters.ICMPErrorsSuppressed != n-50 {
		t.Fatalf("counters: %d sent, %d suppressed; want 50 and %d", tr.Counters.ICMPErrors, tr.Counters.ICMPErrorsSuppressed, n-50)
	}

	// Then 10 packets every millisecond for 3 s: one token a millisecond,
	// exactly the rate each second.
	now := now0
	for s := range 3 {
		errors := 0
		for range 1000 {
			now += int64(time.Millisecond)
			errors += flood(tr, pkt, 10, now, buf, out)
			packets += 10
		}
		if errors != nat64.DefaultICMPErrorRate {
			t.Fatalf("second %d: %d errors, want %d", s+1, errors, nat64.DefaultICMPErrorRate)
		}
	}

	// ICMPv4 and ICMPv6 errors share the bucket: it is empty now, so a
	// hop-limit-1 IPv6 packet at the same instant gets no error either.
	p6 := udp6(16)
	p6[7] = 1
	if got := flood(tr, p6, 1, now, buf, out); got != 0 {
		t.Fatalf("ICMPv6 error sent from an empty bucket")
	}
	packets++

	// A long pause fills the bucket to the burst, not beyond.
	now += int64(10 * time.Second)
	if got := flood(tr, pkt, 1000, now, buf, out); got != 50 {
		t.Fatalf("after 10 s idle: %d errors, want the burst 50", got)
	}
	packets += 1000

	c := &tr.Counters
	if c.ICMPErrors+c.ICMPErrorsSuppressed != uint64(packets) {
		t.Errorf("%d sent + %d suppressed != %d packets", c.ICMPErrors, c.ICMPErrorsSuppressed, packets)
	}
	if c.Drops[nat64.TTLExpired] != uint64(packets) {
		t.Errorf("ttl_expired %d, want %d: suppression must not change how the drop is counted", c.Drops[nat64.TTLExpired], packets)
	}
	if c.ICMPErrors != 50+3000+50 {
		t.Errorf("%d errors sent, want %d", c.ICMPErrors, 50+3000+50)
	}
}

// Errors the translator only translates are not its own: they pass even
// when its bucket is empty, and are not counted as originated.
func TestTranslatedErrorsNotLimited(t *testing.T) {
	tr := newTestTranslator(t, nil)
	primeSyn(t, tr)
	buf, out := make([]byte, 2048), NewOutput()
	flood(tr, ttl1UDP4(), 1000, now0, buf, out)
	sent := tr.Counters.ICMPErrors
	for i := range 100 {
		r, res := run(tr, icmp4Err(3, 1, 0, emittedSyn4()), now0)
		if r != nat64.Translated || len(res) != 1 {
			t.Fatalf("translated error %d: %v, %d packets", i, r, len(res))
		}
	}
	if tr.Counters.ICMPErrors != sent {
		t.Errorf("translated errors counted as originated")
	}
}

// icmp_error_rate and icmp_error_burst reach the bucket.
func TestICMPErrorRateConfigured(t *testing.T) {
	tr := newTestTranslator(t, func(in *testConfig) { in.ICMPErrorRate, in.ICMPErrorBurst = 10, 2 })
	buf, out := make([]byte, 2048), NewOutput()
	pkt := ttl1UDP4()
	if got := flood(tr, pkt, 100, now0, buf, out); got != 2 {
		t.Fatalf("burst: %d errors, want 2", got)
	}
	// 10 a second is one every 100 ms: 99 ms gives none, 100 ms one.
	if got := flood(tr, pkt, 100, now0+int64(99*time.Millisecond), buf, out); got != 0 {
		t.Fatalf("after 99 ms: %d errors, want 0", got)
	}
	if got := flood(tr, pkt, 100, now0+int64(100*time.Millisecond), buf, out); got != 1 {
		t.Fatalf("after 100 ms: %d errors, want 1", got)
	}
	// A clock that goes back adds nothing.
	if got := flood(tr, pkt, 100, now0, buf, out); got != 0 {
		t.Fatalf("clock back: %d errors, want 0", got)
	}
}

// Held SYNs answered after their 6 s pass the same bucket, on the time
// Expire was given.
func TestPortUnreachableLimited(t *testing.T) {
	tr := newTestTranslator(t, func(in *testConfig) { in.ICMPErrorRate, in.ICMPErrorBurst = 1, 3 })
	syn := fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 1, true, tcpSeg(portZ, 9999, nat64.TCPSyn, nil)))
	out := NewOutput()
	sent := 0
	for range 10 {
		if tr.PortUnreachable(syn, now0, out) {
			sent++
		}
	}
	if sent != 3 || out.N != 3 || tr.Counters.ICMPErrorsSuppressed != 7 {
		t.Fatalf("%d Port Unreachable sent (%d in out), %d suppressed; want 3, 3, 7", sent, out.N, tr.Counters.ICMPErrorsSuppressed)
	}
	if !tr.PortUnreachable(syn, now0+int64(time.Second), out) {
		t.Fatal("no token a second later")
	}
	if ic := packet.ICMPv4(out.Packets[3][20:]); ic.Type() != packet.ICMPv4DestUnreach || ic.Code() != packet.ICMPv4CodePortUnr {
		t.Fatalf("got ICMP %d/%d", ic.Type(), ic.Code())
	}
}

// The error path, limited or not, allocates nothing.
func TestICMPErrorZeroAllocs(t *testing.T) {
	tr := newTestTranslator(t, nil)
	buf, out := make([]byte, 2048), NewOutput()
	pkt := ttl1UDP4()
	now := now0
	allocs := testing.AllocsPerRun(1000, func() {
		now += int64(time.Microsecond * 500) // half of the packets get an error
		copy(buf[64:], pkt)
		tr.Process(buf, 64, len(pkt), now, out)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
	if tr.Counters.ICMPErrors == 0 || tr.Counters.ICMPErrorsSuppressed == 0 {
		t.Errorf("both paths should have run: %d sent, %d suppressed", tr.Counters.ICMPErrors, tr.Counters.ICMPErrorsSuppressed)
	}
}

// The Destination Unreachable for packets without a binding is an error
// the translator originates like any other: a flood of them gets the burst,
// and the drops stay counted as no_binding.
func TestNoBindingErrorsLimited(t *testing.T) {
	tr := newTestTranslator(t, nil)
	buf, out := make([]byte, 2048), NewOutput()
	pkt := fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 1, false, udpDgram(portZudp, 9999, pattern(16))))
	const n = 10_000
	if got := flood(tr, pkt, n, now0, buf, out); got != nat64.DefaultICMPErrorBurst {
		t.Fatalf("%d errors for %d packets at one instant, want the burst %d", got, n, nat64.DefaultICMPErrorBurst)
	}
	c := &tr.Counters
	if c.Drops[nat64.NoBinding] != n || c.ICMPErrors != 50 || c.ICMPErrors+c.ICMPErrorsSuppressed != n {
		t.Errorf("no_binding %d, sent %d, suppressed %d; want %d, 50, %d", c.Drops[nat64.NoBinding], c.ICMPErrors, c.ICMPErrorsSuppressed, n, n-50)
	}
}

// Translators made with one Config.ErrorLimit draw on one bucket: the
// instance's rate holds whichever worker a flood lands on.
func TestErrorLimitSharedByTranslators(t *testing.T) {
	shared := NewErrorLimit(100, 10)
	share := func(in *testConfig) { in.ErrorLimit = shared }
	a, b := newTestTranslator(t, share), newTestTranslator(t, share)
	now := int64(time.Hour)
	for i := range 10 {
		tr := a
		if i%2 == 1 {
			tr = b
		}
		if !tr.errLimit.allow(now) {
			t.Fatalf("error %d of a burst of 10 refused", i+1)
		}
	}
	if a.errLimit.allow(now) || b.errLimit.allow(now) {
		t.Fatal("an 11th error in the same instant allowed: the translators do not share the bucket")
	}
	if !b.errLimit.allow(now + int64(10*time.Millisecond)) {
		t.Fatal("no token after 10 ms at 100/s")
	}
}
