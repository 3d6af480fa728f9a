package daemon

// The daemon over an in-memory TUN (tuntest): translation, drops, reload,
// health, allocations, pipelining, mapping logs and error counters. Long
// because it is the one place where all the translator's parts meet.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/tunio"
	"github.com/nat64kit/nat64kit/internal/tunio/tuntest"
)

// freePort finds a loopback port for the control API (the config refuses
// port 0, so the test asks the kernel for one first).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const configFmt = `[[instance]]
name    = "nat64-t"
prefix  = "64:ff9b:1::/96"
pool4   = [%q]
control = "127.0.0.1:%d"
`

// startMemory runs a daemon on an in-memory TUN queue: the real
// translator, state table and control API, without the kernel.
func startMemory(t *testing.T, pool4 string) (*Daemon, *tuntest.Memory, string) {
	t.Helper()
	return startMemoryWith(t, pool4, Options{Log: slog.New(slog.DiscardHandler)})
}

func startMemoryWith(t *testing.T, pool4 string, opts Options) (*Daemon, *tuntest.Memory, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nat64.toml")
	port := freePort(t)
	if err := os.WriteFile(cfg, fmt.Appendf(nil, configFmt, pool4, port), 0o644); err != nil {
		t.Fatal(err)
	}
	mem := tuntest.NewMemory("nat64-t", 1500, 16, 64)
	if opts.Devices == nil {
		opts.Devices = []tunio.Device{mem}
	}
	opts.ConfigPath, opts.ExpireEvery = cfg, time.Hour
	d, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return d, mem, cfg
}

func checksum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udp6 builds an IPv6 UDP packet with a correct checksum.
func udp6(src, dst netip.AddrPort, payload string) []byte {
	p := make([]byte, 40+8+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
	p[6], p[7] = 17, 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	u := p[40:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	sum := checksum(0, p[8:40])
	sum += uint32(len(u)) + 17
	binary.BigEndian.PutUint16(u[6:], fold(checksum(sum, u)))
	return p
}

// udp4 builds an IPv4 UDP packet with correct checksums.
func udp4(src, dst netip.AddrPort, payload string) []byte {
	p := make([]byte, 20+8+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, 17
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], fold(checksum(0, p[:20])))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	sum := checksum(0, p[12:20]) + uint32(len(u)) + 17
	binary.BigEndian.PutUint16(u[6:], fold(checksum(sum, u)))
	return p
}

func next(t *testing.T, mem *tuntest.Memory) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := mem.Next(ctx)
	if err != nil {
		t.Fatalf("nothing written: %v", err)
	}
	return append([]byte(nil), p...)
}

var (
	client = netip.MustParseAddrPort("[2001:db8::1]:5000")
	server = netip.MustParseAddrPort("198.51.100.2:53")
	synth  = netip.MustParseAddrPort("[64:ff9b:1::c633:6402]:53")
)

// A UDP exchange through the daemon: out to IPv4 from the pool4 address,
// the answer back to the IPv6 client; the control API sees the session.
func TestDaemonTranslatesUDP(t *testing.T) {
	d, mem, _ := startMemory(t, "203.0.113.1/32")
	if err := mem.Inject(udp6(client, synth, "query")); err != nil {
		t.Fatal(err)
	}
	out := next(t, mem)
	if out[0]>>4 != 4 || out[9] != 17 {
		t.Fatalf("not IPv4 UDP: % x", out)
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(out[12:16])), binary.BigEndian.Uint16(out[20:]))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(out[16:20])), binary.BigEndian.Uint16(out[22:]))
	if src.Addr() != netip.MustParseAddr("203.0.113.1") || dst != server || string(out[28:]) != "query" {
		t.Fatalf("translated to %s -> %s %q", src, dst, out[28:])
	}
	if fold(checksum(0, out[:20])) != 0 {
		t.Error("bad IPv4 header checksum")
	}
	if pseudo := checksum(0, out[12:20]) + uint32(len(out)-20) + 17; fold(checksum(pseudo, out[20:])) != 0 {
		t.Error("bad UDP checksum")
	}

	if err := mem.Inject(udp4(server, src, "answer")); err != nil {
		t.Fatal(err)
	}
	back := next(t, mem)
	if back[0]>>4 != 6 || netip.AddrFrom16([16]byte(back[24:40])) != client.Addr() ||
		binary.BigEndian.Uint16(back[42:]) != client.Port() || netip.AddrFrom16([16]byte(back[8:24])) != synth.Addr() || string(back[48:]) != "answer" {
		t.Fatalf("reply translated wrong: % x", back)
	}

	c := control.NewClient(d.control.Addr())
	ss, err := c.Sessions(context.Background(), "udp")
	if err != nil || len(ss) != 1 || ss[0].IPv6Src != client || ss[0].IPv4Dst != server || ss[0].IPv4Src != src || ss[0].IPv6Dst != synth {
		t.Errorf("sessions: %v %+v", err, ss)
	}
	st, err := c.Stats(context.Background())
	if err != nil || st.Packets["6to4/udp"] != 1 || st.Packets["4to6/udp"] != 1 || st.Sessions["udp"] != 1 || st.Pool4PortsInUse != 1 || !st.Healthy {
		t.Errorf("stats: %v %+v", err, st)
	}
	if err := c.Healthy(context.Background()); err != nil {
		t.Error(err)
	}
}

// Unsolicited IPv4 traffic has no binding: dropped and counted by name.
func TestDaemonCountsDrops(t *testing.T) {
	d, mem, _ := startMemory(t, "203.0.113.1/32")
	mem.Inject(udp4(server, netip.MustParseAddrPort("203.0.113.1:4000"), "hello?"))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := (backend{d}).Stats(); st.Drops["no_binding"] == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("drops: %v", (backend{d}).Stats().Drops)
}

func TestDaemonReload(t *testing.T) {
	d, mem, cfg := startMemory(t, "203.0.113.1/32")
	mem.Inject(udp6(client, synth, "q"))
	next(t, mem)

	// An invalid file is refused and the running config kept.
	good, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(good), "/96", "/80", 1)), 0o644)
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "instance[0].prefix") {
		t.Errorf("invalid reload: %v", err)
	}
	// A pool4 extended with a static entry applies; the session survives.
	os.WriteFile(cfg, []byte(strings.Replace(string(good), `"203.0.113.1/32"]`, `"203.0.113.1/32", "203.0.113.9/32"]`, 1)+
		"[[instance.static]]\nproto = \"tcp\"\nipv6 = \"[2001:db8:10::80]:80\"\nipv4 = \"203.0.113.9:8080\"\n"), 0o644)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	b := backend{d}
	if n := len(b.Sessions("udp")); n != 1 {
		t.Errorf("%d UDP sessions after reload, want the one kept", n)
	}
	if bib := b.BIB("tcp"); len(bib) != 1 || !bib[0].Static || bib[0].IPv4 != netip.MustParseAddrPort("203.0.113.9:8080") {
		t.Errorf("static entry not applied: %+v", bib)
	}
	// The prefix is the identity of the instance: changing it needs a restart.
	os.WriteFile(cfg, []byte(strings.Replace(string(good), "64:ff9b:1::", "64:ff9b:2::", 1)), 0o644)
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("prefix change: %v", err)
	}
}

func TestDaemonStopIsUnhealthy(t *testing.T) {
	d, _, _ := startMemory(t, "203.0.113.1/32")
	c := control.NewClient(d.control.Addr())
	if err := c.Healthy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Healthy(context.Background()); err == nil {
		t.Error("still answering after Stop")
	}
}

// The worker's steady state allocates nothing: read, translate, write;
// pipelined too, where batches cross to the writer goroutine and back.
func TestWorkerAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	d, mem, _ := startMemory(t, "203.0.113.1/32")
	pkt := udp6(client, synth, "steady")
	mem.Inject(pkt)
	next(t, mem)
	// Drive the worker's batch handling directly, on a batch filled by
	// hand, so the measurement holds only the packet path.
	d.Stop()
	for _, pipelined := range []bool{false, true} {
		dev := tuntest.NewMemory("x", 1500, 16, 1024)
		w := newWorker(dev, d.workers[0].tr, 1600, d.now, d.log, pipelined)
		if pipelined {
			defer w.startWriter()()
		}
		allocs := testing.AllocsPerRun(200, func() {
			copy(w.slot.batch.Bufs[0][tunio.Offset:], pkt)
			w.slot.batch.Sizes[0] = len(pkt)
			w.handle(1)
			for dev.Pending() > 0 {
				dev.ReadWritten(make([]byte, 0))
			}
		})
		if allocs != 0 {
			t.Errorf("pipelined %v: %v allocations per packet", pipelined, allocs)
		}
	}
}

// Pipelined, every packet still comes out translated and in the order it
// went in.
func TestDaemonPipelineKeepsOrder(t *testing.T) {
	_, mem, _ := startMemoryWith(t, "203.0.113.1/32", Options{Pipeline: true, Log: slog.New(slog.DiscardHandler)})
	const total, burst = 600, 50
	for sent := 0; sent < total; sent += burst {
		for i := sent; i < sent+burst; i++ {
			if err := mem.Inject(udp6(client, synth, fmt.Sprintf("%04d", i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := sent; i < sent+burst; i++ {
			out := next(t, mem)
			if out[0]>>4 != 4 {
				t.Fatalf("packet %d not translated to IPv4", i)
			}
			if got, want := string(out[28:]), fmt.Sprintf("%04d", i); got != want {
				t.Fatalf("packet %q came out where %q was expected", got, want)
			}
		}
	}
}

// syncBuffer is a log sink the daemon's goroutines may write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RFC 6888 mapping logs: one line when the BIB entry and the session are
// made and when they expire, with both tuples.
func TestDaemonMappingLog(t *testing.T) {
	var logs syncBuffer
	var clock atomic.Int64
	d, mem, _ := startMemoryWith(t, "203.0.113.1/32", Options{
		MappingLog: true,
		Clock:      clock.Load,
		Log:        slog.New(slog.NewTextHandler(&logs, nil)),
	})
	mem.Inject(udp6(client, synth, "q"))
	out := next(t, mem)
	pool := netip.AddrPortFrom(netip.AddrFrom4([4]byte(out[12:16])), binary.BigEndian.Uint16(out[20:]))
	for _, want := range []string{
		"event=bib-created proto=udp ipv6=[2001:db8::1]:5000 ipv4=" + pool.String(),
		"event=session-created proto=udp ipv6=[2001:db8::1]:5000 ipv4=" + pool.String() + " remote=198.51.100.2:53",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "removed") {
		t.Fatal("removed before expiry")
	}
	clock.Store(int64(6 * time.Minute)) // past the UDP timeout of 5 min
	d.expire()
	for _, want := range []string{"event=session-removed proto=udp", "event=bib-removed proto=udp"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q after expiry in\n%s", want, logs.String())
		}
	}
	if n := len(backend{d}.Sessions("")); n != 0 {
		t.Errorf("%d sessions after expiry", n)
	}
}

// failingOnce is a device whose first Read fails, as a kernel TUN does for
// a super-packet with more segments than the batch has buffers.
type failingOnce struct {
	*tuntest.Memory
	failed atomic.Bool
}

func (f *failingOnce) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if !f.failed.Swap(true) {
		return 0, errors.New("too many segments")
	}
	return f.Memory.Read(bufs, sizes, offset)
}

// A failed read is counted as a drop and the worker goes on reading.
func TestDaemonCountsReadErrors(t *testing.T) {
	mem := tuntest.NewMemory("nat64-t", 1500, 16, 64)
	d, _, _ := startMemoryWith(t, "203.0.113.1/32", Options{
		Log:     slog.New(slog.DiscardHandler),
		Devices: []tunio.Device{&failingOnce{Memory: mem}},
	})
	if err := mem.Inject(udp6(client, synth, "after")); err != nil {
		t.Fatal(err)
	}
	next(t, mem)
	if n := (backend{d}).Stats().Drops["tun_read_error"]; n != 1 {
		t.Fatalf("tun_read_error = %d, want 1", n)
	}
}

// The ICMP errors the translator originates and the hairpinned packets
// reach the operator: in Stats and on /metrics.
func TestDaemonReportsICMPErrorsAndHairpins(t *testing.T) {
	d, mem, _ := startMemory(t, "203.0.113.1/32")
	expired := udp6(client, synth, "ttl")
	expired[7] = 1 // hop limit 1: Time Exceeded back to the client
	if err := mem.Inject(expired); err != nil {
		t.Fatal(err)
	}
	if e := next(t, mem); e[0]>>4 != 6 || e[6] != 58 || e[40] != 3 {
		t.Fatalf("want ICMPv6 Time Exceeded, got % x", e[:48])
	}
	// To the IPv6 face of a pool4 address that another IPv6 host holds
	// (here through a static entry): straight back to the IPv6 side.
	other := netip.MustParseAddrPort("[2001:db8::2]:7000")
	c := control.NewClient(d.control.Addr())
	if err := c.AddStatic(context.Background(), control.StaticEntry{Proto: "udp", IPv6: other, IPv4: netip.MustParseAddrPort("203.0.113.1:7000")}); err != nil {
		t.Fatal(err)
	}
	own := netip.MustParseAddrPort("[64:ff9b:1::cb00:7101]:7000")
	if err := mem.Inject(udp6(client, own, "loop")); err != nil {
		t.Fatal(err)
	}
	if h := next(t, mem); h[0]>>4 != 6 || netip.AddrFrom16([16]byte(h[24:40])) != other.Addr() {
		t.Fatalf("want the packet back toward %s, got % x", other, h[:40])
	}
	// Counted before sent, so both are in the counters now.
	st := (backend{d}).Stats()
	if st.ICMPErrors != 1 || st.Hairpinned != 1 {
		t.Errorf("icmp_errors_sent %d, hairpinned %d; want 1 and 1", st.ICMPErrors, st.Hairpinned)
	}
	resp, err := http.Get("http://" + d.control.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"nat64ctl_icmp_errors_sent_total 1", "nat64ctl_hairpinned_total 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A flood of hop-limit-1 packets at one instant gets the instance's burst
// of Time Exceeded (50: one bucket for all its translators), and the rest
// are counted as suppressed, in Stats and on /metrics.
func TestDaemonLimitsICMPErrors(t *testing.T) {
	d, mem, _ := startMemoryWith(t, "203.0.113.1/32", Options{Log: slog.New(slog.DiscardHandler), Clock: func() int64 { return 1e12 }})
	expired := udp6(client, synth, "ttl")
	expired[7] = 1
	const n, burst = 60, 50 // within the memory device's queue of 64
	for range n {
		if err := mem.Inject(expired); err != nil {
			t.Fatal(err)
		}
	}
	for range burst {
		if e := next(t, mem); e[0]>>4 != 6 || e[6] != 58 || e[40] != 3 {
			t.Fatalf("want ICMPv6 Time Exceeded, got % x", e[:48])
		}
	}
	// A packet that is translated, behind the flood: once it is out, the
	// worker has handled (and counted) every packet before it.
	if err := mem.Inject(udp6(client, synth, "after")); err != nil {
		t.Fatal(err)
	}
	if p := next(t, mem); p[0]>>4 != 4 || string(p[28:]) != "after" {
		t.Fatalf("want the IPv4 translation after the flood (and no more errors), got % x", p)
	}
	st := (backend{d}).Stats()
	if st.ICMPErrors != burst || st.ICMPErrorsSuppressed != n-burst || st.Drops["ttl_expired"] != n {
		t.Errorf("icmp_errors_sent %d, icmp_errors_suppressed %d, ttl_expired %d; want %d, %d, %d", st.ICMPErrors, st.ICMPErrorsSuppressed, st.Drops["ttl_expired"], burst, n-burst, n)
	}
	resp, err := http.Get("http://" + d.control.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("nat64ctl_icmp_errors_suppressed_total %d", n-burst); !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

// The translators hold lowest_ipv6_mtu and the ICMP error limit from
// Start: a reload that changes them is refused, not half applied.
func TestDaemonReloadRefusesTranslatorKeys(t *testing.T) {
	d, _, cfg := startMemory(t, "203.0.113.1/32")
	good, _ := os.ReadFile(cfg)
	for _, extra := range []string{"lowest_ipv6_mtu = 1400\n", "icmp_error_rate = 10\n", "icmp_error_burst = 5\n", "[instance.timeouts]\nfragment = \"5s\"\n"} {
		os.WriteFile(cfg, append(append([]byte(nil), good...), extra...), 0o644)
		if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
			t.Errorf("%q: reload %v, want a refusal naming the restart", extra, err)
		}
	}
	os.WriteFile(cfg, good, 0o644)
	if err := d.Reload(); err != nil {
		t.Errorf("unchanged file: %v", err)
	}
}

// An IPv4 packet to a pool4 port no BIB entry holds is dropped as
// no_binding and answered with Destination Unreachable, Host Unreachable
// (RFC 6146 §3.5.1), which counts as an error the translator sent.
func TestDaemonAnswersNoBinding(t *testing.T) {
	d, mem, _ := startMemory(t, "203.0.113.1/32")
	if err := mem.Inject(udp4(server, netip.MustParseAddrPort("203.0.113.1:4000"), "hello?")); err != nil {
		t.Fatal(err)
	}
	e := next(t, mem)
	if e[0]>>4 != 4 || e[9] != 1 || e[20] != 3 || e[21] != 1 {
		t.Fatalf("want ICMPv4 Destination Unreachable 3/1, got % x", e[:28])
	}
	if src, dst := netip.AddrFrom4([4]byte(e[12:16])), netip.AddrFrom4([4]byte(e[16:20])); src != netip.MustParseAddr("203.0.113.1") || dst != server.Addr() {
		t.Errorf("error from %s to %s, want from the pool4 address to %s", src, dst, server.Addr())
	}
	st := (backend{d}).Stats()
	if st.Drops["no_binding"] != 1 || st.ICMPErrors != 1 {
		t.Errorf("no_binding %d, icmp_errors_sent %d; want 1 and 1", st.Drops["no_binding"], st.ICMPErrors)
	}
}

// Healthy (behind /healthz and the systemd watchdog) turns false when a
// TUN worker has stopped reading, and when Run's loop has not turned for
// stallAfter expiry rounds.
func TestDaemonHealthy(t *testing.T) {
	t.Run("worker gone", func(t *testing.T) {
		d, mem, _ := startMemory(t, "203.0.113.1/32")
		if !d.Healthy() {
			t.Fatal("unhealthy after Start")
		}
		mem.Close() // the worker's next read ends it
		deadline := time.Now().Add(10 * time.Second)
		for d.Healthy() {
			if time.Now().After(deadline) {
				t.Fatal("still healthy with its only worker gone")
			}
			runtime.Gosched()
		}
		if err := control.NewClient(d.control.Addr()).Healthy(context.Background()); err == nil {
			t.Error("/healthz answers 200 with no worker")
		}
	})
	t.Run("loop stalled", func(t *testing.T) {
		d, _, _ := startMemory(t, "203.0.113.1/32")
		d.markTick()
		if !d.Healthy() {
			t.Fatal("unhealthy right after a tick")
		}
		// The last turn stallAfter+1 rounds (ExpireEvery is an hour here) ago.
		d.lastTick.Store(int64(time.Since(d.clockT0)) - int64((stallAfter+1)*time.Hour))
		if d.Healthy() {
			t.Error("healthy although Run's loop has not turned for", stallAfter+1, "rounds")
		}
	})
}
