package main

// The real binary in namespaces: translation, crash repair and reload.
// Long because each scenario builds its own topology and servers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/test/netns"
)

// These tests run the real `nat64ctl run` in a translator namespace
// between an IPv6-only client and an IPv4-only server (test/netns), with
// the kernels' own stacks at both ends and real clients (ping, curl).

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// nat64ctlBinary builds this command once per test run.
func nat64ctlBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nat64ctl-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nat64ctl")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

const (
	testPrefix  = "64:ff9b:1::/96"
	testPool4   = "203.0.113.1"
	controlPort = 9164 // inside the translator namespace's own loopback
)

// synthesized is the IPv6 address the client uses for an IPv4 server.
func synthesized(v4 netip.Addr) netip.Addr {
	a := netip.MustParseAddr("64:ff9b:1::").As16()
	b := v4.As4()
	copy(a[12:], b[:])
	return netip.AddrFrom16(a)
}

type translator struct {
	tp   *netns.Topology
	bin  string
	cfg  string
	proc *netns.Process
}

func writeRunConfig(t *testing.T, extra string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "nat64.toml")
	body := fmt.Sprintf("[[instance]]\nname = \"nat64-t\"\nprefix = %q\npool4 = [\"%s/32\"]\ncontrol = \"127.0.0.1:%d\"\n%s",
		testPrefix, testPool4, controlPort, extra)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startTranslator runs nat64ctl in the translator namespace and waits for
// its /healthz.
func startTranslator(t *testing.T, tp *netns.Topology, cfg string, args ...string) *translator {
	t.Helper()
	x := &translator{tp: tp, bin: nat64ctlBinary(t), cfg: cfg}
	x.proc = tp.Translator.Start(append([]string{x.bin, "run", "-c", cfg, "--queues", "2"}, args...)...)
	netns.WaitFor(t, 10*time.Second, "nat64ctl /healthz", func() error {
		select {
		case <-x.proc.Done():
			return fmt.Errorf("nat64ctl exited: %v\n%s", x.proc.Err(), x.proc.Output())
		default:
		}
		_, err := x.ctl(context.Background(), "stats")
		return err
	})
	return x
}

// ctl runs a nat64ctl client command inside the translator namespace.
func (x *translator) ctl(ctx context.Context, args ...string) (string, error) {
	return x.tp.Translator.Exec(ctx, append([]string{x.bin}, append(args, "-c", x.cfg)...)...)
}

// serveHTTP answers every request on the server with the peer address the
// server saw and the number of body bytes it read.
func serveHTTP(t *testing.T, ns *netns.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/1m" {
			w.Write(bytes.Repeat([]byte("nat64kit"), 1<<17))
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %d", r.RemoteAddr, n)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
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

// fastPathModes are the two ways every data-path test runs: the user-space
// translator alone, and with the kernel fast path in front of it.
var fastPathModes = []string{"off", "on"}

// stats reads `nat64ctl stats --json`.
func (x *translator) stats(t *testing.T) control.Stats {
	t.Helper()
	out, err := x.ctl(context.Background(), "stats", "--json")
	var st control.Stats
	if err != nil {
		t.Fatalf("stats: %v: %s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats: %v: %s", err, out)
	}
	return st
}

func TestRunTranslatesInNamespaces(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireCommand(t, "curl", "curl")
	netns.RequireCommand(t, "ping", "iputils-ping")
	for _, mode := range fastPathModes {
		t.Run("fastpath "+mode, func(t *testing.T) { testRunTranslates(t, mode) })
	}
}

func testRunTranslates(t *testing.T, mode string) {
	tp := netns.NewTopology(t)
	// The server may ping the client through a static ICMP binding.
	static := fmt.Sprintf("[[instance.static]]\nproto = \"icmp\"\nipv6 = \"[%s]:%d\"\nipv4 = \"%s:%d\"\n", tp.ClientAddr, staticIdent, testPool4, staticIdent)
	cfg := writeRunConfig(t, static)
	x := startTranslator(t, tp, cfg, "--fastpath", mode)
	server := synthesized(tp.ServerAddr)
	if st := x.stats(t); st.FastPath == nil || st.FastPath.Active != (mode == "on") {
		t.Fatalf("fastpath %s: stats say %+v", mode, st.FastPath)
	}
	serveHTTP(t, tp.Server, tp.ServerAddr.String()+":8080")
	serveUDPEcho(t, tp.Server, tp.ServerAddr.String()+":7007")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("ping", func(t *testing.T) {
		if err := tp.Client.Ping(server, 3); err != nil {
			t.Error(err)
		}
	})

	// Pings larger than a link: their fragments are reassembled by the
	// translator (the ICMP checksum needs the whole datagram), whichever
	// of its two TUN queues each reaches, and sent on as fragments.
	for _, size := range []int{3000, 8000} {
		t.Run(fmt.Sprintf("ping -s %d", size), func(t *testing.T) {
			before := x.stats(t)
			if err := bigPing(ctx, tp.Client, server, size); err != nil {
				t.Error(err)
			}
			// 3 requests and 3 replies, each held in fragments and then
			// translated whole; no fast path takes a fragment.
			after := x.stats(t)
			if got := after.Reassembled - before.Reassembled; got < 6 || after.FragmentsHeld-before.FragmentsHeld < got {
				t.Errorf("stats: %d datagrams reassembled from %d fragments held; want at least 6, from at least as many", got, after.FragmentsHeld-before.FragmentsHeld)
			}
		})
		t.Run(fmt.Sprintf("ping -s %d from IPv4 through static BIB", size), func(t *testing.T) {
			if err := bigPing(ctx, tp.Server, netip.MustParseAddr(testPool4), size, "-e", fmt.Sprint(staticIdent)); err != nil {
				t.Error(err)
			}
		})
	}

	t.Run("tcp", func(t *testing.T) {
		out, err := tp.Client.Exec(ctx, "curl", "-sS", "--max-time", "10", "-g", fmt.Sprintf("http://[%s]:8080/", server))
		if err != nil || !strings.HasPrefix(out, testPool4+":") {
			t.Errorf("curl: %v: %q (want the server to see the pool4 address)", err, out)
		}
	})

	t.Run("udp", func(t *testing.T) {
		var reply []byte
		err := tp.Client.Do(func() error {
			c, err := net.Dial("udp6", netip.AddrPortFrom(server, 7007).String())
			if err != nil {
				return err
			}
			defer c.Close()
			for try := 0; try < 3 && reply == nil; try++ {
				c.Write([]byte("echo me"))
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 100)
				if n, err := c.Read(buf); err == nil {
					reply = buf[:n]
				}
			}
			return nil
		})
		if err != nil || string(reply) != "echo me" {
			t.Errorf("%v: %q", err, reply)
		}
	})

	// The server's kernel answers a closed port with ICMP Port
	// Unreachable; translated, the client's connected socket sees
	// ECONNREFUSED.
	t.Run("port unreachable", func(t *testing.T) {
		var got error
		tp.Client.Do(func() error {
			c, err := net.Dial("udp6", netip.AddrPortFrom(server, 9).String())
			if err != nil {
				got = err
				return nil
			}
			defer c.Close()
			for try := 0; try < 3; try++ {
				c.Write([]byte("anyone?"))
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, got = c.Read(make([]byte, 10))
				if errors.Is(got, syscall.ECONNREFUSED) {
					return nil
				}
			}
			return nil
		})
		if !errors.Is(got, syscall.ECONNREFUSED) {
			t.Errorf("want ECONNREFUSED, got %v", got)
		}
	})

	// A 1300-byte IPv4 link: the translated 1500-byte segments need
	// Fragmentation Needed -> Packet Too Big, and the upload completes.
	t.Run("pmtud", func(t *testing.T) {
		tp.Translator.MustExec("ip", "link", "set", tp.TranslatorV4Link, "mtu", "1300")
		tp.Server.MustExec("ip", "link", "set", tp.ServerLink, "mtu", "1300")
		defer tp.Translator.MustExec("ip", "link", "set", tp.TranslatorV4Link, "mtu", "1500")
		defer tp.Server.MustExec("ip", "link", "set", tp.ServerLink, "mtu", "1500")
		body := filepath.Join(t.TempDir(), "body")
		os.WriteFile(body, bytes.Repeat([]byte("nat64kit "), 200000/9), 0o644)
		out, err := tp.Client.Exec(ctx, "curl", "-sS", "--max-time", "20", "--data-binary", "@"+body, "-g", fmt.Sprintf("http://[%s]:8080/", server))
		if err != nil || !strings.HasSuffix(out, fmt.Sprintf(" %d", 200000/9*9)) {
			t.Errorf("upload across a 1300-byte link: %v: %q", err, out)
		}
	})

	// A 1 MB download: in mode on, the kernel carries the bulk of it (all
	// but the handshake, the FIN and what arrives before the session is
	// ESTABLISHED), and the FIN takes the session out of its maps.
	t.Run("download", func(t *testing.T) {
		before := x.stats(t)
		out, err := tp.Client.Exec(ctx, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download}", "-g", fmt.Sprintf("http://[%s]:8080/1m", server))
		if err != nil || out != fmt.Sprint(1<<20) {
			t.Fatalf("download: %v: %q", err, out)
		}
		after := x.stats(t)
		all := after.Packets["4to6/tcp"] - before.Packets["4to6/tcp"]
		if mode != "on" {
			if after.FastPath.Active || len(after.FastPath.Packets) != 0 {
				t.Errorf("fastpath off, yet %+v", after.FastPath)
			}
			return
		}
		fast := after.FastPath.Packets["4to6/tcp"] - before.FastPath.Packets["4to6/tcp"]
		t.Logf("the fast path carried %d of %d 4to6/tcp packets (%.1f %%)", fast, all, 100*float64(fast)/float64(max(all, 1)))
		if all == 0 || float64(fast) < 0.9*float64(all) {
			t.Errorf("the fast path carried %d of %d packets of the download, want at least 90 %%", fast, all)
		}
		// curl has closed the connection: FIN (slow path) ends ESTABLISHED,
		// and the session leaves the maps.
		netns.WaitFor(t, 5*time.Second, "the closed connection to leave the fast path's maps", func() error {
			if n := x.stats(t).FastPath.Sessions; n != before.FastPath.Sessions {
				return fmt.Errorf("%d sessions in the maps, %d before the download", n, before.FastPath.Sessions)
			}
			return nil
		})
	})

	t.Run("session show", func(t *testing.T) {
		out, err := x.ctl(ctx, "session", "show", "--json")
		var ss []control.Session
		if err != nil || json.Unmarshal([]byte(out), &ss) != nil {
			t.Fatalf("%v: %q", err, out)
		}
		seen := map[string]bool{}
		for _, s := range ss {
			if s.IPv6Src.Addr() != tp.ClientAddr || s.IPv4Src.Addr() != netip.MustParseAddr(testPool4) || s.IPv4Dst.Addr() != tp.ServerAddr {
				t.Errorf("session %+v", s)
			}
			seen[s.Proto] = true
		}
		if !seen["tcp"] || !seen["udp"] || !seen["icmp"] {
			t.Errorf("want tcp, udp and icmp sessions, got %v", seen)
		}
		table, err := x.ctl(ctx, "session", "show", "--proto", "tcp")
		if err != nil || !strings.Contains(table, fmt.Sprintf("[%s]:8080", server)) {
			t.Errorf("table: %v\n%s", err, table)
		}
	})

	t.Run("stats", func(t *testing.T) {
		out, err := x.ctl(ctx, "stats", "--json")
		var st control.Stats
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Packets["6to4/tcp"] == 0 || st.Packets["4to6/tcp"] == 0 || st.Packets["4to6/icmp"] == 0 {
			t.Errorf("%v: %+v", err, st)
		}
		for _, r := range []string{"reassembly_timeout", "reassembly_overlap", "reassembly_too_many", "reassembly_too_big"} {
			if st.Drops[r] != 0 {
				t.Errorf("%s = %d after clean pings", r, st.Drops[r])
			}
		}
	})

	// A pool4 change on reload ends the sessions of the old address, and
	// takes them out of the fast path's maps before the reload answers.
	t.Run("pool4 change", func(t *testing.T) {
		if err := tp.Client.Ping(server, 2); err != nil {
			t.Fatal(err)
		}
		if st := x.stats(t); mode == "on" && st.FastPath.Sessions == 0 {
			t.Fatalf("no session in the fast path's maps after a ping: %+v", st.FastPath)
		}
		body := strings.Replace(string(must(os.ReadFile(cfg))), testPool4+"/32", "203.0.113.2/32", 1)
		body = strings.ReplaceAll(body, testPool4+":", "203.0.113.2:") // the static binding moves along
		os.WriteFile(cfg, []byte(body), 0o644)
		if out, err := x.ctl(ctx, "reload"); err != nil {
			t.Fatalf("reload: %v: %s", err, out)
		}
		st := x.stats(t)
		if st.FastPath.Sessions != 0 {
			t.Errorf("%d sessions of the old pool4 left in the fast path's maps", st.FastPath.Sessions)
		}
		if err := tp.Client.Ping(server, 2); err != nil {
			t.Errorf("ping through the new pool4: %v", err)
		}
	})

	// SIGTERM removes what the daemon installed.
	if err := x.proc.Stop(); err != nil {
		t.Errorf("exit: %v\n%s", err, x.proc.Output())
	}
	if out := tp.Translator.MustExec("ip", "route", "show", "proto", "64"); strings.TrimSpace(out) != "" {
		t.Errorf("IPv4 routes left after SIGTERM: %q", out)
	}
	if out := tp.Translator.MustExec("ip", "-6", "route", "show", "proto", "64"); strings.TrimSpace(out) != "" {
		t.Errorf("IPv6 routes left after SIGTERM: %q", out)
	}
}

// staticIdent is the echo identifier of the static ICMP binding: the
// IPv4 side pings with it (ping -e), and keeps it on both sides.
const staticIdent = 4660

// bigPing sends 3 pings of size data bytes (bounded: 0.2 s apart, 2 s
// each to answer) and wants all 3 answered.
func bigPing(ctx context.Context, ns *netns.NS, dst netip.Addr, size int, extra ...string) error {
	args := []string{"ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", fmt.Sprint(size)}
	if dst.Is6() {
		args = append(args, "-6")
	}
	out, err := ns.Exec(ctx, append(append(args, extra...), dst.String())...)
	if err != nil || !strings.Contains(out, "3 packets transmitted, 3 received") {
		return fmt.Errorf("ping -s %d %s: %v\n%s", size, dst, err, out)
	}
	return nil
}

// routesOf lists the routes through the TUN device, both families, less
// the kernel's own link-local route and the carrier flag (a TUN nobody
// holds open is "linkdown").
func routesOf(ns *netns.NS, dev string) string {
	var out []string
	for _, family := range []string{"-4", "-6"} {
		for _, line := range strings.Split(ns.MustExec("ip", family, "route", "show", "dev", dev), "\n") {
			line = strings.TrimSpace(strings.ReplaceAll(line, " linkdown", ""))
			if line != "" && !strings.Contains(line, "proto kernel") {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// A crash (SIGKILL) leaves routes on a persistent TUN; the next start
// repairs them, and nothing of another owner is touched at any point.
func TestRunRepairsAfterCrash(t *testing.T) {
	netns.RequireRoot(t)
	for _, mode := range fastPathModes {
		t.Run("fastpath "+mode, func(t *testing.T) { testRunRepairs(t, mode) })
	}
}

func testRunRepairs(t *testing.T, mode string) {
	tp := netns.NewTopology(t)
	ns := tp.Translator
	ns.MustExec("ip", "tuntap", "add", "dev", "nat64-t", "mode", "tun", "multi_queue", "vnet_hdr")
	ns.MustExec("ip", "link", "set", "nat64-t", "up")
	// Leftovers of an older configuration (ours) and a route of another owner.
	ns.MustExec("ip", "-6", "route", "add", "2001:db8:dead::/96", "dev", "nat64-t", "proto", "64")
	ns.MustExec("ip", "route", "add", "192.0.2.0/24", "dev", "nat64-t", "proto", "static")
	cfg := writeRunConfig(t, "")

	x := startTranslator(t, tp, cfg, "--fastpath", mode)
	want := routesOf(ns, "nat64-t")
	if strings.Contains(want, "2001:db8:dead::") || !strings.Contains(want, "192.0.2.0/24") ||
		!strings.Contains(want, "64:ff9b:1::/96") || !strings.Contains(want, "203.0.113.1") {
		t.Fatalf("after start:\n%s", want)
	}

	wantProgs := 0
	if mode == "on" {
		wantProgs = 1
	}
	checkTCX(t, ns, "nat64-t", wantProgs, "after start")
	syscall.Kill(x.proc.PID(), syscall.SIGKILL)
	<-x.proc.Done()
	// The tcx link was not pinned: it died with the process.
	checkTCX(t, ns, "nat64-t", 0, "after kill -9")
	if got := routesOf(ns, "nat64-t"); got != want {
		t.Errorf("a crash should leave the routes of the persistent device:\n%s\nwant\n%s", got, want)
	}
	// Damage what was left: one route gone, one stale added.
	ns.MustExec("ip", "-6", "route", "del", "64:ff9b:1::/96", "dev", "nat64-t")
	ns.MustExec("ip", "route", "add", "198.18.0.0/15", "dev", "nat64-t", "proto", "64")
	ctx := context.Background()
	show, err := x.ctl(ctx, "route", "show")
	if err != nil || !strings.Contains(show, "64:ff9b:1::/96") || !strings.Contains(show, "MISSING") ||
		!strings.Contains(show, "198.18.0.0/15") || !strings.Contains(show, "LEFTOVER") || !strings.Contains(show, "out of sync") {
		t.Errorf("route show after the damage: %v\n%s", err, show)
	}

	// A restart repairs it, as `route sync` would.
	// The killed process's tcx link died with it: the fast path attaches
	// again (mode on fails start-up otherwise).
	x = startTranslator(t, tp, cfg, "--keep-routes", "--fastpath", mode)
	if got := routesOf(ns, "nat64-t"); got != want {
		t.Errorf("restart did not repair:\n%s\nwant\n%s", got, want)
	}
	if err := tp.Client.Ping(synthesized(tp.ServerAddr), 3); err != nil {
		t.Errorf("after repair: %v", err)
	}
	if out, err := x.ctl(ctx, "route", "show"); err != nil || !strings.Contains(out, "in sync") {
		t.Errorf("route show: %v\n%s", err, out)
	}

	checkTCX(t, ns, "nat64-t", wantProgs, "after the restart")
	// --keep-routes: SIGTERM leaves them; `route flush` removes only ours.
	x.proc.Stop()
	checkTCX(t, ns, "nat64-t", 0, "after SIGTERM")
	if got := routesOf(ns, "nat64-t"); got != want {
		t.Errorf("--keep-routes removed routes:\n%s", got)
	}
	if out, err := x.ctl(ctx, "route", "flush"); err != nil || !strings.Contains(out, "64:ff9b:1::/96") {
		t.Errorf("route flush: %v\n%s", err, out)
	}
	if got := routesOf(ns, "nat64-t"); got != "192.0.2.0/24 proto static scope link" {
		t.Errorf("after flush only the foreign route may stay, got:\n%s", got)
	}
	if out, err := x.ctl(ctx, "route", "sync"); err != nil || routesOf(ns, "nat64-t") != want {
		t.Errorf("route sync: %v\n%s\n%s", err, out, routesOf(ns, "nat64-t"))
	}
	x.ctl(ctx, "route", "flush")
}

// A long-lived TCP connection survives a SIGHUP reload.
func TestRunReloadKeepsConnections(t *testing.T) {
	netns.RequireRoot(t)
	for _, mode := range fastPathModes {
		t.Run("fastpath "+mode, func(t *testing.T) { testRunReload(t, mode) })
	}
}

func testRunReload(t *testing.T, mode string) {
	tp := netns.NewTopology(t)
	cfg := writeRunConfig(t, "")
	x := startTranslator(t, tp, cfg, "--fastpath", mode)

	var ln net.Listener
	if err := tp.Server.Do(func() (err error) { ln, err = net.Listen("tcp4", tp.ServerAddr.String()+":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo
		c.Close()
	}()
	var conn net.Conn
	if err := tp.Client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp6", netip.AddrPortFrom(synthesized(tp.ServerAddr), 7000).String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(msg string) error {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("echoed %q", buf)
		}
		return nil
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}
	// An unrelated change: a static BIB entry and a longer UDP timeout.
	os.WriteFile(cfg, append(must(os.ReadFile(cfg)), []byte("[instance.timeouts]\nudp = \"10m\"\n")...), 0o644)
	x.proc.Cmd.Process.Signal(syscall.SIGHUP)
	netns.WaitFor(t, 5*time.Second, "the reload to be logged", func() error {
		if !strings.Contains(x.proc.Output(), "reloaded") {
			return errors.New("not yet")
		}
		return nil
	})
	before := x.stats(t)
	if err := echo("after the reload"); err != nil {
		t.Errorf("connection lost across SIGHUP: %v", err)
	}
	// The reload kept the session in the fast path's maps: the kernel
	// still carries the connection.
	if after := x.stats(t); mode == "on" && (after.FastPath.Sessions == 0 || after.FastPath.Packets["6to4/tcp"] == before.FastPath.Packets["6to4/tcp"]) {
		t.Errorf("after the reload the fast path no longer carries the connection: %+v", after.FastPath)
	}
	// An invalid file is refused; the daemon keeps running.
	os.WriteFile(cfg, []byte("[[instance]]\nname = \"nat64-t\"\n"), 0o644)
	x.proc.Cmd.Process.Signal(syscall.SIGHUP)
	netns.WaitFor(t, 5*time.Second, "the refusal to be logged", func() error {
		if !strings.Contains(x.proc.Output(), "reload refused") {
			return errors.New("not yet")
		}
		return nil
	})
	if err := echo("after a bad reload"); err != nil {
		t.Errorf("connection lost after a refused reload: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Without CAP_BPF (and CAP_SYS_ADMIN, which would stand in for it) the
// kernel refuses the fast path: fastpath on fails start-up saying why;
// auto translates without it and says why in one log line.
func TestRunFastPathWithoutCAPBPF(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireCommand(t, "setpriv", "util-linux")
	tp := netns.NewTopology(t)
	cfg := writeRunConfig(t, "")
	bin := nat64ctlBinary(t)
	noBPF := []string{"setpriv", "--bounding-set=-bpf,-sys_admin", "--inh-caps=-bpf,-sys_admin", bin, "run", "-c", cfg, "--queues", "1"}

	on := tp.Translator.Start(append(noBPF, "--fastpath", "on")...)
	select {
	case <-on.Done():
	case <-time.After(10 * time.Second):
		on.Stop()
		t.Fatalf("fastpath on without CAP_BPF did not fail start-up:\n%s", on.Output())
	}
	if on.Err() == nil || !strings.Contains(on.Output(), "CAP_BPF") {
		t.Errorf("fastpath on without CAP_BPF: %v, want a failure naming CAP_BPF:\n%s", on.Err(), on.Output())
	}

	auto := tp.Translator.Start(append(noBPF, "--fastpath", "auto")...)
	x := &translator{tp: tp, bin: bin, cfg: cfg, proc: auto}
	netns.WaitFor(t, 10*time.Second, "nat64ctl /healthz", func() error {
		select {
		case <-auto.Done():
			return fmt.Errorf("nat64ctl exited: %v\n%s", auto.Err(), auto.Output())
		default:
		}
		_, err := x.ctl(context.Background(), "stats")
		return err
	})
	defer auto.Stop()
	st := x.stats(t)
	if st.FastPath == nil || st.FastPath.Active || !strings.Contains(st.FastPath.Reason, "not permitted") {
		t.Errorf("auto without CAP_BPF: %+v", st.FastPath)
	}
	if n := strings.Count(auto.Output(), "fast path not loaded"); n != 1 {
		t.Errorf("want one log line saying why, got %d:\n%s", n, auto.Output())
	}
	if err := tp.Client.Ping(synthesized(tp.ServerAddr), 2); err != nil {
		t.Errorf("auto without the fast path must still translate: %v", err)
	}
}

// checkTCX asserts how many programs are attached to dev's tcx egress.
func checkTCX(t *testing.T, ns *netns.NS, dev string, want int, when string) {
	t.Helper()
	var got int
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return err
		}
		got = len(r.Programs)
		return nil
	})
	if err != nil || got != want {
		t.Errorf("%s: %d programs at %s's tcx egress (%v), want %d", when, got, dev, err, want)
	}
}
