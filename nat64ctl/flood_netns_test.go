package main

// Floods and exhaustion against the real `nat64ctl run` in namespaces: the
// per-source session limit, a tiny pool4, and a hop-limit-1 flood against
// the ICMP error rate limit. The flood packets are built by the test and
// sent from a raw socket in the client namespace, so their count, source
// ports and hop limit are exact; what arrived where is read from the
// kernels' own counters (the TUN device's, the client's ICMPv6 MIB) and
// compared with `nat64ctl stats --json`. That the limits let new flows in
// again once the sessions time out needs minutes of RFC 6146 timeouts, so
// it is checked in process with the daemon's clock
// (internal/daemon/limits_test.go).

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/test/netns"
	"golang.org/x/sys/unix"
)

// writeFloodConfig writes a one-instance nat64.toml with the given pool4
// entry and extra keys.
func writeFloodConfig(t *testing.T, pool4, extra string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "nat64.toml")
	body := fmt.Sprintf("[[instance]]\nname = \"nat64-t\"\nprefix = %q\npool4 = [%q]\ncontrol = \"127.0.0.1:%d\"\nfastpath = \"off\"\n%s",
		testPrefix, pool4, controlPort, extra)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rawUDP6 sends hand-built UDP datagrams from one source address.
type rawUDP6 struct {
	fd       int
	src, dst [16]byte
	buf      []byte
}

// openRawUDP6 opens, inside ns, a raw IPv6 socket for UDP bound to src,
// whose packets leave with the given hop limit; closed at cleanup.
func openRawUDP6(t *testing.T, ns *netns.NS, src, dst netip.Addr, hopLimit int) *rawUDP6 {
	t.Helper()
	r := &rawUDP6{src: src.As16(), dst: dst.As16(), buf: make([]byte, 1500)}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err != nil {
			return err
		}
		r.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: r.src}); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, hopLimit)
	})
	if err != nil {
		t.Fatalf("raw UDP socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r
}

// send sends one datagram sport -> dport with n bytes of payload and a
// right checksum.
func (r *rawUDP6) send(sport, dport uint16, n int) error {
	b := r.buf[:8+n]
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	b[6], b[7] = 0, 0
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	add(r.src[:])
	add(r.dst[:])
	sum += uint32(len(b)) + unix.IPPROTO_UDP
	add(b)
	for sum>>16 != 0 {
		sum = sum>>16 + sum&0xffff
	}
	ck := ^uint16(sum)
	if ck == 0 {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:], ck)
	return unix.Sendto(r.fd, b, 0, &unix.SockaddrInet6{Addr: r.dst})
}

// quiet polls the translator's counters until two reads in a row are
// equal (what was sent has all been processed) and returns them and when
// the first of the two was taken.
func (x *translator) quiet(t *testing.T) (control.Stats, time.Time) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	prev, at := x.stats(t), time.Now()
	for {
		cur, now := x.stats(t), time.Now()
		if sameCounters(prev, cur) {
			return cur, at
		}
		if now.After(deadline) {
			t.Fatalf("counters still moving after 20 s:\n%+v\n%+v", prev, cur)
		}
		prev, at = cur, now
	}
}

func sameCounters(a, b control.Stats) bool {
	eq := func(x, y map[string]uint64) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	return eq(a.Packets, b.Packets) && eq(a.Drops, b.Drops) && a.ICMPErrors == b.ICMPErrors && a.ICMPErrorsSuppressed == b.ICMPErrorsSuppressed
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// linkCounters are a link's kernel counters (`ip -s link`).
type linkCounters struct{ RxPackets, TxPackets, TxDropped uint64 }

func readLink(t *testing.T, ns *netns.NS, dev string) linkCounters {
	t.Helper()
	out := ns.MustExec("ip", "-j", "-s", "link", "show", "dev", dev)
	var links []struct {
		Stats64 struct {
			Rx struct{ Packets uint64 }          `json:"rx"`
			Tx struct{ Packets, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s link show %s: %v\n%s", dev, err, out)
	}
	s := links[0].Stats64
	return linkCounters{RxPackets: s.Rx.Packets, TxPackets: s.Tx.Packets, TxDropped: s.Tx.Dropped}
}

// snmp6 reads one counter of the namespace's IPv6 MIB (/proc/net/snmp6),
// e.g. Icmp6InTimeExcds: what the namespace's own stack received.
func snmp6(t *testing.T, ns *netns.NS, name string) uint64 {
	t.Helper()
	for _, line := range strings.Split(ns.MustExec("cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/net/snmp6 of %s", name, ns.Name)
	return 0
}

// udpEcho sends msg from src (any port) to dst and waits for the echo,
// up to tries times.
func udpEcho(ns *netns.NS, src netip.Addr, dst netip.AddrPort, msg string, tries int) error {
	var conn *net.UDPConn
	err := ns.Do(func() (err error) {
		conn, err = net.DialUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	return echoOn(conn, msg, tries)
}

func echoOn(conn *net.UDPConn, msg string, tries int) error {
	buf := make([]byte, 65536)
	var last error
	for i := 0; i < tries; i++ {
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) == msg {
			return nil
		}
		last = err
	}
	return fmt.Errorf("no echo of %q after %d tries: %v", msg, tries, last)
}

// tcpFetch opens a TCP connection from src to the HTTP server and reads
// its answer (the address the server saw).
func tcpFetch(ns *netns.NS, src netip.Addr, dst netip.AddrPort) (string, error) {
	var conn net.Conn
	err := ns.Do(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		conn, err = d.Dial("tcp6", dst.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	b, err := io.ReadAll(conn)
	return string(b), err
}

// sessionsBySource counts the sessions of each IPv6 source address.
func (x *translator) sessionsBySource(t *testing.T, proto string) map[netip.Addr]int {
	t.Helper()
	out, err := x.ctl(context.Background(), "session", "show", "--proto", proto, "--json")
	var ss []control.Session
	if err != nil || json.Unmarshal([]byte(out), &ss) != nil {
		t.Fatalf("session show: %v: %.200q", err, out)
	}
	n := map[netip.Addr]int{}
	for _, s := range ss {
		n[s.IPv6Src.Addr()]++
	}
	return n
}

// One IPv6 source opens thousands of UDP flows; it gets exactly
// max_sessions_per_source of them, every other first packet is dropped as
// session_limit, and a second source on the same client is served all
// along (UDP during the flood; ping, UDP and TCP after it).
func TestRunFloodPerSourceLimit(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireCommand(t, "ping", "iputils-ping")
	const (
		limit = 200
		flows = 3000
	)
	tp := netns.NewTopology(t)
	second := netip.MustParseAddr("2001:db8:1::3")
	tp.Client.AddAddr(tp.ClientLink, second.String()+"/64")
	x := startTranslator(t, tp, writeFloodConfig(t, testPool4+"/32", fmt.Sprintf("max_sessions_per_source = %d\n", limit)))
	server := synthesized(tp.ServerAddr)
	serveUDPEcho(t, tp.Server, tp.ServerAddr.String()+":7007")
	serveHTTP(t, tp.Server, tp.ServerAddr.String()+":8080")
	before := x.stats(t)
	tunBefore := readLink(t, tp.Translator, "nat64-t")

	// The second source's UDP echoes while the flood runs, one every 20 ms.
	flooding := make(chan struct{})
	during := make(chan [2]int)
	go func() {
		ok, tries := 0, 0
		for {
			select {
			case <-flooding:
				during <- [2]int{ok, tries}
				return
			default:
			}
			tries++
			if udpEcho(tp.Client, second, netip.AddrPortFrom(server, 7007), fmt.Sprint("during ", tries), 1) == nil {
				ok++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	flood := openRawUDP6(t, tp.Client, tp.ClientAddr, server, 64)
	start := time.Now()
	// Paced at 100 datagrams a millisecond-ish batch, so the flood lasts
	// long enough for the second source's probes to overlap it.
	for i := 0; i < flows; i++ {
		if err := flood.send(uint16(20000+i), 7007, 16); err != nil {
			t.Fatalf("flood datagram %d: %v", i, err)
		}
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	floodTime := time.Since(start)
	after, _ := x.quiet(t)
	close(flooding)
	d := <-during
	tunAfter := readLink(t, tp.Translator, "nat64-t")

	bySource := x.sessionsBySource(t, "udp")
	limited := after.Drops["session_limit"] - before.Drops["session_limit"]
	lost := tunAfter.TxDropped - tunBefore.TxDropped
	t.Logf("%d flows in %v: %d sessions for the flooding source, session_limit +%d, lost before the translator %d; second source: %d of %d echoes during the flood",
		flows, floodTime.Round(time.Millisecond), bySource[tp.ClientAddr], limited, lost, d[0], d[1])
	if bySource[tp.ClientAddr] != limit {
		t.Errorf("the flooding source has %d UDP sessions, want exactly max_sessions_per_source = %d", bySource[tp.ClientAddr], limit)
	}
	if limited > flows-limit || limited+lost < flows-limit {
		t.Errorf("session_limit counted %d (lost %d on the way); want the %d first packets beyond the limit", limited, lost, flows-limit)
	}
	for _, r := range []string{"table_full", "pool4_exhausted"} {
		if n := after.Drops[r] - before.Drops[r]; n != 0 {
			t.Errorf("%s +%d: the flood should only hit the per-source limit", r, n)
		}
	}
	if d[0] == 0 || d[0]*2 < d[1] {
		t.Errorf("the second source got %d of %d echoes during the flood", d[0], d[1])
	}

	// After the flood: the second source opens new flows of every kind,
	// the flooding one cannot.
	if err := udpEcho(tp.Client, second, netip.AddrPortFrom(server, 7007), "after", 3); err != nil {
		t.Errorf("second source, UDP after the flood: %v", err)
	}
	if _, err := tp.Client.Exec(context.Background(), "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I", second.String(), server.String()); err != nil {
		t.Errorf("second source, ping after the flood: %v", err)
	}
	if out, err := tcpFetch(tp.Client, second, netip.AddrPortFrom(server, 8080)); err != nil || !strings.Contains(out, testPool4+":") {
		t.Errorf("second source, TCP after the flood: %v %.100q", err, out)
	}
	if err := udpEcho(tp.Client, tp.ClientAddr, netip.AddrPortFrom(server, 7007), "flooder", 1); err == nil {
		t.Errorf("the flooding source opened a new flow beyond its limit")
	}
	if got := x.sessionsBySource(t, "udp"); got[tp.ClientAddr] != limit || got[second] == 0 {
		t.Errorf("sessions by source after: %v", got)
	}
}

// With a pool4 of 10 ports, new UDP flows beyond them are refused
// (pool4_exhausted, with ICMPv6 Address Unreachable to the sender), and a
// flow that had a port keeps working.
func TestRunPool4Exhaustion(t *testing.T) {
	netns.RequireRoot(t)
	const (
		ports = 10
		flows = 50
	)
	tp := netns.NewTopology(t)
	x := startTranslator(t, tp, writeFloodConfig(t, fmt.Sprintf("%s/32 2000-%d", testPool4, 2000+ports-1), ""))
	server := synthesized(tp.ServerAddr)
	serveUDPEcho(t, tp.Server, tp.ServerAddr.String()+":7007")

	// The existing flow, on a socket kept open.
	var conn *net.UDPConn
	if err := tp.Client.Do(func() (err error) {
		conn, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, 7007)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echoOn(conn, "first", 3); err != nil {
		t.Fatal(err)
	}
	before := x.stats(t)
	unreachBefore := snmp6(t, tp.Client, "Icmp6InDestUnreachs")
	flood := openRawUDP6(t, tp.Client, tp.ClientAddr, server, 64)
	for i := 0; i < flows; i++ {
		if err := flood.send(uint16(30000+i), 7007, 8); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := x.quiet(t)
	exhausted := after.Drops["pool4_exhausted"] - before.Drops["pool4_exhausted"]
	unreach := snmp6(t, tp.Client, "Icmp6InDestUnreachs") - unreachBefore
	t.Logf("%d new flows on %d ports: udp BIB %d, pool4_exhausted +%d, Destination Unreachable received %d, ports in use %d of %d",
		flows, ports, after.BIBEntries["udp"], exhausted, unreach, after.Pool4PortsInUse, after.Pool4Ports)
	if after.BIBEntries["udp"] != ports {
		t.Errorf("udp BIB entries %d, want every one of the %d ports taken", after.BIBEntries["udp"], ports)
	}
	if exhausted != flows-(ports-1) {
		t.Errorf("pool4_exhausted +%d, want %d (the flows beyond the %d free ports)", exhausted, flows-(ports-1), ports-1)
	}
	if unreach == 0 || unreach > exhausted {
		t.Errorf("the sender received %d Destination Unreachable for %d refused flows", unreach, exhausted)
	}
	if err := echoOn(conn, "still here", 3); err != nil {
		t.Errorf("the flow that had a port: %v", err)
	}
	if err := udpEcho(tp.Client, tp.ClientAddr, netip.AddrPortFrom(server, 7007), "new", 1); err == nil {
		t.Errorf("a new flow got through a full pool4")
	}
}

// 100 000 datagrams reach the translator with hop limit 1 (sent with 2,
// the translator namespace's kernel forwards them into the TUN). Every
// one is dropped as ttl_expired and either answered with Time Exceeded
// or refused by the limit; the client receives no more than
// icmp_error_rate x elapsed + icmp_error_burst of them; and every packet
// the TUN handed over is counted exactly once. (One bucket serves all the
// instance's workers, so the flood gets the whole rate whichever queue it
// lands on.)
func TestRunHopLimitFloodRateLimited(t *testing.T) {
	netns.RequireRoot(t)
	const (
		packets = 100_000
		rate    = 300
		burst   = 30
	)
	tp := netns.NewTopology(t)
	x := startTranslator(t, tp, writeFloodConfig(t, testPool4+"/32", fmt.Sprintf("icmp_error_rate = %d\nicmp_error_burst = %d\n", rate, burst)))
	server := synthesized(tp.ServerAddr)
	flood := openRawUDP6(t, tp.Client, tp.ClientAddr, server, 2)

	before := x.stats(t)
	tunBefore := readLink(t, tp.Translator, "nat64-t")
	recvBefore := snmp6(t, tp.Client, "Icmp6InTimeExcds")
	start := time.Now()
	for i := 0; i < packets; i++ {
		// Source ports vary so the flood spreads over both TUN queues.
		if err := flood.send(uint16(10000+i%1000), 9, 0); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		// Paced to about a second and a half, so the refill, not the
		// burst, decides the count.
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
	}
	sent := time.Since(start)
	after, quietAt := x.quiet(t)
	elapsed := quietAt.Sub(start)
	tunAfter := readLink(t, tp.Translator, "nat64-t")
	received := snmp6(t, tp.Client, "Icmp6InTimeExcds") - recvBefore

	expired := after.Drops["ttl_expired"] - before.Drops["ttl_expired"]
	errs := after.ICMPErrors - before.ICMPErrors
	suppressed := after.ICMPErrorsSuppressed - before.ICMPErrorsSuppressed
	drops := sum(after.Drops) - sum(before.Drops)
	translated := sum(after.Packets) - sum(before.Packets)
	read := tunAfter.TxPackets - tunBefore.TxPackets
	lost := tunAfter.TxDropped - tunBefore.TxDropped
	written := tunAfter.RxPackets - tunBefore.RxPackets
	limit := rate*elapsed.Seconds() + burst
	t.Logf("%d datagrams sent in %v; TUN handed over %d, dropped %d; ttl_expired +%d = %d Time Exceeded sent + %d suppressed; TUN took back %d; client received %d in %v (limit %d/s x %.2f s + %d = %.0f; %.0f/s after the burst)",
		packets, sent.Round(time.Millisecond), read, lost, expired, errs, suppressed, written, received,
		elapsed.Round(time.Millisecond), rate, elapsed.Seconds(), burst, limit, float64(int(received)-burst)/elapsed.Seconds())

	// Every packet the kernel handed the translator is counted exactly
	// once, as translated or under one drop reason. Besides the flood the
	// kernel sends a few of its own into the TUN (its IPv6 router
	// solicitations and MLD reports), dropped under their own reasons.
	others := map[string]uint64{}
	for r, n := range after.Drops {
		if d := n - before.Drops[r]; d != 0 && r != "ttl_expired" {
			others[r] = d
		}
	}
	t.Logf("other drops in the window: %v", others)
	if drops+translated != read {
		t.Errorf("the TUN handed over %d packets, but drops +%d and translated +%d", read, drops, translated)
	}
	if expired+lost != packets || translated != 0 {
		t.Errorf("of %d sent, %d expired and %d were lost at the TUN; %d translated", packets, expired, lost, translated)
	}
	if errs+suppressed != expired {
		t.Errorf("%d errors sent + %d suppressed != %d expired", errs, suppressed, expired)
	}
	if written != errs || received != errs {
		t.Errorf("%d errors sent, the TUN took back %d, the client received %d", errs, written, received)
	}
	if float64(received) > limit {
		t.Errorf("the client received %d Time Exceeded in %v: more than %d/s + burst %d allow (%.0f)", received, elapsed, rate, burst, limit)
	}
	// And the limit does not stop errors altogether: at the least, while
	// the flood lasted, half the rate, and the burst.
	if low := float64(rate) * sent.Seconds() / 2; float64(received) < low || received < burst {
		t.Errorf("only %d Time Exceeded for a %v flood (want at least %.0f)", received, sent, low)
	}
}
