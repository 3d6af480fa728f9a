// Package bench holds the side-by-side benchmarks that need whole programs
// in network namespaces: the translator (kernel forwarding, TAYGA,
// nat64ctl) with iperf3. They run under `make bench` (NAT64_BENCH=1) and
// skip otherwise; figures are reported, never asserted. This file is long
// because it builds, runs and measures three peers the same way.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/test/netns"
)

const (
	prefix6  = "2001:db8:64::/96" // TAYGA refuses 64:ff9b::/16 with documentation IPv4
	server4  = "198.51.100.2"
	server6  = "2001:db8:2::2"          // the kernel-forwarding ceiling reaches the server natively
	target6  = "2001:db8:64::c633:6402" // server4 embedded in prefix6
	duration = 5 * time.Second
)

func requireBench(t *testing.T) {
	if os.Getenv("NAT64_BENCH") == "" {
		t.Skip("side-by-side benchmark: run with NAT64_BENCH=1 (make bench)")
	}
	netns.RequireRoot(t)
	netns.RequireCommand(t, "iperf3", "iperf3")
}

// path is the three-namespace line every peer is measured on.
type path struct {
	client, xlat, server *netns.NS
	peerName             string
}

func newPath(t *testing.T) *path {
	p := &path{client: netns.New(t, "bc"), xlat: netns.New(t, "bx"), server: netns.New(t, "bs")}
	netns.Veth(t, p.client, "c0", p.xlat, "xc")
	netns.Veth(t, p.xlat, "xs", p.server, "s0")
	p.client.AddAddr("c0", "2001:db8:1::2/64")
	p.xlat.AddAddr("xc", "2001:db8:1::1/64")
	p.xlat.AddAddr("xs", "198.51.100.1/24")
	p.xlat.AddAddr("xs", "2001:db8:2::1/64")
	p.server.AddAddr("s0", server4+"/24")
	p.server.AddAddr("s0", server6+"/64")
	p.client.AddRoute("default", "2001:db8:1::1", "c0")
	p.server.AddRoute("203.0.113.0/24", "198.51.100.1", "s0")
	p.server.AddRoute("default", "2001:db8:2::1", "s0")
	p.xlat.Sysctl("net.ipv4.ip_forward", "1")
	p.xlat.Sysctl("net.ipv6.conf.all.forwarding", "1")
	return p
}

type peer struct {
	name   string
	target string
	setup  func(t *testing.T, p *path) *netns.Process
}

func peers(t *testing.T) []peer {
	return []peer{
		{"kernel IPv6 forwarding (ceiling)", server6, func(*testing.T, *path) *netns.Process { return nil }},
		{"TAYGA " + debianVersion("tayga"), target6, startTayga},
		{"nat64ctl", target6, startNat64ctl("--fastpath", "off")},
		// The same daemon with each queue's reading and writing on two
		// goroutines: which of the two uses the cores better.
		{"nat64ctl --pipeline", target6, startNat64ctl("--pipeline", "--fastpath", "off")},
		// The kernel fast path in front of the user-space translator.
		{"nat64ctl fastpath", target6, startNat64ctl("--fastpath", "on")},
	}
}

// debianVersion is the installed version of a Debian package.
func debianVersion(pkg string) string {
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	return strings.TrimSpace(string(out))
}

func startTayga(t *testing.T, p *path) *netns.Process {
	netns.RequireCommand(t, "tayga", "tayga")
	dir := t.TempDir()
	conf := filepath.Join(dir, "tayga.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`tun-device nat64
ipv4-addr 203.0.113.254
ipv6-addr 2001:db8:1::3
prefix %s
dynamic-pool 203.0.113.0/25
data-dir %s
`, prefix6, dir)), 0o644)
	p.xlat.MustExec("tayga", "-c", conf, "--mktun")
	t.Cleanup(func() { p.xlat.Exec(context.Background(), "tayga", "-c", conf, "--rmtun") })
	p.xlat.MustExec("ip", "link", "set", "nat64", "up")
	p.xlat.MustExec("ip", "route", "add", "203.0.113.0/24", "dev", "nat64")
	p.xlat.MustExec("ip", "route", "add", prefix6, "dev", "nat64")
	proc := p.xlat.Start("tayga", "-c", conf, "-d")
	procs[p.peerName] = proc
	return proc
}

func startNat64ctl(args ...string) func(t *testing.T, p *path) *netns.Process {
	return func(t *testing.T, p *path) *netns.Process { return runNat64ctl(t, p, args) }
}

func runNat64ctl(t *testing.T, p *path, args []string) *netns.Process {
	bin := filepath.Join(t.TempDir(), "nat64ctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../../nat64ctl").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	conf := filepath.Join(t.TempDir(), "nat64.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[[instance]]\nname = \"nat64\"\nprefix = %q\npool4 = [\"203.0.113.0/30\"]\ncontrol = \"127.0.0.1:9164\"\nmax_sessions_per_source = 100000\n", prefix6)), 0o644)
	proc := p.xlat.Start(append([]string{bin, "run", "-c", conf}, args...)...)
	procs[p.peerName] = proc
	netns.WaitFor(t, 10*time.Second, "nat64ctl", func() error {
		_, err := p.xlat.Exec(context.Background(), bin, "stats", "--control", "127.0.0.1:9164")
		return err
	})
	return proc
}

// iperf3Result is the part of `iperf3 -J` read here.
type iperf3Result struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		Sum struct {
			Seconds     float64 `json:"seconds"`
			Packets     int64   `json:"packets"`
			LostPackets int64   `json:"lost_packets"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

func iperf(t *testing.T, p *path, target string, args ...string) iperf3Result {
	ctx, cancel := context.WithTimeout(context.Background(), duration+30*time.Second)
	defer cancel()
	all := append([]string{"iperf3", "-J", "-c", target, "-t", fmt.Sprint(int(duration.Seconds()))}, args...)
	out, err := p.client.Exec(ctx, all...)
	var r iperf3Result
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil || r.Error != "" {
		t.Errorf("%v: %v %v %s", all, err, jerr, r.Error)
	}
	return r
}

type figures struct {
	tcp1, tcp4 float64 // Gbit/s
	udp64      float64 // packets/s received
	udp1400    float64 // Gbit/s received
	// What reached the server's UDP layer, received or dropped there for a
	// full socket buffer: what the translator put through, whether or not
	// the receiving iperf3 got the CPU to read it.
	udp64Delivered   float64 // packets/s
	udp1400Delivered float64 // Gbit/s
	cpuPerGbit       float64 // CPU seconds of the translator process per Gbit (TCP, 1 stream); 0: not a process
	rssMiB           float64 // translator RSS after the runs
	sessions         int     // sessions held when rssAtLoad was read (nat64ctl only)
	rssAtLoad        float64 // MiB
	// CPU seconds of the whole machine per Gbit (TCP, 1 stream): senders,
	// receivers and the translator, wherever it runs (the fast path runs
	// in softirq context, which no process's CPU time shows).
	machinePerGbit float64
	// New flows per second through the translator (nat64ctl only).
	udpSetup, tcpSetup float64
	// The share of the translated packets the kernel fast path carried.
	fastShare float64
}

func measure(t *testing.T, pe peer) figures {
	p := newPath(t)
	p.peerName = pe.name
	if proc := pe.setup(t, p); proc != nil {
		defer proc.Stop()
	}
	srv := p.server.Start("iperf3", "-s")
	defer srv.Stop()
	netns.WaitFor(t, 10*time.Second, "a first packet through "+pe.name, func() error {
		return p.client.Ping(netip.MustParseAddr(pe.target), 1)
	})
	var f figures
	pid := 0
	if proc := procOf(pe); proc != nil {
		pid = proc.PID()
	}
	cpu0, busy0 := cpuSeconds(pid), machineBusy()
	r1 := iperf(t, p, pe.target)
	f.tcp1 = r1.End.SumReceived.BitsPerSecond / 1e9
	if f.tcp1 > 0 {
		f.machinePerGbit = (machineBusy() - busy0) / (f.tcp1 * duration.Seconds())
	}
	if pid != 0 && f.tcp1 > 0 {
		f.cpuPerGbit = (cpuSeconds(pid) - cpu0) / (f.tcp1 * duration.Seconds())
	}
	f.tcp4 = iperf(t, p, pe.target, "-P", "4").End.SumReceived.BitsPerSecond / 1e9
	f.udp64, f.udp64Delivered = udpRate(t, p, pe.target, 64)
	f.udp1400, f.udp1400Delivered = udpRate(t, p, pe.target, 1400)
	f.udp1400 = f.udp1400 * 1400 * 8 / 1e9
	f.udp1400Delivered = f.udp1400Delivered * 1400 * 8 / 1e9
	if pe.name == "nat64ctl fastpath" {
		f.fastShare = fastShare(t, p)
	}
	if pe.name == "nat64ctl" || pe.name == "nat64ctl fastpath" {
		f.udpSetup = udpSetupRate(t, p, 20000)
		f.tcpSetup = tcpSetupRate(t, p, 3*time.Second)
	}
	if pid != 0 {
		f.rssMiB = rssMiB(pid)
	}
	if pe.name == "nat64ctl" {
		f.sessions, f.rssAtLoad = manySessions(t, p, pid, 100000)
	}
	return f
}

// fastShare is the share of all packets translated so far that the
// kernel fast path carried.
func fastShare(t *testing.T, p *path) float64 {
	st := nat64ctlStats(t, p)
	var all, fast uint64
	for k, v := range st.Packets {
		all += v
		fast += st.FastPath.Packets[k]
	}
	if all == 0 {
		return 0
	}
	return float64(fast) / float64(all)
}

// benchStats is the part of nat64ctl's /api/v1/stats the bench reads.
type benchStats struct {
	Sessions map[string]int    `json:"sessions"`
	Packets  map[string]uint64 `json:"packets"`
	FastPath struct {
		Packets map[string]uint64 `json:"packets"`
	} `json:"fastpath"`
}

// nat64ctlStats reads the translator's counters from its control API.
func nat64ctlStats(t *testing.T, p *path) benchStats {
	out, err := p.xlat.Exec(context.Background(), "curl", "-s", "http://127.0.0.1:9164/api/v1/stats")
	var st benchStats
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Errorf("stats: %v %s", err, out)
	}
	return st
}

// udpRounds is how many iperf3 UDP runs make a UDP figure (their median):
// single runs on this 2-CPU machine vary by a third.
const udpRounds = 3

// udpRate runs iperf3 UDP with size-byte payloads, unlimited rate, and
// returns the median over udpRounds runs of the datagrams per second the
// server received, and of those that reached its UDP layer (nstat).
func udpRate(t *testing.T, p *path, target string, size int) (received, delivered float64) {
	var rs, ds []float64
	for i := 0; i < udpRounds; i++ {
		in0, full0 := udpCounters(p.server)
		u := iperf(t, p, target, "-u", "-b", "0", "-l", fmt.Sprint(size)).End.Sum
		in1, full1 := udpCounters(p.server)
		if u.Seconds > 0 {
			rs = append(rs, float64(u.Packets-u.LostPackets)/u.Seconds)
			ds = append(ds, float64(in1-in0+full1-full0)/u.Seconds)
		}
	}
	return median(rs), median(ds)
}

// udpCounters reads a namespace's UDP datagrams (IPv4 and IPv6) delivered
// to sockets and dropped for full receive buffers.
func udpCounters(ns *netns.NS) (in, full int64) {
	out, _ := ns.Exec(context.Background(), "nstat", "-az", "UdpInDatagrams", "UdpRcvbufErrors", "Udp6InDatagrams", "Udp6RcvbufErrors")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		var v int64
		fmt.Sscan(f[1], &v)
		switch f[0] {
		case "UdpInDatagrams", "Udp6InDatagrams":
			in += v
		case "UdpRcvbufErrors", "Udp6RcvbufErrors":
			full += v
		}
	}
	return in, full
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

// procOf finds the translator process a peer's setup started.
var procs = map[string]*netns.Process{}

func procOf(pe peer) *netns.Process { return procs[pe.name] }

// cpuSeconds is the user+system CPU time of a process so far.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): utime is the
	// 14th field of the line, stime the 15th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st float64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return (ut + st) / 100 // USER_HZ
}

func rssMiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb float64
			fmt.Sscan(strings.Fields(l)[1], &kb)
			return kb / 1024
		}
	}
	return 0
}

// manySessions opens n UDP sessions through the translator (n distinct
// source transport addresses, sent through a raw socket so no socket per
// flow is needed) and returns the session count and the daemon's RSS.
// A pass sends one packet per flow, paced to what the TUN queue holds;
// passes repeat (at most four) until the daemon holds all n, since a
// packet the kernel dropped on the way is simply sent again.
func manySessions(t *testing.T, p *path, pid, n int) (int, float64) {
	p.client.AddAddr("c0", "2001:db8:1::3/64")
	sessions := func() int { return nat64ctlStats(t, p).Sessions["udp"] }
	base, held := sessions(), 0
	for pass := 0; pass < 4 && held < n; pass++ {
		err := p.client.Do(func() error { return sendFlows(n) })
		if err != nil {
			t.Errorf("sessions load: %v", err)
			return 0, 0
		}
		time.Sleep(500 * time.Millisecond)
		held = sessions() - base
		t.Logf("sessions load, pass %d: %d of %d held", pass+1, held, n)
	}
	return held, rssMiB(pid)
}

// sendFlows sends one UDP packet from each of n source transport addresses
// (two source addresses, n/2 ports each) to the server's synthesized
// address, at most 250 packets per millisecond.
func sendFlows(n int) error {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_UDP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	// The kernel fills in the UDP checksum at offset 6.
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_CHECKSUM, 6); err != nil {
		return err
	}
	dst := &syscall.SockaddrInet6{Addr: netip.MustParseAddr(target6).As16()}
	pkt := make([]byte, 8+4)
	for i := 0; i < n; i++ {
		if i == 0 || i == n/2 {
			src := netip.MustParseAddr("2001:db8:1::2")
			if i == n/2 {
				src = netip.MustParseAddr("2001:db8:1::3")
			}
			if err := syscall.Bind(fd, &syscall.SockaddrInet6{Addr: src.As16()}); err != nil {
				return err
			}
		}
		port := uint16(1024 + i%(n/2))
		pkt[0], pkt[1] = byte(port>>8), byte(port)
		pkt[2], pkt[3] = 0x1b, 0x5f // 7007: nothing listens; ICMP errors come back
		pkt[4], pkt[5] = 0, 12
		pkt[6], pkt[7] = 0, 0
		for syscall.Sendto(fd, pkt, 0, dst) == syscall.ENOBUFS {
			time.Sleep(time.Millisecond)
		}
		if i%250 == 249 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// TestTranslatorSideBySide measures every peer in one run and writes the
// table (figures and ratios to TAYGA) to $BENCH_OUT or docs/translator-bench.md.
func TestTranslatorSideBySide(t *testing.T) {
	requireBench(t)
	var rows []string
	var results []figures
	ps := peers(t)
	for _, pe := range ps {
		f := measure(t, pe)
		results = append(results, f)
		t.Logf("%s: TCP %.2f / %.2f Gbit/s (1/4 streams), UDP 64 B %.0f pkt/s, UDP 1400 B %.2f Gbit/s", pe.name, f.tcp1, f.tcp4, f.udp64, f.udp1400)
	}
	tayga := results[1]
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	for i, pe := range ps {
		f := results[i]
		rows = append(rows, fmt.Sprintf("| %s | %.2f (%s) | %.2f (%s) | %.0f (%s) | %.2f (%s) | %.0f / %.2f (%s / %s) |", pe.name,
			f.tcp1, ratio(f.tcp1, tayga.tcp1), f.tcp4, ratio(f.tcp4, tayga.tcp4),
			f.udp64, ratio(f.udp64, tayga.udp64), f.udp1400, ratio(f.udp1400, tayga.udp1400),
			f.udp64Delivered, f.udp1400Delivered, ratio(f.udp64Delivered, tayga.udp64Delivered), ratio(f.udp1400Delivered, tayga.udp1400Delivered)))
	}
	// The fast path against the ceiling, and against the user-space path.
	kernel, user := results[0], results[2]
	var ceilingRows []string
	for i, pe := range ps[1:] {
		f := results[i+1]
		ceilingRows = append(ceilingRows, fmt.Sprintf("| %s | %s | %s | %s | %.3f (%s) |", pe.name,
			ratio(f.tcp1, kernel.tcp1), ratio(f.udp64, kernel.udp64), ratio(f.udp64Delivered, kernel.udp64Delivered),
			f.machinePerGbit, ratio(f.machinePerGbit, user.machinePerGbit)))
	}
	var setupRows []string
	for i, pe := range ps {
		if f := results[i]; f.udpSetup > 0 || f.tcpSetup > 0 {
			share := "-"
			if f.fastShare > 0 {
				share = fmt.Sprintf("%.2f %%", 100*f.fastShare)
			}
			setupRows = append(setupRows, fmt.Sprintf("| %s | %.0f | %.0f | %s |", pe.name, f.udpSetup, f.tcpSetup, share))
		}
	}
	var procRows []string
	for i, pe := range ps[1:] {
		f := results[i+1]
		load := "-"
		if f.sessions > 0 {
			load = fmt.Sprintf("RSS %.0f MiB (%.0f bytes per session over the idle RSS)", f.rssAtLoad, (f.rssAtLoad-f.rssMiB)*1024*1024/float64(f.sessions))
		}
		procRows = append(procRows, fmt.Sprintf("| %s | %.2f | %.0f MiB | %s |", pe.name, f.cpuPerGbit, f.rssMiB, load))
	}
	report := fmt.Sprintf(`## Translator, side by side (%s)

Machine: %d CPUs, %s/%s. Each peer on a fresh client -> translator -> server
namespace line (veth), iperf3 for %s per figure (UDP: the median of %d runs,
unlimited send rate); in parentheses the ratio to TAYGA. UDP "received" is what
the receiving iperf3 read; the last column is what reached the server's UDP
layer, read or dropped there because iperf3, sharing the two CPUs with the
sender and the translator, did not read it in time (nstat Udp[6]InDatagrams +
Udp[6]RcvbufErrors): the translator's own output.

| peer | TCP 1 stream Gbit/s | TCP 4 streams Gbit/s | UDP 64 B packets/s received | UDP 1400 B Gbit/s received | UDP 64 B / 1400 B reaching the server's UDP layer |
| --- | --- | --- | --- | --- | --- |
%s

Against kernel IPv6 forwarding (the ceiling), in the same run; the last
column is the whole machine's CPU seconds per Gbit of the one-stream TCP run
(senders, receivers and translator together, from /proc/stat, since the fast
path runs in softirq context), with its ratio to nat64ctl in user space:

| peer | TCP 1 stream / kernel | UDP 64 B received / kernel | UDP 64 B at the server / kernel | machine CPU s per Gbit |
| --- | --- | --- | --- | --- |
%s

Setup rate (RFC 9693's connection-establishment figure): new UDP flows per
second (one datagram from each of 20,000 new source ports, counted as
sessions set up) and new TCP connections per second (connect and close, 4
clients, 3 s). New flows always take the user-space path, which creates the
session, so what limits both modes is the Go translator's session set-up
and the TUN crossing; with the fast path, each new session also costs the
two map updates that hand it to the kernel (bpf(2) system calls, made under
the state table's writer lock), and its first packet a failed lookup in the
program. The share is of all packets translated in the run.

| translator | new UDP flows/s | new TCP connections/s | fast-path share of packets |
| --- | --- | --- | --- |
%s

| translator process | CPU s per Gbit (TCP, 1 stream) | RSS after the runs | nat64ctl with %d UDP sessions |
| --- | --- | --- | --- |
%s

Command: `+"`NAT64_BENCH=1 go test -run TestTranslatorSideBySide -v ./test/bench/`"+`
`, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, duration, udpRounds, strings.Join(rows, "\n"),
		strings.Join(ceilingRows, "\n"), strings.Join(setupRows, "\n"),
		results[2].sessions, strings.Join(procRows, "\n"))
	fmt.Println(report)
	if svg := os.Getenv("BENCH_SVG"); svg != "" {
		var names []string
		var tcp1, tcp4, udp64, udp1400 []float64
		for i, pe := range ps {
			names = append(names, pe.name)
			tcp1, tcp4 = append(tcp1, results[i].tcp1), append(tcp4, results[i].tcp4)
			udp64, udp1400 = append(udp64, results[i].udp64), append(udp1400, results[i].udp1400)
		}
		chart := barChart(names, []panel{
			{"TCP, 1 stream", "Gbit/s", tcp1}, {"TCP, 4 streams", "Gbit/s", tcp4},
			{"UDP 64-byte payloads received", "packets/s", udp64}, {"UDP 1400-byte payloads received", "Gbit/s", udp1400},
		})
		if err := os.WriteFile(svg, []byte(chart), 0o644); err != nil {
			t.Error(err)
		}
	}
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = "../../docs/translator-bench.md"
	}
	os.MkdirAll(filepath.Dir(out), 0o755)
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		t.Error(err)
	}
}
