package e2e

// TestSoak runs mixed traffic through the whole flow (the world of
// TestEndToEnd: CoreDNS with the dns64 plugin, two translators, both built
// with the race detector) for SOAK_DURATION (default 60 s, what `make test`
// runs; `make soak` runs 10 minutes and writes docs/soak.md), and samples
// the three processes' memory, goroutines, open files and sessions, to
// show that nothing leaks and nothing breaks under reloads, malformed
// bursts and a translator killed and restarted.
//
// Why a Go test rather than a script: the traffic needs sockets inside the
// client namespace (raw ones for the malformed packets), exact counts of
// what was asked and answered, and the world's setup and cleanup, which
// the e2e test already has; a test binary gets all of it and cleans up
// after itself even when it fails.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/test/netns"
	"golang.org/x/sys/unix"
)

// soakTOML is the e2e pair with the shortest timeouts RFC 6146 allows, so
// that a long run sees sessions expire.
const soakTOML = `[[instance]]
name    = "nat64-a"
prefix  = "64:ff9b:1::/96"
pool4   = ["203.0.113.1/32"]
weight  = 1
control = "[2001:db8:1::a]:9164"

  [instance.timeouts]
  udp            = "2m"
  icmp           = "1m"
  tcp_transitory = "4m"

[[instance]]
name    = "nat64-b"
prefix  = "2001:db8:64::/96"
pool4   = ["203.0.113.2/32"]
weight  = 2
control = "[2001:db8:1::b]:9164"

  [instance.timeouts]
  udp            = "2m"
  icmp           = "1m"
  tcp_transitory = "4m"
`

// soakCorefile adds metrics (go_goroutines) and error logging to the e2e
// server block.
const soakCorefile = `. {
    errors
    prometheus [2001:db8:1::53]:9153
    dns64 {
        instances nat64.toml
        health_interval 500ms
        health_timeout 300ms
    }
    file db.example example.
    file db.reverse 2.0.192.in-addr.arpa.
}
`

// buildRace builds nat64ctl and CoreDNS with the race detector, so a data
// race in either shows in its log.
func buildRace(t *testing.T) (nat64ctl, coredns string) { return raceBinaries.get(t) }

var raceBinaries = &binaries{flags: []string{"-race"}}

// soakDuration is SOAK_DURATION, 60 s by default.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 30*time.Second {
		t.Fatalf("SOAK_DURATION=%q: want a duration of at least 30s", s)
	}
	return d
}

// soakProcs are the processes sampled.
var soakProcs = []string{"nat64-a", "nat64-b", "coredns"}

// sample is one reading of every process.
type sample struct {
	At         time.Duration // since the traffic started
	RSS        map[string]uint64
	Goroutines map[string]int
	FDs        map[string]int
	Sessions   map[string]int // per translator
	Flows      map[string]int64
}

// tally counts one kind of traffic.
type tally struct{ ok, fail, failDown atomic.Int64 }

func (c *tally) String() string {
	return fmt.Sprintf("%d ok, %d failed (+%d while its translator was down)", c.ok.Load(), c.fail.Load(), c.failDown.Load())
}

// soak is the running state of one soak.
type soak struct {
	t     *testing.T
	w     *world
	start time.Time

	mu      sync.Mutex
	down    map[string][2]time.Duration // instance -> [killed, back in service)
	samples []sample
	outputs []string // outputs of processes no longer running (the killed translator)

	dnsAsked, dnsAnswered, dnsSynth   atomic.Int64
	tcp, udp, fragUDP, ping, ping3000 [2]tally // by instance index
	malformed, reloads                atomic.Int64
	reloadFail                        atomic.Int64
	flows                             [2]atomic.Int64 // flows opened through each translator since it (re)started
}

var soakInstances = [2]string{"nat64-a", "nat64-b"}

// target is the server's web address as each translator's prefix embeds it.
var soakTarget = [2]netip.Addr{netip.MustParseAddr("64:ff9b:1::c000:250"), netip.MustParseAddr("2001:db8:64::c000:250")}

func (s *soak) since() time.Duration { return time.Since(s.start) }

// isDown reports whether instance i was being killed or restarted at d
// (from the kill until dns64 and clients can use it again).
func (s *soak) isDown(i int, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.down[soakInstances[i]]
	return ok && d >= w[0] && (w[1] == 0 || d < w[1])
}

// count records the result of one exchange with translator i that began
// at begun.
func (s *soak) count(c *tally, i int, begun time.Duration, err error) {
	switch {
	case err == nil:
		c.ok.Add(1)
	case s.isDown(i, begun) || s.isDown(i, s.since()):
		c.failDown.Add(1)
	default:
		c.fail.Add(1)
		s.t.Logf("%v %s: %v", begun.Round(time.Millisecond), soakInstances[i], err)
	}
}

// dialIn returns a dialer whose sockets are made in ns.
func dialIn(ns *netns.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		derr := ns.Do(func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return nil
		})
		if derr != nil {
			return nil, derr
		}
		return c, err
	}
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the soak runs for a minute or more")
	}
	netns.RequireRoot(t)
	duration := soakDuration(t)
	nat64ctl, coredns := buildRace(t)
	w := newWorldWith(t, worldFiles{nat64TOML: soakTOML, corefile: soakCorefile, nat64ctl: nat64ctl, coredns: coredns, fastpath: "auto"})
	// On the service address itself: a socket on 0.0.0.0 would answer from
	// the server's link address, which the sessions (to 192.0.2.80) filter.
	serveUDPEcho(t, w.server, serviceV4+":7007")
	s := &soak{t: t, w: w, down: map[string][2]time.Duration{}}
	httpc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialIn(w.client), DisableKeepAlives: true}}

	// Samples every 10 s; a run of two minutes or less every 5 s, so its
	// warm-up and its end have two samples each.
	every := 10 * time.Second
	if duration <= 2*time.Minute {
		every = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	var wg sync.WaitGroup
	// Registered after the world's, so it runs first: the traffic stops
	// before the namespaces go, even when the test fails early.
	t.Cleanup(func() { cancel(); wg.Wait() })
	s.start = time.Now()
	loop := func(period time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				f()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	loop(50*time.Millisecond, func() { s.queryDNS(ctx) })
	loop(200*time.Millisecond, s.tcpRound)
	loop(200*time.Millisecond, s.udpRound)
	loop(2*time.Second, s.fragUDPRound)
	loop(time.Second, s.pingRound)
	loop(5*time.Second, s.ping3000Round)
	loop(5*time.Second, s.malformedBurst)
	wg.Add(1)
	go func() { // a reload of both every 30 s
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(30 * time.Second):
				s.reload()
			}
		}
	}()
	// Sampling, and one kill -9 of nat64-a at 40 % of the run with its
	// restart, on the test's own goroutine (a failed restart ends the test).
	s.sampleLoop(ctx, every, httpc, duration*2/5)
	wg.Wait()
	trafficEnd := s.since()

	// After the traffic: a long run waits for every session to expire
	// (the longest timeout is TCP's transitory 4 min).
	var drained time.Duration
	if duration >= 5*time.Minute {
		deadline := time.Now().Add(5 * time.Minute)
		for {
			smp := s.take(httpc)
			s.mu.Lock()
			s.samples = append(s.samples, smp)
			s.mu.Unlock()
			if smp.Sessions["nat64-a"] == 0 && smp.Sessions["nat64-b"] == 0 {
				drained = smp.At
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("sessions left 5 min after the traffic stopped: %v", smp.Sessions)
				break
			}
			time.Sleep(every)
		}
	}
	s.check(duration, trafficEnd, drained)
}

// queryDNS asks one question of the DNS64 server and waits for its answer.
var soakNames = []struct {
	name  string
	qtype uint16
	synth bool // the answer must be synthesized under one of the prefixes
}{
	{"www.example.", dns.TypeAAAA, true}, {"alias.example.", dns.TypeAAAA, true}, {"dual.example.", dns.TypeAAAA, false},
	{"www.example.", dns.TypeA, false}, {"nothere.example.", dns.TypeAAAA, false}, {"ipv4only.arpa.", dns.TypeAAAA, true},
}

func (s *soak) queryDNS(ctx context.Context) {
	n := s.dnsAsked.Add(1)
	q := soakNames[int(n)%len(soakNames)]
	var conn net.Conn
	if err := s.w.client.Do(func() (err error) { conn, err = net.Dial("udp6", "["+dnsAddr+"]:53"); return err }); err != nil {
		s.t.Errorf("dns socket: %v", err)
		return
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	co := &dns.Conn{Conn: conn}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if err := co.WriteMsg(m); err != nil {
		s.t.Errorf("dns %s: %v", q.name, err)
		return
	}
	r, err := co.ReadMsg()
	if err != nil || r.Id != m.Id {
		s.t.Errorf("%v: no answer to %s %s: %v", s.since().Round(time.Millisecond), q.name, dns.TypeToString[q.qtype], err)
		return
	}
	s.dnsAnswered.Add(1)
	if q.synth {
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.AAAA); ok {
				ip, _ := netip.AddrFromSlice(a.AAAA)
				if pool4Of[prefixOf(ip.String())] == "" {
					s.t.Errorf("%s AAAA %s is under neither prefix", q.name, ip)
					return
				}
			}
		}
		if len(r.Answer) == 0 {
			s.t.Errorf("%v: %s AAAA: no synthesized answer (rcode %s)", s.since().Round(time.Millisecond), q.name, dns.RcodeToString[r.Rcode])
			return
		}
		s.dnsSynth.Add(1)
	}
}

// tcpRound opens, uses and closes one TCP connection through each
// translator in turn.
func (s *soak) tcpRound() {
	i := int(s.tcp[0].ok.Load()+s.tcp[1].ok.Load()+s.tcp[0].fail.Load()+s.tcp[1].fail.Load()+s.tcp[0].failDown.Load()+s.tcp[1].failDown.Load()) % 2
	begun := s.since()
	s.flows[i].Add(1)
	var conn net.Conn
	err := s.w.client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp6", netip.AddrPortFrom(soakTarget[i], 80).String(), 3*time.Second)
		return err
	})
	if err == nil {
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: www.example\r\n\r\n")
		var b []byte
		b, err = io.ReadAll(conn)
		conn.Close()
		if err == nil && !strings.HasSuffix(string(b), pool4Of[soakInstances[i]]) {
			err = fmt.Errorf("the server saw %q", b[max(0, len(b)-20):])
		}
	}
	s.count(&s.tcp[i], i, begun, err)
}

// echoUDP sends n bytes from a new socket (a new flow) and waits for them
// to come back.
func (s *soak) echoUDP(i, n int) error {
	s.flows[i].Add(1)
	var conn net.Conn
	if err := s.w.client.Do(func() (err error) {
		conn, err = net.Dial("udp6", netip.AddrPortFrom(soakTarget[i], 7007).String())
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	msg := make([]byte, n)
	for j := range msg {
		msg[j] = byte(j * 7)
	}
	buf := make([]byte, n+100)
	var err error
	for try := 0; try < 2; try++ { // one retry: UDP may lose one
		conn.Write(msg)
		conn.SetReadDeadline(time.Now().Add(time.Second))
		var k int
		if k, err = conn.Read(buf); err == nil {
			if k != n || string(buf[:k]) != string(msg) {
				return fmt.Errorf("echo of %d bytes came back as %d", n, k)
			}
			return nil
		}
	}
	return err
}

func (s *soak) udpRound() {
	for i := range soakInstances {
		begun := s.since()
		s.count(&s.udp[i], i, begun, s.echoUDP(i, 100))
	}
}

// fragUDPRound sends a 3000-byte datagram, fragmented by the client's
// kernel and translated fragment by fragment, reassembled by the server,
// and echoed back the same way.
func (s *soak) fragUDPRound() {
	for i := range soakInstances {
		begun := s.since()
		s.count(&s.fragUDP[i], i, begun, s.echoUDP(i, 3000))
	}
}

// pingRound pings each translator's target twice; one reply of the two
// counts as answered, as ping's own exit status says.
func (s *soak) pingRound() { s.pingEach(&s.ping) }

// ping3000Round: an ICMPv6 echo of 3000 bytes is fragmented, and the
// translator reassembles it (the ICMP checksum covers the whole datagram)
// before it translates it; the reply comes back the same way.
func (s *soak) ping3000Round() { s.pingEach(&s.ping3000, "-s", "3000") }

func (s *soak) pingEach(tallies *[2]tally, extra ...string) {
	for i := range soakInstances {
		begun := s.since()
		s.flows[i].Add(1)
		args := append([]string{"ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1"}, extra...)
		_, err := s.w.client.Exec(context.Background(), append(args, soakTarget[i].String())...)
		s.count(&tallies[i], i, begun, err)
	}
}

// malformedBurst sends 40 broken packets toward each prefix from raw
// sockets: TCP with a 5-byte header, UDP whose length lies, a protocol
// the translator does not carry, and UDP with a wrong checksum (which is
// translated, wrong as it came, and so opens a flow).
func (s *soak) malformedBurst() {
	for i := range soakInstances {
		dst := soakTarget[i].As16()
		for _, proto := range []int{unix.IPPROTO_TCP, unix.IPPROTO_UDP, 253} {
			err := s.w.client.Do(func() error {
				fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				for k := 0; k < 10; k++ {
					var b []byte
					switch proto {
					case unix.IPPROTO_TCP:
						b = []byte{0x9c, 0x40, 0, 80, 1}
					case unix.IPPROTO_UDP:
						b = make([]byte, 16)
						binary.BigEndian.PutUint16(b[0:], uint16(41000+k))
						binary.BigEndian.PutUint16(b[2:], 7007)
						binary.BigEndian.PutUint16(b[4:], 400) // longer than the datagram
						binary.BigEndian.PutUint16(b[6:], 0x1234)
					default:
						b = []byte("not a protocol anyone speaks")
					}
					if err := unix.Sendto(fd, b, 0, &unix.SockaddrInet6{Addr: dst}); err != nil {
						return err
					}
					s.malformed.Add(1)
					if proto == unix.IPPROTO_UDP {
						// And one well-framed with a wrong checksum.
						binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
						if err := unix.Sendto(fd, b, 0, &unix.SockaddrInet6{Addr: dst}); err != nil {
							return err
						}
						s.malformed.Add(1)
						s.flows[i].Add(1)
					}
				}
				return nil
			})
			if err != nil {
				s.t.Errorf("malformed burst: %v", err)
			}
		}
	}
}

// reload makes both translators re-read nat64.toml.
func (s *soak) reload() {
	for i, inst := range soakInstances {
		if s.isDown(i, s.since()) {
			continue
		}
		if out, err := s.w.ctl(inst, "reload"); err != nil {
			s.reloadFail.Add(1)
			s.t.Errorf("%v reload %s: %v\n%s", s.since().Round(time.Second), inst, err, out)
			continue
		}
		s.reloads.Add(1)
	}
}

// killAndRestart kills a translator with SIGKILL, restarts it at once and
// waits until a flow through it works again; dns64 takes it back within
// two of its 500 ms health polls, which the window's end allows for.
func (s *soak) killAndRestart(inst string) {
	i := slices.Index(soakInstances[:], inst)
	s.mu.Lock()
	s.down[inst] = [2]time.Duration{s.since(), 0}
	p := s.w.procs[inst]
	s.mu.Unlock()
	syscall.Kill(p.PID(), syscall.SIGKILL)
	<-p.Done()
	s.mu.Lock()
	s.outputs = append(s.outputs, inst+" (killed): "+p.Output())
	s.mu.Unlock()
	s.flows[i].Store(0) // its sessions went with it
	s.w.startTranslator(s.t, inst)
	netns.WaitFor(s.t, 15*time.Second, inst+" to translate again", func() error { return s.echoUDP(i, 10) })
	s.mu.Lock()
	w := s.down[inst]
	w[1] = s.since() + 2*time.Second
	s.down[inst] = w
	s.mu.Unlock()
	s.t.Logf("%s killed at %v, in service again by %v", inst, w[0].Round(time.Millisecond), w[1].Round(time.Millisecond))
}

// sampleLoop samples until ctx ends, and kills and restarts nat64-a once
// killAt has passed.
func (s *soak) sampleLoop(ctx context.Context, every time.Duration, httpc *http.Client, killAt time.Duration) {
	killed := false
	for {
		smp := s.take(httpc)
		s.mu.Lock()
		s.samples = append(s.samples, smp)
		s.mu.Unlock()
		if !killed && s.since() >= killAt {
			killed = true
			s.killAndRestart("nat64-a")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every - s.since()%every):
		}
	}
}

// take reads RSS and fds from /proc, goroutines from each /metrics and
// sessions from each translator's stats.
func (s *soak) take(httpc *http.Client) sample {
	smp := sample{At: s.since(), RSS: map[string]uint64{}, Goroutines: map[string]int{}, FDs: map[string]int{}, Sessions: map[string]int{}, Flows: map[string]int64{}}
	s.mu.Lock()
	pids := map[string]int{}
	for _, name := range soakProcs {
		pids[name] = s.w.procs[name].PID()
	}
	s.mu.Unlock()
	metrics := map[string]string{"nat64-a": "[2001:db8:1::a]:9164", "nat64-b": "[2001:db8:1::b]:9164", "coredns": "[" + dnsAddr + "]:9153"}
	for _, name := range soakProcs {
		smp.RSS[name] = rssOf(pids[name])
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pids[name])); err == nil {
			smp.FDs[name] = len(ents)
		}
		smp.Goroutines[name] = scrapeGauge(httpc, "http://"+metrics[name]+"/metrics", "go_goroutines")
	}
	for i, inst := range soakInstances {
		smp.Flows[inst] = s.flows[i].Load()
		var st control.Stats
		if resp, err := httpc.Get("http://" + metrics[inst] + control.PathStats); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		for _, n := range st.Sessions {
			smp.Sessions[inst] += n
		}
	}
	return smp
}

func rssOf(pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// scrapeGauge reads one unlabelled gauge from a Prometheus text page (-1
// when it cannot).
func scrapeGauge(c *http.Client, url, name string) int {
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return -1
}

// Tolerances of the flatness checks, after the warm-up (the first fifth
// of the run, at least 20 s): the median RSS of the last fifth may exceed
// the median of the fifth after the warm-up by 20 % + 8 MiB (the GC's
// pacing and the race detector's shadow memory move by megabytes), the
// goroutines and open files at the end may exceed the most seen after
// the warm-up by 10 (connections in flight at the moment of a sample).
const (
	rssGrowth      = 1.20
	rssSlack       = 8 << 20
	countSlack     = 10
	failsTolerated = 0.005 // of each kind of exchange, outside a kill window
)

// check asserts the soak's results and writes the report when asked.
func (s *soak) check(duration, trafficEnd, drained time.Duration) {
	t := s.t
	var problems []string
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		problems = append(problems, msg)
		t.Error(msg)
	}
	// Every DNS question answered.
	if s.dnsAsked.Load() == 0 || s.dnsAnswered.Load() != s.dnsAsked.Load() {
		fail("DNS: %d asked, %d answered", s.dnsAsked.Load(), s.dnsAnswered.Load())
	}
	for i, inst := range soakInstances {
		for _, k := range []struct {
			name string
			c    *tally
		}{{"TCP", &s.tcp[i]}, {"UDP", &s.udp[i]}, {"fragmented UDP", &s.fragUDP[i]}, {"ping", &s.ping[i]}, {"ping -s 3000", &s.ping3000[i]}} {
			ok, bad := k.c.ok.Load(), k.c.fail.Load()
			if ok == 0 || float64(bad) > failsTolerated*float64(ok+bad) {
				fail("%s through %s: %s", k.name, inst, k.c)
			}
		}
	}
	if s.reloads.Load() < int64(duration/(30*time.Second)) || s.reloadFail.Load() != 0 {
		fail("reloads: %d done, %d failed", s.reloads.Load(), s.reloadFail.Load())
	}
	// No panic, error or race in any log.
	s.mu.Lock()
	logs := append([]string(nil), s.outputs...)
	for name, p := range s.w.procs {
		logs = append(logs, name+": "+p.Output())
	}
	samples := append([]sample(nil), s.samples...)
	down := s.down["nat64-a"]
	s.mu.Unlock()
	for _, l := range logs {
		for _, bad := range []string{"panic", "DATA RACE", "level=ERROR", "[ERROR]", "fatal error"} {
			if i := strings.Index(l, bad); i >= 0 {
				name, _, _ := strings.Cut(l, ":")
				fail("%s log has %q: %.300s", name, bad, l[max(0, i-100):])
			}
		}
	}

	// Flatness, per process, over the samples of the traffic period; the
	// restarted translator from its restart on.
	var traffic []sample
	for _, smp := range samples {
		if smp.At <= trafficEnd {
			traffic = append(traffic, smp)
		}
	}
	warm := max(20*time.Second, trafficEnd/5)
	flat := map[string]string{}
	for _, name := range soakProcs {
		from := time.Duration(0)
		if name == "nat64-a" && down[1] != 0 {
			from = down[1]
		}
		var life []sample
		for _, smp := range traffic {
			if smp.At >= from+warm {
				life = append(life, smp)
			}
		}
		if len(life) < 4 {
			flat[name] = fmt.Sprintf("%d samples after its warm-up: too few to judge", len(life))
			continue
		}
		fifth := max(2, len(life)/5)
		base, end := life[:fifth], life[len(life)-fifth:]
		baseRSS, endRSS := medianRSS(base, name), medianRSS(end, name)
		if float64(endRSS) > float64(baseRSS)*rssGrowth+rssSlack {
			fail("%s RSS grew from %s to %s", name, mib(baseRSS), mib(endRSS))
		}
		maxOf := func(ss []sample, f func(sample) int) int {
			m := math.MinInt
			for _, x := range ss {
				m = max(m, f(x))
			}
			return m
		}
		gBase, gEnd := maxOf(base, func(x sample) int { return x.Goroutines[name] }), maxOf(end, func(x sample) int { return x.Goroutines[name] })
		fBase, fEnd := maxOf(base, func(x sample) int { return x.FDs[name] }), maxOf(end, func(x sample) int { return x.FDs[name] })
		if gBase < 0 || gEnd > gBase+countSlack {
			fail("%s goroutines: %d after the warm-up, %d at the end", name, gBase, gEnd)
		}
		if fEnd > fBase+countSlack {
			fail("%s open files: %d after the warm-up, %d at the end", name, fBase, fEnd)
		}
		flat[name] = fmt.Sprintf("RSS %s -> %s, goroutines %d -> %d, fds %d -> %d", mib(baseRSS), mib(endRSS), gBase, gEnd, fBase, fEnd)
	}
	// Sessions: never more than the flows opened through the translator
	// since it started (nothing is kept that no flow made), and, in a long
	// run, none left once every timeout has passed.
	for _, smp := range traffic {
		for _, inst := range soakInstances {
			if int64(smp.Sessions[inst]) > smp.Flows[inst]+countSlack {
				fail("%v: %s has %d sessions for %d flows opened", smp.At.Round(time.Second), inst, smp.Sessions[inst], smp.Flows[inst])
			}
		}
	}
	maxSessions := 0
	for _, smp := range traffic {
		maxSessions = max(maxSessions, smp.Sessions["nat64-a"]+smp.Sessions["nat64-b"])
	}
	if maxSessions == 0 {
		fail("no session was ever seen")
	}
	t.Logf("DNS %d asked, %d answered (%d synthesized); malformed sent %d; reloads %d",
		s.dnsAsked.Load(), s.dnsAnswered.Load(), s.dnsSynth.Load(), s.malformed.Load(), s.reloads.Load())
	for i, inst := range soakInstances {
		t.Logf("%s: TCP %s; UDP %s; fragmented UDP %s; ping %s; ping -s 3000 %s", inst, &s.tcp[i], &s.udp[i], &s.fragUDP[i], &s.ping[i], &s.ping3000[i])
	}
	for _, name := range soakProcs {
		t.Logf("%s: %s", name, flat[name])
	}
	if path := os.Getenv("SOAK_REPORT"); path != "" {
		if err := s.writeReport(path, duration, trafficEnd, drained, flat, samples, problems); err != nil {
			t.Errorf("report: %v", err)
		}
	}
}

func medianRSS(ss []sample, name string) uint64 {
	v := make([]uint64, 0, len(ss))
	for _, x := range ss {
		v = append(v, x.RSS[name])
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// writeReport writes the report (Markdown) and its plot (SVG, beside it).
func (s *soak) writeReport(path string, duration, trafficEnd, drained time.Duration, flat map[string]string, samples []sample, problems []string) error {
	svgName := strings.TrimSuffix(filepath.Base(path), ".md") + ".svg"
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak run\n\n")
	fmt.Fprintf(&b, "`make soak` (root; `SOAK_DURATION=%v`), %s, on %s. Written by `TestSoak` in `test/e2e/soak_test.go`; "+
		"the world is `TestEndToEnd`'s (CoreDNS with the dns64 plugin, translators nat64-a and nat64-b, an IPv4-only server), "+
		"all three built with `-race`, with timeouts UDP 2m, ICMP 1m, TCP transitory 4m.\n\n",
		duration, time.Now().UTC().Format("2006-01-02 15:04 UTC"), hostLine())
	fmt.Fprintf(&b, "Traffic, all at once: a DNS question every 50 ms (AAAA synthesized and not, A, NXDOMAIN, ipv4only.arpa), "+
		"a short TCP connection every 200 ms (alternating translators), a new UDP flow to each translator every 200 ms, "+
		"a fragmented 3000-byte UDP echo to each every 2 s, `ping -c 2` to each every second, `ping -c 2 -s 3000` to each every 5 s "+
		"(fragmented ICMP, which the translator reassembles), a burst of 80 malformed packets every 5 s, `nat64ctl reload` of both every 30 s, "+
		"and one `kill -9` of nat64-a at 40 %% of the run, restarted at once.\n\n")
	if len(problems) == 0 {
		fmt.Fprintf(&b, "**Result: every check passed.**\n\n")
	} else {
		fmt.Fprintf(&b, "**Result: %d checks failed:**\n\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| what | result |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| DNS questions | %d asked, %d answered (%d synthesized) |\n", s.dnsAsked.Load(), s.dnsAnswered.Load(), s.dnsSynth.Load())
	for i, inst := range soakInstances {
		fmt.Fprintf(&b, "| TCP via %s | %s |\n| UDP via %s | %s |\n| fragmented UDP via %s | %s |\n| ping via %s | %s |\n| ping -s 3000 via %s | %s |\n",
			inst, &s.tcp[i], inst, &s.udp[i], inst, &s.fragUDP[i], inst, &s.ping[i], inst, &s.ping3000[i])
	}
	fmt.Fprintf(&b, "| malformed packets sent | %d |\n| reloads | %d done, %d failed |\n",
		s.malformed.Load(), s.reloads.Load(), s.reloadFail.Load())
	s.mu.Lock()
	d := s.down["nat64-a"]
	s.mu.Unlock()
	fmt.Fprintf(&b, "| kill -9 of nat64-a | at %v, in service again at %v |\n", d[0].Round(time.Millisecond), d[1].Round(time.Millisecond))
	if drained > 0 {
		fmt.Fprintf(&b, "| sessions after the traffic stopped (%v) | none left at %v |\n", trafficEnd.Round(time.Second), drained.Round(time.Second))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Flatness after the warm-up (first fifth of the run, at least 20 s; the restarted translator from its restart): the median RSS "+
		"of the last fifth may exceed that of the fifth after the warm-up by %.0f %% + %d MiB; goroutines and open files at the end may exceed "+
		"the most seen after the warm-up by %d. A failed exchange outside a kill window is tolerated up to %.1f %% of its kind.\n\n",
		(rssGrowth-1)*100, rssSlack>>20, countSlack, failsTolerated*100)
	for _, name := range soakProcs {
		fmt.Fprintf(&b, "- %s: %s\n", name, flat[name])
	}
	fmt.Fprintf(&b, "\n![RSS and sessions over time](%s)\n\n", svgName)
	fmt.Fprintf(&b, "## Samples\n\nRSS in MiB, goroutines from each `/metrics` `go_goroutines`, open files from `/proc/PID/fd`, sessions from each translator's stats.\n\n")
	fmt.Fprintf(&b, "| t (s) | RSS a | RSS b | RSS coredns | gor. a | gor. b | gor. coredns | fds a | fds b | fds coredns | sessions a | sessions b |\n")
	fmt.Fprintf(&b, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, x := range samples {
		fmt.Fprintf(&b, "| %.0f | %.1f | %.1f | %.1f | %d | %d | %d | %d | %d | %d | %d | %d |\n", x.At.Seconds(),
			float64(x.RSS["nat64-a"])/(1<<20), float64(x.RSS["nat64-b"])/(1<<20), float64(x.RSS["coredns"])/(1<<20),
			x.Goroutines["nat64-a"], x.Goroutines["nat64-b"], x.Goroutines["coredns"],
			x.FDs["nat64-a"], x.FDs["nat64-b"], x.FDs["coredns"], x.Sessions["nat64-a"], x.Sessions["nat64-b"])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(path), svgName), []byte(soakPlot(samples)), 0o644)
}

func hostLine() string {
	out, err := exec.Command("uname", "-sr").Output()
	if err != nil {
		return "Linux"
	}
	return fmt.Sprintf("%s, %d CPUs", strings.TrimSpace(string(out)), runtime.NumCPU())
}

// soakPlot draws two line panels over time: RSS of each process, and the
// sessions of each translator. Plain SVG, no plotting tool needed.
func soakPlot(samples []sample) string {
	const (
		width, panelH, left, right, top, gap = 760, 220, 70, 150, 30, 60
	)
	plotW := width - left - right
	var b strings.Builder
	height := top + 2*(panelH+gap)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	tMax := 1.0
	for _, x := range samples {
		tMax = max(tMax, x.At.Seconds())
	}
	colors := map[string]string{"nat64-a": "#2f6fb0", "nat64-b": "#e08a3c", "coredns": "#4caf50"}
	panel := func(y0 int, title, unit string, series []string, value func(sample, string) float64) {
		vMax := 1.0
		for _, x := range samples {
			for _, n := range series {
				vMax = max(vMax, value(x, n))
			}
		}
		vMax *= 1.1
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s (%s)</text>`+"\n", left, y0-10, title, unit)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, plotW, panelH)
		for k := 0; k <= 4; k++ {
			v := vMax * float64(k) / 4
			y := float64(y0+panelH) - float64(panelH)*float64(k)/4
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y+4, v)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", left, y, left+plotW, y)
			tx := float64(left) + float64(plotW)*float64(k)/4
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%.0f s</text>`+"\n", tx, y0+panelH+16, tMax*float64(k)/4)
		}
		for j, n := range series {
			var pts []string
			for _, x := range samples {
				px := float64(left) + x.At.Seconds()/tMax*float64(plotW)
				py := float64(y0+panelH) - value(x, n)/vMax*float64(panelH)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colors[n], strings.Join(pts, " "))
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", left+plotW+10, y0+20+18*j, colors[n], n)
		}
	}
	panel(top, "Resident memory", "MiB", soakProcs, func(x sample, n string) float64 { return float64(x.RSS[n]) / (1 << 20) })
	panel(top+panelH+gap, "Sessions", "count", soakInstances[:], func(x sample, n string) float64 { return float64(x.Sessions[n]) })
	b.WriteString("</svg>\n")
	return b.String()
}

// serveUDPEcho echoes datagrams on the server.
func serveUDPEcho(t *testing.T, ns *netns.NS, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close() })
}
