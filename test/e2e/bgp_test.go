package e2e

// BGP through a real BIRD 2 (issue 15): two translator hosts, each running
// `nat64ctl run` and BIRD with corefile-examples/bird.conf, announce their
// NAT64 prefix and pool4 to an upstream router's BIRD; an IPv6-only client
// behind the upstream reaches an IPv4 server through either, and when one
// translator stops (SIGTERM) or dies (kill -9) its routes are withdrawn,
// the upstream stops routing to it, and dns64 moves clients to the other
// prefix. Also timed: a persistent TUN (the stale announcement it leaves),
// BIRD killed, BIRD frozen (the hold timer), and docs/deploy.md's FRR
// config run in BIRD's place when FRR is installed.

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/test/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// shippedBirdConf is the translator-host BIRD config the project ships.
const shippedBirdConf = "../../corefile-examples/bird.conf"

// The definitions of the shipped file that differ per host; everything
// else in the file runs as shipped.
var birdHostDefines = []string{"ROUTER_ID", "LOCAL_AS", "UPSTREAM_AS", "UPSTREAM6", "UPSTREAM4"}

// renderBirdConf returns the shipped file with the per-host definitions
// set to values. Each must be defined exactly once, on a line of its own;
// lines are neither added nor removed, so a line number in BIRD's error
// about the result is the line of the shipped file.
func renderBirdConf(shipped []byte, values map[string]string) ([]byte, error) {
	out := shipped
	for _, name := range birdHostDefines {
		value, ok := values[name]
		if !ok {
			return nil, fmt.Errorf("no value for %s", name)
		}
		re := regexp.MustCompile(`(?m)^(define\s+` + name + `\s*=\s*)[^;]*;`)
		if n := len(re.FindAllIndex(out, -1)); n != 1 {
			return nil, fmt.Errorf("%s: %d lines `define %s = ...;`, want 1", shippedBirdConf, n, name)
		}
		out = re.ReplaceAll(out, []byte("${1}"+value+";"))
	}
	return out, nil
}

var birdErrorLine = regexp.MustCompile(`([^\s:]+):(\d+):(\d+) (.*)`)

// birdParse runs `bird -p` on a config. A config BIRD refuses is an error
// naming the file and line BIRD reports (`FILE:LINE:COL message`); shownAs,
// when set, names the file the config was rendered from instead.
func birdParse(path, shownAs string) error {
	out, err := exec.Command("bird", "-p", "-c", path).CombinedOutput()
	if err == nil {
		return nil
	}
	m := birdErrorLine.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("bird -p -c %s: %v: %s (no file:line in the output)", path, err, strings.TrimSpace(string(out)))
	}
	if shownAs != "" && m[1] == path {
		return fmt.Errorf("%s:%s:%s (rendered as %s): %s", shownAs, m[2], m[3], path, m[4])
	}
	return fmt.Errorf("%s:%s:%s: %s", m[1], m[2], m[3], m[4])
}

func requireBird(t *testing.T) {
	t.Helper()
	netns.RequireCommand(t, "bird", "bird2")
	netns.RequireCommand(t, "birdc", "bird2")
}

// The shipped file parses as is and as rendered for a host, and a typo in
// it is reported with its file and line.
func TestBGPBirdConfig(t *testing.T) {
	requireBird(t)
	if err := birdParse(shippedBirdConf, ""); err != nil {
		t.Fatalf("the shipped file: %v", err)
	}
	shipped, err := os.ReadFile(shippedBirdConf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rendered, err := renderBirdConf(shipped, translatorBirdValues("xa"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(rendered), "\n") != strings.Count(string(shipped), "\n") {
		t.Fatal("rendering changed the number of lines")
	}
	renderedPath := filepath.Join(dir, "rendered.conf")
	os.WriteFile(renderedPath, rendered, 0o644)
	if err := birdParse(renderedPath, shippedBirdConf); err != nil {
		t.Fatalf("rendered for xa: %v", err)
	}

	// A typo on a known line: BIRD names that line, and so does the error.
	lines := strings.Split(string(shipped), "\n")
	typoLine := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "learn;" })
	if typoLine < 0 {
		t.Fatal("no `learn;` line in the shipped file")
	}
	lines[typoLine] = strings.Replace(lines[typoLine], "learn;", "lern;", 1)
	corrupt := filepath.Join(dir, "corrupt.conf")
	os.WriteFile(corrupt, []byte(strings.Join(lines, "\n")), 0o644)
	err = birdParse(corrupt, "")
	want := fmt.Sprintf("%s:%d:", corrupt, typoLine+1)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a typo on line %d: %v, want an error starting %q", typoLine+1, err, want)
	}
	// docs/deploy.md shows BIRD's own words for this typo, installed as
	// /etc/bird/bird.conf.
	raw, _ := exec.Command("bird", "-p", "-c", corrupt).CombinedOutput()
	shown := strings.ReplaceAll(strings.TrimSpace(string(raw)), corrupt, "/etc/bird/bird.conf")
	if doc, err := os.ReadFile(deployDoc); err != nil || !strings.Contains(string(doc), "\n"+shown+"\n") {
		t.Errorf("%s should show what bird -p prints for `lern;`: %q (%v)", deployDoc, shown, err)
	}
	// Rendered from a corrupted shipped file: the error names the shipped name.
	err = birdParse(corrupt, shippedBirdConf)
	want = fmt.Sprintf("%s:%d:", shippedBirdConf, typoLine+1)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a typo on line %d, rendered: %v, want an error starting %q", typoLine+1, err, want)
	}

	// The BIRD snippets of docs/deploy.md (the upstream's side) parse too.
	doc, err := os.ReadFile(deployDoc)
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile("(?s)```bird\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(snippets) == 0 {
		t.Errorf("%s has no ```bird block", deployDoc)
	}
	for i, snippet := range snippets {
		path := filepath.Join(dir, fmt.Sprintf("doc-%d.conf", i+1))
		os.WriteFile(path, snippet[1], 0o644)
		if err := birdParse(path, ""); err != nil {
			t.Errorf("BIRD block %d of %s: %v\n%s", i+1, deployDoc, err, snippet[1])
		}
	}

	// A shipped file that lost a per-host definition cannot be rendered.
	without := regexp.MustCompile(`(?m)^define\s+UPSTREAM4\b.*\n`).ReplaceAll(shipped, nil)
	if _, err := renderBirdConf(without, translatorBirdValues("xa")); err == nil || !strings.Contains(err.Error(), "UPSTREAM4") {
		t.Errorf("rendering without UPSTREAM4: %v", err)
	}
}

// The BGP world:
//
//	client 2001:db8:1::2 --- up --- server 192.0.2.10 (IPv4 only)
//	dns    2001:db8:53::2 ---/ | \
//	         2001:db8:a::/64   |  2001:db8:b::/64
//	         192.0.2.0/30      |  192.0.2.4/30
//	                 xa (nat64-a, BIRD)   xb (nat64-b, BIRD)
//
// The upstream router up has no static route to any NAT64 prefix or pool4:
// it routes them only as its BIRD learns them by BGP from xa and xb. Each
// translator's default routes point at up.
const (
	bgpPrefixA = "64:ff9b:1::/96"
	bgpPrefixB = "2001:db8:64::/96"
	bgpPool4A  = "203.0.113.1/32"
	bgpPool4B  = "203.0.113.2/32"
	bgpServer  = "192.0.2.10"
	bgpClient  = "2001:db8:1::2"
	bgpDNS     = "2001:db8:53::2"
	upstreamAS = "64496"
	siteAS     = "64500"
)

const bgpNAT64TOML = `[[instance]]
name    = "nat64-a"
prefix  = "64:ff9b:1::/96"
pool4   = ["203.0.113.1/32"]
control = "[2001:db8:a::2]:9164"

[[instance]]
name    = "nat64-b"
prefix  = "2001:db8:64::/96"
pool4   = ["203.0.113.2/32"]
control = "[2001:db8:b::2]:9164"
`

const bgpCorefile = `. {
    dns64 {
        instances nat64.toml
        health_interval 200ms
        health_timeout 150ms
    }
    file db.example example.
}
`

const bgpZone = `$ORIGIN example.
$TTL 300
@       IN SOA ns.example. hostmaster.example. 1 7200 3600 1209600 60
@       IN NS  ns.example.
ns      IN AAAA 2001:db8:53::2
www     IN A    192.0.2.10
`

// translatorBirdValues are the per-host definitions of translator host
// "xa" or "xb": its address toward up is ::2 / .2 of its link.
func translatorBirdValues(host string) map[string]string {
	v := map[string]string{"LOCAL_AS": siteAS, "UPSTREAM_AS": upstreamAS}
	switch host {
	case "xa":
		v["ROUTER_ID"], v["UPSTREAM6"], v["UPSTREAM4"] = "192.0.2.2", "2001:db8:a::1", "192.0.2.1"
	case "xb":
		v["ROUTER_ID"], v["UPSTREAM6"], v["UPSTREAM4"] = "192.0.2.6", "2001:db8:b::1", "192.0.2.5"
	}
	return v
}

// upstreamBirdConf is the upstream router's side (not shipped; an
// operator's router has its own): it takes the translators' routes and
// writes them into its kernel table. Short timers keep the test quick.
const upstreamBirdConf = `router id 192.0.2.1;
log stderr all;
protocol device {
}
protocol kernel {
	ipv4 { import none; export all; };
}
protocol kernel {
	ipv6 { import none; export all; };
}
template bgp nat64_host {
	local as ` + upstreamAS + `;
	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 2;
	graceful restart off;
}
protocol bgp xa6 from nat64_host {
	neighbor 2001:db8:a::2 as ` + siteAS + `;
	ipv6 { import all; export none; };
}
protocol bgp xa4 from nat64_host {
	neighbor 192.0.2.2 as ` + siteAS + `;
	ipv4 { import all; export none; };
}
protocol bgp xb6 from nat64_host {
	neighbor 2001:db8:b::2 as ` + siteAS + `;
	ipv6 { import all; export none; };
}
protocol bgp xb4 from nat64_host {
	neighbor 192.0.2.6 as ` + siteAS + `;
	ipv4 { import all; export none; };
}
`

type bgpWorld struct {
	up, client, dns, server, xa, xb *netns.NS
	dir                             string
	nat64ctl, coredns               string
	translators                     map[string]*netns.Process // by host
	birds                           map[string]*netns.Process // by host, "up" too
	birdSockets                     map[string]string         // by host, "up" too
}

// instanceOf names the nat64ctl instance of a translator host.
var instanceOf = map[string]string{"xa": "nat64-a", "xb": "nat64-b"}

func newBGPWorld(t *testing.T) *bgpWorld {
	netns.RequireRoot(t)
	requireBird(t)
	for prog, pkg := range map[string]string{"dig": "dnsutils", "curl": "curl", "ping": "iputils-ping"} {
		netns.RequireCommand(t, prog, pkg)
	}
	w := &bgpWorld{
		up: netns.New(t, "up"), client: netns.New(t, "client"), dns: netns.New(t, "dns"),
		server: netns.New(t, "server"), xa: netns.New(t, "xa"), xb: netns.New(t, "xb"),
		dir: t.TempDir(), translators: map[string]*netns.Process{}, birds: map[string]*netns.Process{}, birdSockets: map[string]string{},
	}
	w.nat64ctl, w.coredns = build(t)

	w.up.Sysctl("net.ipv4.ip_forward", "1")
	w.up.Sysctl("net.ipv6.conf.all.forwarding", "1")
	netns.Veth(t, w.up, "client", w.client, "up0")
	netns.Veth(t, w.up, "dns", w.dns, "up0")
	netns.Veth(t, w.up, "server", w.server, "up0")
	netns.Veth(t, w.up, "xa", w.xa, "up0")
	netns.Veth(t, w.up, "xb", w.xb, "up0")

	w.up.AddAddr("client", "2001:db8:1::1/64")
	w.client.AddAddr("up0", bgpClient+"/64")
	w.client.AddRoute("default", "2001:db8:1::1", "up0")
	w.client.SetResolvConf(netip.MustParseAddr(bgpDNS))

	w.up.AddAddr("dns", "2001:db8:53::1/64")
	w.dns.AddAddr("up0", bgpDNS+"/64")
	w.dns.AddRoute("default", "2001:db8:53::1", "up0")

	w.server.Sysctl("net.ipv6.conf.all.disable_ipv6", "1")
	w.up.AddAddr("server", "192.0.2.9/29")
	w.server.AddAddr("up0", bgpServer+"/29")
	w.server.AddRoute("default", "192.0.2.9", "up0")

	w.up.AddAddr("xa", "2001:db8:a::1/64")
	w.up.AddAddr("xa", "192.0.2.1/30")
	w.xa.AddAddr("up0", "2001:db8:a::2/64")
	w.xa.AddAddr("up0", "192.0.2.2/30")
	w.xa.AddRoute("default", "2001:db8:a::1", "up0")
	w.xa.AddRoute("default", "192.0.2.1", "up0")
	w.up.AddAddr("xb", "2001:db8:b::1/64")
	w.up.AddAddr("xb", "192.0.2.5/30")
	w.xb.AddAddr("up0", "2001:db8:b::2/64")
	w.xb.AddAddr("up0", "192.0.2.6/30")
	w.xb.AddRoute("default", "2001:db8:b::1", "up0")
	w.xb.AddRoute("default", "192.0.2.5", "up0")

	for name, body := range map[string]string{"nat64.toml": bgpNAT64TOML, "Corefile": bgpCorefile, "db.example": bgpZone, "up.conf": upstreamBirdConf} {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shipped, err := os.ReadFile(shippedBirdConf)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"xa", "xb"} {
		conf, err := renderBirdConf(shipped, translatorBirdValues(host))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(w.dir, host+".conf")
		if err := os.WriteFile(path, conf, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := birdParse(path, shippedBirdConf); err != nil {
			t.Fatal(err)
		}
		w.startTranslator(t, host)
		w.startBird(t, host, path)
	}
	upConf := filepath.Join(w.dir, "up.conf")
	if err := birdParse(upConf, ""); err != nil {
		t.Fatal(err)
	}
	w.startBird(t, "up", upConf)

	w.dns.Start("sh", "-c", "cd "+w.dir+" && exec "+w.coredns+" -conf Corefile -dns.port 53")
	netns.WaitFor(t, 15*time.Second, "coredns to answer", func() error {
		_, err := w.dig(bgpClient, "www.example", "A")
		return err
	})
	serveHTTP(t, w.server, "0.0.0.0:80")
	t.Cleanup(func() {
		if t.Failed() {
			for host, sock := range w.birdSockets {
				out, _ := w.birdc(sock, "show", "protocols", "all")
				routes, _ := w.birdc(sock, "show", "route", "all")
				t.Logf("BIRD of %s:\n%s\n%s", host, out, routes)
			}
		}
	})
	return w
}

func (w *bgpWorld) host(name string) *netns.NS {
	switch name {
	case "xa":
		return w.xa
	case "xb":
		return w.xb
	}
	return w.up
}

func (w *bgpWorld) startTranslator(t *testing.T, host string) {
	t.Helper()
	ns := w.host(host)
	w.translators[host] = ns.Start(w.nat64ctl, "run", "-c", filepath.Join(w.dir, "nat64.toml"), "--instance", instanceOf[host])
	netns.WaitFor(t, 10*time.Second, instanceOf[host]+" to be healthy", func() error {
		_, err := ns.Exec(context.Background(), w.nat64ctl, "stats", "-c", filepath.Join(w.dir, "nat64.toml"), "--instance", instanceOf[host])
		return err
	})
}

// startBird runs BIRD in the foreground in host's namespace as a child of
// the test, with a control socket of its own; netns.Start stops it by PID
// at cleanup.
func (w *bgpWorld) startBird(t *testing.T, host, conf string) {
	t.Helper()
	sock := filepath.Join(w.dir, host+".ctl")
	w.birdSockets[host] = sock
	p := w.host(host).Start("bird", "-f", "-c", conf, "-s", sock)
	w.birds[host] = p
	netns.WaitFor(t, 10*time.Second, "BIRD of "+host+" to answer on "+sock, func() error {
		select {
		case <-p.Done():
			return fmt.Errorf("exited: %v: %s", p.Err(), p.Output())
		default:
		}
		_, err := w.birdc(sock, "show", "status")
		return err
	})
}

func (w *bgpWorld) birdc(sock string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc -s %s %v: %v: %s", sock, args, err, out)
	}
	return string(out), nil
}

// dig asks the DNS64 server from one of the client's addresses.
func (w *bgpWorld) dig(from string, args ...string) ([]string, error) {
	out, err := w.client.Exec(context.Background(), append([]string{"dig", "+short", "+time=1", "+tries=2", "-b", from, "@" + bgpDNS}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("dig %v: %v: %s", args, err, out)
	}
	return strings.Fields(out), nil
}

// routed lists the upstream's kernel routes its BIRD wrote (RTPROT_BIRD):
// destination -> the link toward the translator host ("xa", "xb").
func (w *bgpWorld) routed() (map[string]string, error) {
	got := map[string]string{}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := w.up.Handle().RouteListFiltered(family, &netlink.Route{Protocol: unix.RTPROT_BIRD}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			link := fmt.Sprint("ifindex ", r.LinkIndex)
			if l, err := w.up.Handle().LinkByIndex(r.LinkIndex); err == nil {
				link = l.Attrs().Name
			}
			got[r.Dst.String()] = link
		}
	}
	return got, nil
}

// bothAnnounced is what the upstream routes with both translators up.
func bothAnnounced() map[string]string {
	return map[string]string{bgpPrefixA: "xa", bgpPool4A: "xa", bgpPrefixB: "xb", bgpPool4B: "xb"}
}

// awaitRouted polls the upstream's kernel table every 10 ms until its BIRD
// routes are exactly want, and returns how long that took from start; it
// logs when each destination that changed on the way did so.
func (w *bgpWorld) awaitRouted(t *testing.T, start time.Time, timeout time.Duration, what string, want map[string]string) time.Duration {
	t.Helper()
	deadline := start.Add(timeout)
	first, _ := w.routed()
	changed := map[string]time.Duration{}
	for {
		got, err := w.routed()
		now := time.Since(start)
		for dst := range maps.Keys(first) {
			if _, ok := changed[dst]; !ok && got[dst] != first[dst] {
				changed[dst] = now
			}
		}
		for dst := range maps.Keys(got) {
			if _, ok := changed[dst]; !ok && got[dst] != first[dst] {
				changed[dst] = now
			}
		}
		if err == nil && maps.Equal(got, want) {
			var parts []string
			for _, dst := range slices.Sorted(maps.Keys(changed)) {
				parts = append(parts, fmt.Sprintf("%s %v", dst, changed[dst].Round(time.Millisecond)))
			}
			if len(parts) > 0 {
				t.Logf("at the upstream: %s", strings.Join(parts, ", "))
			}
			return now
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for the upstream to route %s: have %v (%v), want %v", timeout, what, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ownRoutes counts the routes nat64ctl owns (protocol 64) in host's kernel.
func (w *bgpWorld) ownRoutes(host string) int {
	n := 0
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, _ := w.host(host).Handle().RouteListFiltered(family, &netlink.Route{Protocol: 64}, netlink.RT_FILTER_PROTOCOL)
		n += len(rs)
	}
	return n
}

// synthesized is the server's address under a prefix.
func synthesized(prefix string) string {
	p := netip.MustParsePrefix(prefix).Addr().As16()
	v4 := netip.MustParseAddr(bgpServer).As4()
	copy(p[12:], v4[:])
	return netip.AddrFrom16(p).String()
}

func inPrefix(addr, prefix string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && netip.MustParsePrefix(prefix).Contains(a)
}

func TestBGPFailover(t *testing.T) {
	w := newBGPWorld(t)
	prefixOfHost := map[string]string{"xa": bgpPrefixA, "xb": bgpPrefixB}
	pool4OfHost := map[string]string{"xa": bgpPool4A, "xb": bgpPool4B}

	// Client addresses; dns64 picks a prefix per client address.
	clients := make([]string, 16)
	for i := range clients {
		clients[i] = fmt.Sprintf("2001:db8:1::100:%x", i+1)
	}
	w.client.MustExec("sh", "-c", "for a in "+strings.Join(clients, " ")+"; do ip -6 addr add $a/64 dev up0 nodad; done")
	answers := func() (map[string]string, error) {
		got := map[string]string{} // client -> host of its answer's prefix
		for _, c := range clients {
			ans, err := w.dig(c, "www.example", "AAAA")
			if err != nil || len(ans) != 1 {
				return nil, fmt.Errorf("from %s: %v %v", c, ans, err)
			}
			switch {
			case inPrefix(ans[0], bgpPrefixA):
				got[c] = "xa"
			case inPrefix(ans[0], bgpPrefixB):
				got[c] = "xb"
			default:
				return nil, fmt.Errorf("from %s: %s is in neither prefix", c, ans[0])
			}
		}
		return got, nil
	}

	// reaches fetches the server's page through host's prefix and pings it.
	reaches := func(host string) error {
		dst := synthesized(prefixOfHost[host])
		seen, err := w.client.Exec(context.Background(), "curl", "-sS", "--max-time", "5", "-g", "http://["+dst+"]/")
		if err != nil {
			return err
		}
		if a, err := netip.ParseAddr(seen); err != nil || !netip.MustParsePrefix(pool4OfHost[host]).Contains(a) {
			return fmt.Errorf("via %s the server saw %q, want an address of %s", dst, seen, pool4OfHost[host])
		}
		return w.client.Ping(netip.MustParseAddr(dst), 2)
	}

	var atStart map[string]string
	t.Run("announced", func(t *testing.T) {
		took := w.awaitRouted(t, time.Now(), 20*time.Second, "both translators", bothAnnounced())
		t.Logf("all four routes at the upstream %v after its BIRD answered", took.Round(time.Millisecond))
		// BIRD's own view names the session each came by.
		out, err := w.birdc(w.birdSockets["up"], "show", "route")
		if err != nil {
			t.Fatal(err)
		}
		for prefix, proto := range map[string]string{bgpPrefixA: "xa6", bgpPool4A: "xa4", bgpPrefixB: "xb6", bgpPool4B: "xb4"} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `\s.*\[` + proto + ` `).MatchString(out) {
				t.Errorf("birdc show route: %s not learned by %s:\n%s", prefix, proto, out)
			}
		}
		for _, host := range []string{"xa", "xb"} {
			if n := w.ownRoutes(host); n != 2 {
				t.Errorf("%s: %d routes with protocol 64, want 2", host, n)
			}
			if err := reaches(host); err != nil {
				t.Errorf("through %s: %v", host, err)
			}
		}
		if atStart, err = answers(); err != nil {
			t.Fatal(err)
		}
		if n := countOf(atStart, "xa"); n == 0 || n == len(clients) {
			t.Fatalf("dns64 spread %d clients as %v: want both prefixes in use", len(clients), atStart)
		}
	})
	if atStart == nil {
		t.FailNow()
	}
	onlyB := map[string]string{bgpPrefixB: "xb", bgpPool4B: "xb"}
	// awaitAnswersAsAtStart waits for dns64 to take a restarted nat64-a
	// back: every client answered as before the failure.
	awaitAnswersAsAtStart := func(t *testing.T) {
		t.Helper()
		netns.WaitFor(t, 10*time.Second, "dns64 to take nat64-a back", func() error {
			got, err := answers()
			if err != nil {
				return err
			}
			if !maps.Equal(got, atStart) {
				return fmt.Errorf("answers %v, before the failure %v", got, atStart)
			}
			return nil
		})
	}

	// stopAndReturn takes xa down with sig, checks the withdrawal, the
	// failover and the return, and logs the times.
	stopAndReturn := func(t *testing.T, sig syscall.Signal) {
		p := w.translators["xa"]
		start := time.Now()
		if err := p.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		withdrawn := w.awaitRouted(t, start, 10*time.Second, "nat64-b's routes only", onlyB)
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("nat64ctl did not exit")
		}
		t.Logf("%v: nat64-a's prefix and pool4 withdrawn at the upstream %v after the signal", sig, withdrawn.Round(time.Millisecond))
		if withdrawn > 5*time.Second {
			t.Errorf("withdrawal took %v", withdrawn)
		}
		if n := w.ownRoutes("xa"); n != 0 {
			t.Errorf("xa still has %d routes with protocol 64 after %v", n, sig)
		}
		// The BGP session stayed up: the routes left by an UPDATE, not a reset.
		if out, err := w.birdc(w.birdSockets["up"], "show", "protocols", `"xa?"`); err != nil || strings.Count(out, "Established") != 2 {
			t.Errorf("sessions to xa: %v\n%s", err, out)
		}
		// The upstream no longer routes to the dead instance.
		if rs, err := w.up.Handle().RouteGet(netip.MustParseAddr(synthesized(bgpPrefixA)).AsSlice()); err == nil {
			t.Errorf("the upstream still routes %s: %v", synthesized(bgpPrefixA), rs)
		}
		if err := reaches("xb"); err != nil {
			t.Errorf("through xb with xa down: %v", err)
		}

		// dns64 moves xa's clients to xb.
		netns.WaitFor(t, 10*time.Second, "dns64 to answer only with "+bgpPrefixB, func() error {
			got, err := answers()
			if err != nil {
				return err
			}
			if n := countOf(got, "xa"); n != 0 {
				return fmt.Errorf("%d clients still get %s", n, bgpPrefixA)
			}
			return nil
		})
		// An unmodified client (curl resolving through resolv.conf) gets there.
		seen, err := w.client.Exec(context.Background(), "curl", "-sS", "--max-time", "5", "http://www.example/")
		if a, perr := netip.ParseAddr(seen); err != nil || perr != nil || !netip.MustParsePrefix(bgpPool4B).Contains(a) {
			t.Errorf("curl http://www.example/ with xa down: %q %v", seen, err)
		}

		// Restart: the routes come back at the upstream, and so do xa's clients.
		start = time.Now()
		w.startTranslator(t, "xa")
		back := w.awaitRouted(t, start, 15*time.Second, "both translators again", bothAnnounced())
		t.Logf("after the restart, nat64-a's routes back at the upstream %v after the start", back.Round(time.Millisecond))
		if err := reaches("xa"); err != nil {
			t.Errorf("through xa after the restart: %v", err)
		}
		awaitAnswersAsAtStart(t)
	}
	t.Run("SIGTERM", func(t *testing.T) { stopAndReturn(t, syscall.SIGTERM) })
	t.Run("kill -9", func(t *testing.T) { stopAndReturn(t, syscall.SIGKILL) })

	// A TUN device made beforehand (`ip tuntap add`, persistent) outlives
	// the process: after kill -9 its routes stay in the kernel, link down,
	// and BIRD keeps announcing a prefix nobody translates, until
	// `nat64ctl route flush` (or the next start) deals with them.
	t.Run("kill -9 with a persistent TUN", func(t *testing.T) {
		w.translators["xa"].Stop()
		w.awaitRouted(t, time.Now(), 10*time.Second, "nat64-b's routes only", onlyB)
		w.xa.MustExec("ip", "tuntap", "add", "nat64-a", "mode", "tun", "multi_queue")
		w.startTranslator(t, "xa")
		w.awaitRouted(t, time.Now(), 15*time.Second, "both translators again", bothAnnounced())
		p := w.translators["xa"]
		if err := p.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		// Observed for a bounded window: the announcement must not go away.
		for watch := time.Now(); time.Since(watch) < 2*time.Second; time.Sleep(50 * time.Millisecond) {
			if got, err := w.routed(); err != nil || !maps.Equal(got, bothAnnounced()) {
				t.Fatalf("after kill -9 with a persistent TUN the upstream routes %v (%v); expected the stale announcement to stay", got, err)
			}
		}
		if n := w.ownRoutes("xa"); n != 2 {
			t.Errorf("xa has %d routes with protocol 64 after kill -9 with a persistent TUN, want the 2 stale ones", n)
		}
		start := time.Now()
		w.xa.MustExec(w.nat64ctl, "route", "flush", "-c", filepath.Join(w.dir, "nat64.toml"), "--instance", "nat64-a")
		flushed := w.awaitRouted(t, start, 10*time.Second, "nat64-b's routes only", onlyB)
		t.Logf("stale routes of a persistent TUN: withdrawn at the upstream %v after `nat64ctl route flush` started", flushed.Round(time.Millisecond))
		w.xa.MustExec("ip", "link", "del", "nat64-a")
		w.startTranslator(t, "xa")
		w.awaitRouted(t, time.Now(), 15*time.Second, "both translators again", bothAnnounced())
		awaitAnswersAsAtStart(t)
	})

	// xa's BIRD dies while nat64ctl keeps translating: the kernel closes its
	// TCP sessions, so the upstream drops them and the routes learned over
	// them at once, without waiting out the hold time.
	t.Run("BIRD killed", func(t *testing.T) {
		p := w.birds["xa"]
		start := time.Now()
		if err := p.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		withdrawn := w.awaitRouted(t, start, 10*time.Second, "nat64-b's routes only", onlyB)
		t.Logf("BIRD of xa killed: its routes withdrawn at the upstream %v after the signal", withdrawn.Round(time.Millisecond))
		// dns64 polls the translator, not the routes to it: nat64-a is
		// healthy, so its clients keep its prefix, which nothing routes now
		// (the limitation docs/deploy.md describes).
		if got, err := answers(); err != nil || !maps.Equal(got, atStart) {
			t.Errorf("with only xa's BIRD down, dns64 answers %v (%v), before %v", got, err, atStart)
		}
		if n := w.ownRoutes("xa"); n != 2 {
			t.Errorf("xa has %d routes with protocol 64 with nat64ctl still running, want 2", n)
		}
		<-p.Done()
		start = time.Now()
		w.startBird(t, "xa", filepath.Join(w.dir, "xa.conf"))
		back := w.awaitRouted(t, start, 15*time.Second, "both translators again", bothAnnounced())
		t.Logf("BIRD of xa restarted: its routes back at the upstream %v after the start", back.Round(time.Millisecond))
	})

	// xa's BIRD hangs (SIGSTOP: its sessions stay open but fall silent, as
	// when a host freezes or its link silently drops everything): only the
	// upstream's hold timer (3 s, the lower of the two sides' hold times)
	// withdraws the routes.
	t.Run("BIRD frozen", func(t *testing.T) {
		p := w.birds["xa"]
		start := time.Now()
		if err := p.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		withdrawn := w.awaitRouted(t, start, 15*time.Second, "nat64-b's routes only", onlyB)
		t.Logf("BIRD of xa frozen: its routes withdrawn at the upstream %v after SIGSTOP (hold time 3 s)", withdrawn.Round(time.Millisecond))
		if withdrawn < 2*time.Second {
			t.Errorf("withdrawn after %v, before a hold time of 3 s could run out", withdrawn)
		}
		start = time.Now()
		if err := p.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		back := w.awaitRouted(t, start, 15*time.Second, "both translators again", bothAnnounced())
		t.Logf("BIRD of xa thawed: its routes back at the upstream %v after SIGCONT", back.Round(time.Millisecond))
	})

	// docs/deploy.md's FRR config, verbatim (its values are xa's), on xa in
	// place of BIRD: the same announcements and withdrawals.
	t.Run("FRR instead of BIRD", func(t *testing.T) {
		requireFRR(t)
		conf, err := frrConfFromDoc()
		if err != nil {
			t.Fatal(err)
		}
		w.birds["xa"].Stop()
		delete(w.birdSockets, "xa")
		w.awaitRouted(t, time.Now(), 10*time.Second, "nat64-b's routes only", onlyB)
		start := time.Now()
		w.startFRR(t, "xa", conf)
		took := w.awaitRouted(t, start, 20*time.Second, "both translators, xa by FRR", bothAnnounced())
		t.Logf("FRR on xa: its routes at the upstream %v after zebra started", took.Round(time.Millisecond))
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			p := w.translators["xa"]
			start := time.Now()
			if err := p.Cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			withdrawn := w.awaitRouted(t, start, 10*time.Second, "nat64-b's routes only", onlyB)
			<-p.Done()
			t.Logf("FRR, %v: nat64-a's routes withdrawn at the upstream %v after the signal", sig, withdrawn.Round(time.Millisecond))
			if withdrawn > 5*time.Second {
				t.Errorf("withdrawal took %v", withdrawn)
			}
			start = time.Now()
			w.startTranslator(t, "xa")
			back := w.awaitRouted(t, start, 15*time.Second, "both translators again", bothAnnounced())
			t.Logf("FRR: after the restart, nat64-a's routes back at the upstream %v after the start", back.Round(time.Millisecond))
		}
		if err := reaches("xa"); err != nil {
			t.Errorf("through xa, announced by FRR: %v", err)
		}
	})
}

// frrConfFromDoc returns the FRR config block (```frr) of docs/deploy.md.
func frrConfFromDoc() (string, error) {
	doc, err := os.ReadFile(deployDoc)
	if err != nil {
		return "", err
	}
	blocks := regexp.MustCompile("(?s)```frr\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 1 {
		return "", fmt.Errorf("%s: %d ```frr blocks, want 1", deployDoc, len(blocks))
	}
	return string(blocks[0][1]), nil
}

const deployDoc = "../../docs/deploy.md"

// FRR's daemons are where Debian's frr package puts them.
const frrDir = "/usr/lib/frr"

func requireFRR(t *testing.T) {
	t.Helper()
	for _, prog := range []string{frrDir + "/zebra", frrDir + "/bgpd"} {
		if _, err := os.Stat(prog); err != nil {
			t.Skipf("needs FRR's %s (apt-get install frr)", prog)
		}
	}
	netns.RequireCommand(t, "vtysh", "frr")
	if _, err := user.Lookup("frr"); err != nil {
		t.Skipf("needs FRR's user frr (apt-get install frr): %v", err)
	}
}

// vtyshCheck dry-runs an FRR config; a refused one is an error naming the
// file and the line vtysh reports.
func vtyshCheck(path string) error {
	out, err := exec.Command("vtysh", "-C", "-f", path).CombinedOutput()
	if err == nil {
		return nil
	}
	if m := regexp.MustCompile(`line (\d+): (.*)`).FindStringSubmatch(string(out)); m != nil {
		return fmt.Errorf("%s:%s: %s", path, m[1], strings.TrimSpace(m[2]))
	}
	return fmt.Errorf("vtysh -C -f %s: %v: %s", path, err, out)
}

// The FRR block of docs/deploy.md passes FRR's own dry run, and a typo in
// a copy fails naming its line.
func TestBGPFRRConfig(t *testing.T) {
	requireFRR(t)
	conf, err := frrConfFromDoc()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "frr.conf")
	os.WriteFile(good, []byte(conf), 0o644)
	if err := vtyshCheck(good); err != nil {
		t.Fatalf("the FRR block of %s: %v", deployDoc, err)
	}
	lines := strings.Split(conf, "\n")
	typoLine := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "redistribute kernel") })
	if typoLine < 0 {
		t.Fatal("no `redistribute kernel` line in the FRR block")
	}
	lines[typoLine] = strings.Replace(lines[typoLine], "kernel", "kernal", 1)
	bad := filepath.Join(dir, "typo.conf")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644)
	want := fmt.Sprintf("%s:%d:", bad, typoLine+1)
	if err := vtyshCheck(bad); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a typo on line %d: %v, want an error starting %q", typoLine+1, err, want)
	}
}

// startFRR runs FRR's zebra and bgpd in host's namespace with conf, as
// children of the test, their sockets in a directory of their own that
// FRR's user can write (the daemons drop to it).
func (w *bgpWorld) startFRR(t *testing.T, host, conf string) {
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "nat64kit-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	zebraConf, bgpdConf := filepath.Join(dir, "zebra.conf"), filepath.Join(dir, "frr.conf")
	os.WriteFile(zebraConf, []byte("hostname "+host+"\n"), 0o640)
	os.WriteFile(bgpdConf, []byte(conf), 0o640)
	for _, p := range []string{dir, zebraConf, bgpdConf} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	zserv := filepath.Join(dir, "zserv.api")
	common := []string{"-z", zserv, "--vty_socket", dir, "-u", "frr", "-g", "frr", "-P", "0"}
	ns := w.host(host)
	ns.Start(append([]string{frrDir + "/zebra", "-f", zebraConf, "-i", filepath.Join(dir, "zebra.pid")}, common...)...)
	netns.WaitFor(t, 10*time.Second, "zebra's socket "+zserv, func() error { _, err := os.Stat(zserv); return err })
	ns.Start(append([]string{frrDir + "/bgpd", "-f", bgpdConf, "-i", filepath.Join(dir, "bgpd.pid")}, common...)...)
	netns.WaitFor(t, 10*time.Second, "bgpd to answer vtysh", func() error {
		out, err := exec.Command("vtysh", "--vty_socket", dir, "-d", "bgpd", "-c", "show bgp summary").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("vtysh", "--vty_socket", dir, "-c", "show bgp summary", "-c", "show bgp ipv6 unicast", "-c", "show bgp ipv4 unicast", "-c", "show ip route", "-c", "show ipv6 route").CombinedOutput()
			t.Logf("FRR on %s:\n%s", host, out)
		}
	})
}

func countOf(m map[string]string, v string) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}
