package main

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const zoneExample = `$ORIGIN example.org.
@       3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300
@       3600 IN NS  ns
ns      3600 IN A   198.51.100.1
v4      3600 IN A   198.51.100.2
short     60 IN A   198.51.100.3
www     3600 IN CNAME mid
mid     3600 IN CNAME v4
both    3600 IN A    198.51.100.5
both    3600 IN AAAA 2001:db8:5::1
mapped  3600 IN A    198.51.100.6
mapped  3600 IN AAAA ::ffff:198.51.100.6
`

const zoneReverse = `$ORIGIN 100.51.198.in-addr.arpa.
@  3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300
@  3600 IN NS  ns.example.org.
2  3600 IN PTR v4.example.org.
`

// bigZone adds a name whose synthesized answer cannot fit 512 bytes.
func bigZone() string {
	var b strings.Builder
	b.WriteString(zoneExample)
	for i := 10; i < 70; i++ {
		fmt.Fprintf(&b, "big 3600 IN A 198.51.100.%d\n", i)
	}
	return b.String()
}

// freePort finds a port free for both UDP and TCP on loopback.
func freePort(t testing.TB) int {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// startCoreDNS runs bin with the Corefile in dir and waits until it
// answers. The process is killed (by PID) when the test ends.
func startCoreDNS(t testing.TB, bin, dir, corefile string, port int) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "coredns.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-conf", "Corefile", "-quiet")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("coredns log:\n%s", out)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("example.org.", dns.TypeSOA)
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return addr
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("coredns did not come up:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthz is a nat64ctl /healthz stand-in the test switches on and off.
type healthz struct {
	srv *httptest.Server
	up  atomic.Bool
}

func newHealthz(t *testing.T) *healthz {
	h := &healthz{}
	h.up.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *healthz) addr() string { return strings.TrimPrefix(h.srv.URL, "http://") }

// query sends one question over network net from source address src
// (nil: any) to addr.
func query(t testing.TB, addr, network string, src net.IP, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	if src != nil {
		c.Dialer = &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.UDPAddr{IP: src}}
		if network == "tcp" {
			c.Dialer.LocalAddr = &net.TCPAddr{IP: src}
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		r, _, err := c.Exchange(m, addr)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("%s %s from %v: %v", name, dns.TypeToString[qtype], src, lastErr)
	return nil
}

func aaaas(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.AAAA); ok {
			out = append(out, a.AAAA.String())
		}
	}
	return out
}

// sourceIP is the i-th distinct loopback client address (Linux accepts
// any 127.0.0.0/8 source on lo).
func sourceIP(i int) net.IP { return net.IPv4(127, 1, byte(i/250), byte(1+i%250)) }

const (
	prefixA = "2001:db8:64::"
	prefixB = "2001:db8:65::"
)

func prefixOfAnswer(t testing.TB, m *dns.Msg) string {
	got := aaaas(m)
	if len(got) != 1 {
		t.Fatalf("want one AAAA, got %v (rcode %s)", got, dns.RcodeToString[m.Rcode])
	}
	switch {
	case strings.HasPrefix(got[0], prefixA):
		return "a"
	case strings.HasPrefix(got[0], prefixB):
		return "b"
	}
	t.Fatalf("AAAA %s in no configured prefix", got[0])
	return ""
}

func TestIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs CoreDNS")
	}
	bin := binary(t)
	hA, hB := newHealthz(t), newHealthz(t)
	dir := t.TempDir()
	toml := fmt.Sprintf(`[[instance]]
name = "nat64-a"
prefix = "%s/96"
pool4 = ["203.0.113.1/32"]
weight = 1
control = "%s"

[[instance]]
name = "nat64-b"
prefix = "%s/96"
pool4 = ["203.0.113.2/32"]
weight = 2
control = "%s"
`, prefixA, hA.addr(), prefixB, hB.addr())
	for name, data := range map[string]string{"nat64.toml": toml, "db.example.org": bigZone(), "db.rev": zoneReverse} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	addr := startCoreDNS(t, bin, dir, fmt.Sprintf(`.:%d {
    bind 127.0.0.1 ::1
    dns64 {
        instances nat64.toml
        allow_ipv4
        health_interval 100ms
        health_timeout 90ms
    }
    file db.example.org example.org
    file db.rev 100.51.198.in-addr.arpa
}
`, port), port)
	addr6 := fmt.Sprintf("[::1]:%d", port)

	t.Run("synthesis over IPv6", func(t *testing.T) {
		m := query(t, addr6, "udp", nil, "v4.example.org.", dns.TypeAAAA, true)
		p := prefixOfAnswer(t, m)
		want := map[string]string{"a": prefixA + "c633:6402", "b": prefixB + "c633:6402"}[p]
		if got := aaaas(m)[0]; got != want {
			t.Errorf("AAAA %s, want %s", got, want)
		}
		if ttl := m.Answer[0].Header().Ttl; ttl != 300 {
			t.Errorf("TTL %d, want 300 (SOA MINIMUM)", ttl)
		}
		if m.AuthenticatedData {
			t.Error("AD set")
		}
	})
	t.Run("TTL from A", func(t *testing.T) {
		m := query(t, addr, "udp", nil, "short.example.org.", dns.TypeAAAA, true)
		if len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 60 {
			t.Errorf("answer %v", m.Answer)
		}
	})
	t.Run("CNAME chain", func(t *testing.T) {
		m := query(t, addr, "udp", nil, "www.example.org.", dns.TypeAAAA, true)
		var got []string
		for _, rr := range m.Answer {
			got = append(got, dns.TypeToString[rr.Header().Rrtype])
		}
		if strings.Join(got, " ") != "CNAME CNAME AAAA" {
			t.Errorf("answer types %v", got)
		}
	})
	t.Run("real AAAA passes", func(t *testing.T) {
		m := query(t, addr, "udp", nil, "both.example.org.", dns.TypeAAAA, true)
		if got := aaaas(m); len(got) != 1 || got[0] != "2001:db8:5::1" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("excluded ::ffff:0:0/96", func(t *testing.T) {
		m := query(t, addr, "udp", nil, "mapped.example.org.", dns.TypeAAAA, true)
		prefixOfAnswer(t, m)
		if !strings.HasSuffix(aaaas(m)[0], "::c633:6406") {
			t.Errorf("got %v", aaaas(m))
		}
	})
	t.Run("NXDOMAIN", func(t *testing.T) {
		if m := query(t, addr, "udp", nil, "nope.example.org.", dns.TypeAAAA, true); m.Rcode != dns.RcodeNameError {
			t.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
		}
	})
	t.Run("PTR", func(t *testing.T) {
		for _, p := range []string{prefixA, prefixB} {
			rev, _ := dns.ReverseAddr(p + "c633:6402")
			m := query(t, addr, "udp", nil, rev, dns.TypePTR, true)
			if len(m.Answer) != 2 {
				t.Fatalf("answer %v", m.Answer)
			}
			if cn, ok := m.Answer[0].(*dns.CNAME); !ok || cn.Target != "2.100.51.198.in-addr.arpa." {
				t.Errorf("CNAME %v", m.Answer[0])
			}
			if ptr, ok := m.Answer[1].(*dns.PTR); !ok || ptr.Ptr != "v4.example.org." {
				t.Errorf("PTR %v", m.Answer[1])
			}
		}
	})
	t.Run("ipv4only.arpa", func(t *testing.T) {
		m := query(t, addr6, "udp", nil, "ipv4only.arpa.", dns.TypeAAAA, true)
		got := strings.Join(aaaas(m), " ")
		want := prefixA + "c000:aa " + prefixA + "c000:ab " + prefixB + "c000:aa " + prefixB + "c000:ab"
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
	t.Run("truncation and TCP", func(t *testing.T) {
		m := query(t, addr, "udp", nil, "big.example.org.", dns.TypeAAAA, false)
		if !m.Truncated {
			t.Errorf("60 AAAA over 512-byte UDP without TC (%d answers)", len(m.Answer))
		}
		m = query(t, addr, "tcp", nil, "big.example.org.", dns.TypeAAAA, false)
		if m.Truncated || len(aaaas(m)) != 60 {
			t.Errorf("TCP: TC=%v, %d AAAA", m.Truncated, len(aaaas(m)))
		}
	})

	const clients = 3000
	assign := func() []string {
		out := make([]string, clients)
		for i := range out {
			out[i] = prefixOfAnswer(t, query(t, addr, "udp", sourceIP(i), "v4.example.org.", dns.TypeAAAA, false))
		}
		return out
	}
	var before []string
	t.Run("balance 1:2", func(t *testing.T) {
		before = assign()
		nb := 0
		for _, p := range before {
			if p == "b" {
				nb++
			}
		}
		share := float64(nb) / clients
		t.Logf("nat64-b (weight 2) got %d of %d clients (%.3f)", nb, clients, share)
		if math.Abs(share-2.0/3) > 0.03 {
			t.Errorf("share of weight-2 instance %.3f, want 0.667 ± 0.03", share)
		}
		// Sticky: ask again, same prefix.
		for i := 0; i < 50; i++ {
			if p := prefixOfAnswer(t, query(t, addr, "udp", sourceIP(i), "www.example.org.", dns.TypeAAAA, false)); p != before[i] {
				t.Fatalf("client %v moved from %s to %s", sourceIP(i), before[i], p)
			}
		}
	})
	t.Run("failover", func(t *testing.T) {
		if before == nil {
			t.Skip("balance failed")
		}
		hA.up.Store(false)
		waitUntil(t, "clients of nat64-a move", func() bool {
			for i := 0; i < clients; i++ {
				if before[i] == "a" {
					return prefixOfAnswer(t, query(t, addr, "udp", sourceIP(i), "v4.example.org.", dns.TypeAAAA, false)) == "b"
				}
			}
			return false
		})
		during := assign()
		for i := range during {
			if during[i] != "b" {
				t.Fatalf("client %v still sent to the dead instance", sourceIP(i))
			}
		}
		hA.up.Store(true)
		waitUntil(t, "nat64-a back", func() bool {
			for i := 0; i < clients; i++ {
				if before[i] == "a" {
					return prefixOfAnswer(t, query(t, addr, "udp", sourceIP(i), "v4.example.org.", dns.TypeAAAA, false)) == "a"
				}
			}
			return false
		})
		after := assign()
		for i := range after {
			if after[i] != before[i] {
				t.Fatalf("client %v: %s before, %s after recovery", sourceIP(i), before[i], after[i])
			}
		}
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
