// Package e2e runs the whole DNS64 + NAT64 flow in network namespaces:
// an IPv6-only client resolving through our CoreDNS with the dns64 plugin,
// two nat64ctl translators with their own prefixes and pool4s, both read
// from one nat64.toml, and an IPv4-only server; real dig, curl and ping.
// The one test is long because it is the whole flow, step by step.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/test/netns"
)

//	         lan (bridge br0, 2001:db8:1::/64)
//	client ::2      dns ::53      xa ::a          xb ::b
//	                               | 198.51.100.0/30 | 198.51.100.4/30
//	                               +---- server ----+   (192.0.2.80 on lo)
//
// Client routes 64:ff9b:1::/96 via xa and 2001:db8:64::/96 via xb; the
// server routes pool4 203.0.113.1 back via xa and 203.0.113.2 via xb.
type world struct {
	lan, client, dns, xa, xb, server *netns.NS
	dir                              string
	fastpath                         string // the translators' --fastpath
	nat64ctl, coredns                string
	procs                            map[string]*netns.Process
}

const (
	clientAddr = "2001:db8:1::2"
	dnsAddr    = "2001:db8:1::53"
	serviceV4  = "192.0.2.80" // the IPv4-only web server
	prefixA    = "64:ff9b:1::/96"
	prefixB    = "2001:db8:64::/96"
	pool4A     = "203.0.113.1"
	pool4B     = "203.0.113.2"
)

const nat64TOML = `[[instance]]
name    = "nat64-a"
prefix  = "64:ff9b:1::/96"
pool4   = ["203.0.113.1/32"]
weight  = 1
control = "[2001:db8:1::a]:9164"

  [[instance.static]]
  proto = "tcp"
  ipv6  = "[2001:db8:1::2]:8080"
  ipv4  = "203.0.113.1:8080"

[[instance]]
name    = "nat64-b"
prefix  = "2001:db8:64::/96"
pool4   = ["203.0.113.2/32"]
weight  = 2
control = "[2001:db8:1::b]:9164"
`

const corefile = `. {
    dns64 {
        instances nat64.toml
        health_interval 500ms
        health_timeout 300ms
        ignore_aaaa broken.example
    }
    file db.example example.
    file db.reverse 2.0.192.in-addr.arpa.
}
`

const zone = `$ORIGIN example.
$TTL 300
@       IN SOA ns.example. hostmaster.example. 1 7200 3600 1209600 60
@       IN NS  ns.example.
ns      IN AAAA 2001:db8:1::53
www     IN A    192.0.2.80
alias   IN CNAME www
dual    IN A    192.0.2.80
dual    IN AAAA 2001:db8:1::80
broken  IN A    192.0.2.80
broken  IN AAAA 2001:db8:dead::80
mapped  IN A    192.0.2.80
mapped  IN AAAA ::ffff:192.0.2.80
`

const reverseZone = `$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@       IN SOA ns.example. hostmaster.example. 1 7200 3600 1209600 60
@       IN NS  ns.example.
80      IN PTR www.example.
`

// binaries builds nat64ctl and CoreDNS once per test run, with the go
// build flags given.
type binaries struct {
	flags []string
	once  sync.Once
	paths [2]string
	err   error
}

func (b *binaries) get(t *testing.T) (nat64ctl, coredns string) {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "nat64kit-e2e-bin")
		if err != nil {
			b.err = err
			return
		}
		for i, pkg := range []string{"nat64ctl", "plugin/coredns"} {
			b.paths[i] = filepath.Join(dir, filepath.Base(pkg))
			args := append(append([]string{"build"}, b.flags...), "-o", b.paths[i], "../../"+pkg)
			if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
				b.err = fmt.Errorf("go %v: %v\n%s", args, err, out)
				return
			}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.paths[0], b.paths[1]
}

var plainBinaries = &binaries{}

func build(t *testing.T) (nat64ctl, coredns string) { return plainBinaries.get(t) }

// worldFiles are what a world runs: its nat64.toml and Corefile, the
// binaries of nat64ctl and CoreDNS, and the translators' --fastpath.
type worldFiles struct {
	nat64TOML, corefile string
	nat64ctl, coredns   string
	fastpath            string
}

func newWorld(t *testing.T, fastpath string) *world {
	netns.RequireRoot(t)
	n, c := build(t)
	return newWorldWith(t, worldFiles{nat64TOML: nat64TOML, corefile: corefile, nat64ctl: n, coredns: c, fastpath: fastpath})
}

func newWorldWith(t *testing.T, f worldFiles) *world {
	netns.RequireRoot(t)
	for prog, pkg := range map[string]string{"dig": "dnsutils", "curl": "curl", "ping": "iputils-ping"} {
		netns.RequireCommand(t, prog, pkg)
	}
	w := &world{fastpath: f.fastpath,
		lan: netns.New(t, "lan"), client: netns.New(t, "client"), dns: netns.New(t, "dns"),
		xa: netns.New(t, "xa"), xb: netns.New(t, "xb"), server: netns.New(t, "server"),
		dir: t.TempDir(), procs: map[string]*netns.Process{},
	}
	w.nat64ctl, w.coredns = f.nat64ctl, f.coredns

	w.lan.MustExec("ip", "link", "add", "br0", "type", "bridge")
	w.lan.LinkUp("br0")
	for _, m := range []struct {
		ns   *netns.NS
		name string
		addr string
	}{{w.client, "client", clientAddr}, {w.dns, "dns", dnsAddr}, {w.xa, "xa", "2001:db8:1::a"}, {w.xb, "xb", "2001:db8:1::b"}} {
		netns.Veth(t, w.lan, "l-"+m.name, m.ns, "lan0")
		w.lan.MustExec("ip", "link", "set", "l-"+m.name, "master", "br0")
		m.ns.AddAddr("lan0", m.addr+"/64")
	}
	netns.Veth(t, w.xa, "v4", w.server, "sa")
	netns.Veth(t, w.xb, "v4", w.server, "sb")
	w.xa.AddAddr("v4", "198.51.100.1/30")
	w.server.AddAddr("sa", "198.51.100.2/30")
	w.xb.AddAddr("v4", "198.51.100.5/30")
	w.server.AddAddr("sb", "198.51.100.6/30")
	w.server.AddAddr("lo", serviceV4+"/32")
	w.server.Sysctl("net.ipv6.conf.all.disable_ipv6", "1")
	w.xa.AddRoute(serviceV4+"/32", "198.51.100.2", "v4")
	w.xb.AddRoute(serviceV4+"/32", "198.51.100.6", "v4")
	w.server.AddRoute(pool4A+"/32", "198.51.100.1", "sa")
	w.server.AddRoute(pool4B+"/32", "198.51.100.5", "sb")
	w.client.AddRoute(prefixA, "2001:db8:1::a", "lan0")
	w.client.AddRoute(prefixB, "2001:db8:1::b", "lan0")
	w.client.SetResolvConf(netip.MustParseAddr(dnsAddr))

	for name, body := range map[string]string{"nat64.toml": f.nat64TOML, "Corefile": f.corefile, "db.example": zone, "db.reverse": reverseZone} {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.startTranslator(t, "nat64-a")
	w.startTranslator(t, "nat64-b")
	w.procs["coredns"] = w.dns.Start("sh", "-c", "cd "+w.dir+" && exec "+w.coredns+" -conf Corefile -dns.port 53")
	netns.WaitFor(t, 15*time.Second, "coredns to answer", func() error {
		_, err := w.dig("www.example", "A")
		return err
	})
	serveHTTP(t, w.server, "0.0.0.0:80")
	return w
}

func (w *world) ns(instance string) *netns.NS {
	if instance == "nat64-a" {
		return w.xa
	}
	return w.xb
}

func (w *world) startTranslator(t *testing.T, instance string) {
	t.Helper()
	ns := w.ns(instance)
	w.procs[instance] = ns.Start(w.nat64ctl, "run", "-c", filepath.Join(w.dir, "nat64.toml"), "--instance", instance, "--fastpath", w.fastpath)
	netns.WaitFor(t, 10*time.Second, instance+" to be healthy", func() error {
		_, err := w.ctl(instance, "stats")
		return err
	})
}

// ctl runs a nat64ctl client command in the instance's namespace.
func (w *world) ctl(instance string, args ...string) (string, error) {
	args = append(append([]string{w.nat64ctl}, args...), "-c", filepath.Join(w.dir, "nat64.toml"), "--instance", instance)
	return w.ns(instance).Exec(context.Background(), args...)
}

// dig asks the DNS64 server from the client and returns the +short lines.
func (w *world) dig(args ...string) ([]string, error) {
	out, err := w.client.Exec(context.Background(), append([]string{"dig", "+short", "+time=2", "+tries=2", "@" + dnsAddr}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("dig %v: %v: %s", args, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// curl fetches the server's page from the client; the page is the peer
// address the server saw.
func (w *world) curl(url string, extra ...string) (string, error) {
	args := append([]string{"curl", "-sS", "--max-time", "10", "-g"}, extra...)
	return w.client.Exec(context.Background(), append(args, url)...)
}

func serveHTTP(t *testing.T, ns *netns.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(rw, host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// prefixOf names the instance whose prefix holds a.
func prefixOf(a string) string {
	ip, err := netip.ParseAddr(a)
	switch {
	case err != nil:
		return "not an address: " + a
	case netip.MustParsePrefix(prefixA).Contains(ip):
		return "nat64-a"
	case netip.MustParsePrefix(prefixB).Contains(ip):
		return "nat64-b"
	}
	return "outside both prefixes: " + a
}

var pool4Of = map[string]string{"nat64-a": pool4A, "nat64-b": pool4B}

// TestEndToEnd runs the whole flow twice: with the user-space translators
// alone, and with their kernel fast paths (one program and one pair of
// maps per instance).
func TestEndToEnd(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		t.Run("fastpath "+mode, func(t *testing.T) { testEndToEnd(t, mode) })
	}
}

func testEndToEnd(t *testing.T, mode string) {
	w := newWorld(t, mode)

	// 1. The mission, step by step.
	t.Run("flow", func(t *testing.T) {
		answers, err := w.dig("www.example", "AAAA")
		if err != nil || len(answers) != 1 {
			t.Fatalf("AAAA www.example: %v %v", answers, err)
		}
		inst := prefixOf(answers[0])
		if pool4Of[inst] == "" {
			t.Fatalf("answer %s", inst)
		}
		if v4, err := w.client.Exec(context.Background(), w.nat64ctl, "addr", "extract", answers[0], "-c", filepath.Join(w.dir, "nat64.toml")); err != nil || strings.TrimSpace(v4) != serviceV4 {
			t.Errorf("the synthesized address embeds %q (%v)", v4, err)
		}
		// curl resolves through the namespace's resolv.conf, like any client.
		seen, err := w.curl("http://www.example/")
		if err != nil || seen != pool4Of[inst] {
			t.Errorf("the server saw %q (%v), want %s's pool4 %s", seen, err, inst, pool4Of[inst])
		}
		sessions, err := w.ctl(inst, "session", "show", "--proto", "tcp")
		if err != nil || !strings.Contains(sessions, serviceV4+":80") || !strings.Contains(sessions, "["+clientAddr+"]") {
			t.Errorf("%s session show: %v\n%s", inst, err, sessions)
		}
		// Each instance has its own fast path, attached or not as asked.
		for _, in := range []string{"nat64-a", "nat64-b"} {
			out, err := w.ctl(in, "stats", "--json")
			var st control.Stats
			if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.FastPath == nil || st.FastPath.Active != (w.fastpath == "on") {
				t.Errorf("%s: fastpath %s, stats say %v %s", in, w.fastpath, err, out)
			}
		}
	})

	// 2. Load balancing by client address, by weight 1:2.
	const clients = 300
	addrs := make([]string, clients)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("2001:db8:1::1:%x", i+1)
	}
	w.client.MustExec("sh", "-c", "for a in "+strings.Join(addrs, " ")+"; do ip -6 addr add $a/64 dev lan0 nodad; done")
	chosen := map[string]string{}   // client address -> instance of its answer
	answered := map[string]string{} // client address -> its AAAA
	count := func() map[string]int {
		n := map[string]int{}
		for _, a := range addrs {
			ans, err := w.dig("-b", a, "www.example", "AAAA")
			if err != nil || len(ans) != 1 {
				t.Fatalf("from %s: %v %v", a, ans, err)
			}
			chosen[a], answered[a] = prefixOf(ans[0]), ans[0]
			n[chosen[a]]++
		}
		return n
	}
	t.Run("balance", func(t *testing.T) {
		n := count()
		shareB := float64(n["nat64-b"]) / clients
		t.Logf("%d clients: %v (nat64-b share %.2f, weight share 0.67)", clients, n, shareB)
		if n["nat64-a"]+n["nat64-b"] != clients || shareB < 0.55 || shareB > 0.78 {
			t.Errorf("spread %v is not 1:2 within tolerance", n)
		}
		// Each client fetches the address it was given (curl's own lookup
		// would ask from the primary address, not this one).
		for _, a := range addrs[:20] {
			seen, err := w.curl("http://["+answered[a]+"]/", "--interface", a)
			if err != nil || seen != pool4Of[chosen[a]] {
				t.Errorf("client %s (answered %s): server saw %q %v", a, chosen[a], seen, err)
			}
		}
	})

	// 3. Failover: stop nat64-a; only its clients move, to nat64-b.
	t.Run("failover", func(t *testing.T) {
		before := map[string]string{}
		for k, v := range chosen {
			before[k] = v
		}
		w.procs["nat64-a"].Stop()
		netns.WaitFor(t, 10*time.Second, "dns64 to drop nat64-a", func() error {
			ans, err := w.dig("-b", firstOf(before, "nat64-a"), "www.example", "AAAA")
			if err != nil || len(ans) != 1 || prefixOf(ans[0]) != "nat64-b" {
				return fmt.Errorf("still %v %v", ans, err)
			}
			return nil
		})
		if n := count(); n["nat64-b"] != clients {
			t.Errorf("with nat64-a down: %v", n)
		}
		moved := firstOf(before, "nat64-a")
		seen, err := w.curl("http://["+answered[moved]+"]/", "--interface", moved)
		if err != nil || seen != pool4B {
			t.Errorf("fetch during failover: %q %v", seen, err)
		}

		w.startTranslator(t, "nat64-a")
		netns.WaitFor(t, 10*time.Second, "dns64 to take nat64-a back", func() error {
			ans, err := w.dig("-b", firstOf(before, "nat64-a"), "www.example", "AAAA")
			if err != nil || len(ans) != 1 || prefixOf(ans[0]) != "nat64-a" {
				return fmt.Errorf("still %v %v", ans, err)
			}
			return nil
		})
		count()
		changed := 0
		for a, inst := range before {
			if chosen[a] != inst {
				changed++
			}
		}
		if changed != 0 {
			t.Errorf("%d clients changed instance across the failover and recovery; rendezvous hashing should move none", changed)
		}
	})

	// 4. Exclusions and discovery.
	t.Run("exclusions and discovery", func(t *testing.T) {
		for _, name := range []string{"broken.example", "mapped.example", "alias.example"} {
			ans, err := w.dig(name, "AAAA")
			last := ""
			if len(ans) > 0 {
				last = ans[len(ans)-1]
			}
			if err != nil || pool4Of[prefixOf(last)] == "" {
				t.Errorf("%s AAAA: %v %v (want a synthesized answer)", name, ans, err)
			}
		}
		if ans, _ := w.dig("dual.example", "AAAA"); len(ans) != 1 || ans[0] != "2001:db8:1::80" {
			t.Errorf("dual.example keeps its real AAAA: %v", ans)
		}
		ans, err := w.dig("ipv4only.arpa", "AAAA")
		found := map[string]bool{}
		for _, a := range ans {
			found[prefixOf(a)] = true
		}
		if err != nil || len(ans) != 4 || !found["nat64-a"] || !found["nat64-b"] {
			t.Errorf("ipv4only.arpa: %v %v (want 192.0.0.170 and .171 under both prefixes)", ans, err)
		}
		ans, err = w.dig("-x", "64:ff9b:1::c000:250")
		if err != nil || len(ans) == 0 || ans[len(ans)-1] != "www.example." {
			t.Errorf("reverse of a synthesized address: %v %v", ans, err)
		}
	})

	// 5. IPv4-initiated access through a static BIB entry.
	t.Run("static BIB", func(t *testing.T) {
		serveHTTP(t, w.client, "["+clientAddr+"]:8080")
		seen, err := w.server.Exec(context.Background(), "curl", "-sS", "--max-time", "10", "http://"+pool4A+":8080/")
		want := "64:ff9b:1::c633:6402" // 198.51.100.2, the server's address toward nat64-a
		if err != nil || seen != want {
			t.Errorf("IPv4 server to the IPv6 service: %q %v, want the client to see %s", seen, err, want)
		}
	})

	// 6. Misconfiguration is caught before it breaks anything.
	t.Run("misconfiguration", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "Corefile")
		os.WriteFile(bad, []byte(". {\n    dns64 {\n        prefix 64:ff9b:2::/96 2001:db8:64::/96\n    }\n}\n"), 0o644)
		cfg := filepath.Join(w.dir, "nat64.toml")
		out, err := exec.Command(w.nat64ctl, "check", "-c", cfg, "--corefile", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), cfg) || !strings.Contains(string(out), bad) {
			t.Errorf("check: %v\n%s", err, out)
		}
		broken := filepath.Join(t.TempDir(), "nat64.toml")
		os.WriteFile(broken, []byte(strings.Replace(nat64TOML, "64:ff9b:1::/96", "64:ff9b:1::/80", 1)), 0o644)
		// In a namespace of its own, so "installs nothing" can be seen.
		links := w.dns.MustExec("ip", "-o", "link")
		out2, err := w.dns.Exec(context.Background(), w.nat64ctl, "run", "-c", broken, "--instance", "nat64-a")
		if err == nil || !strings.Contains(out2, broken+":3: instance[0].prefix") {
			t.Errorf("run with an invalid config: %v\n%s", err, out2)
		}
		if after := w.dns.MustExec("ip", "-o", "link"); after != links {
			t.Errorf("a refused start changed the links:\n%s\nwas\n%s", after, links)
		}
	})
}

func firstOf(m map[string]string, inst string) string {
	for a, i := range m {
		if i == inst {
			return a
		}
	}
	return ""
}
