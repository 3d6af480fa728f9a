package main

// It is long because the Corefile shapes below are data.
//
// The differential test of `nat64ctl check`: many Corefile shapes go both
// through `check --json` and through a running CoreDNS, and what check
// says each server block synthesizes with must be exactly the prefixes the
// plugin puts in its answers. For a Corefile CoreDNS refuses, check must
// refuse it with the same error.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// checkVerdict is the part of `nat64ctl check --json` this test reads.
type checkVerdict struct {
	OK    bool `json:"ok"`
	DNS64 []struct {
		Where    string   `json:"where"`
		Zones    []string `json:"zones"`
		Prefixes []string `json:"prefixes"`
	} `json:"dns64"`
	Errors     []string `json:"errors"`
	Mismatches []string `json:"mismatches"`
}

// The NAT64 side of every shape: the seed's two translators.
const diffInstances = `[[instance]]
name   = "nat64-a"
prefix = "64:ff9b:1::/96"
pool4  = ["203.0.113.1/32"]

[[instance]]
name   = "nat64-b"
prefix = "2001:db8:64::/96"
pool4  = ["203.0.113.2/32"]
`

// candidatePrefixes are every prefix a shape below may synthesize with;
// an answer is attributed to the one containing it, independently of what
// check says.
var candidatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/96"),
	netip.MustParsePrefix("2001:db8:64::/96"),
	netip.MustParsePrefix("2001:db8:65::/96"),
}

// UP stands for the fake upstream's address. The shapes CoreDNS must
// run allow IPv4 clients, so that many loopback sources can show client
// balancing every prefix.
var diffShapes = []struct {
	name, corefile string
	bad            bool // CoreDNS must refuse it
}{
	{name: "argument then prefix", corefile: `
. {
    dns64 64:ff9b:1::/96 {
        allow_ipv4
        prefix 2001:db8:64::/96
    }
    forward . UP
}`},
	{name: "prefix twice", corefile: `
. {
    dns64 {
        allow_ipv4
        prefix 64:ff9b:1::/96
        prefix 2001:db8:65::/96
    }
    forward . UP
}`},
	{name: "several prefixes on one line", corefile: `
. {
    dns64 {
        allow_ipv4
        prefix 64:ff9b:1::/96 2001:db8:64::/96
    }
    forward . UP
}`},
	{name: "several arguments", corefile: `
. {
    dns64 64:ff9b:1::/96 2001:db8:64::/96 {
        allow_ipv4
    }
    forward . UP
}`},
	{name: "host bits", corefile: `
. {
    dns64 64:ff9b:1::1/96 2001:db8:64::ff00:0/96 {
        allow_ipv4
    }
    forward . UP
}`},
	{name: "instances", corefile: `
. {
    dns64 {
        allow_ipv4
        instances nat64.toml
    }
    forward . UP
}`},
	{name: "instances under root", corefile: `
. {
    root sub
    dns64 {
        allow_ipv4
        instances nat64.toml
    }
    forward . UP
}`},
	{name: "default prefix", corefile: `
. {
    dns64 {
        allow_ipv4
    }
    forward . UP
}`},
	{name: "two dns64 directives in one block", corefile: `
. {
    dns64 64:ff9b:1::/96 {
        allow_ipv4
    }
    dns64 2001:db8:64::/96 {
        allow_ipv4
    }
    forward . UP
}`},
	{name: "several server blocks", corefile: `
a.test. {
    dns64 64:ff9b:1::/96 {
        allow_ipv4
    }
    forward . UP
}
b.test. {
    dns64 {
        allow_ipv4
        prefix 2001:db8:64::/96
    }
    forward . UP
}
c.test. {
    forward . UP
}`},
	{name: "import snippet", corefile: `
(synth) {
    dns64 {
        allow_ipv4
        prefix 2001:db8:64::/96
        translate_all
    }
}
a.test. {
    import synth
    forward . UP
}
b.test. {
    dns64 2001:db8:65::/96 {
        allow_ipv4
    }
    forward . UP
}`},
	{name: "prefix with instances", bad: true, corefile: `
. {
    dns64 2001:db8:64::/96 {
        instances nat64.toml
    }
    forward . UP
}`},
	{name: "length not in RFC 6052", bad: true, corefile: `
. {
    dns64 2001:db8:64::/80
    forward . UP
}`},
	{name: "bits 64-71 set", bad: true, corefile: `
. {
    dns64 {
        prefix 2001:db8:0:0:ff00::/96
    }
    forward . UP
}`},
	{name: "overlapping prefixes", bad: true, corefile: `
. {
    dns64 2001:db8:64::/96 2001:db8:64::/64
    forward . UP
}`},
	{name: "unknown property", bad: true, corefile: `
. {
    dns64 {
        prefixes 2001:db8:64::/96
    }
    forward . UP
}`},
	{name: "unknown directive", bad: true, corefile: `
. {
    dns46
    forward . UP
}`},
	{name: "missing instances file", bad: true, corefile: `
. {
    dns64 {
        instances nope.toml
    }
    forward . UP
}`},
}

func TestCheckMatchesRunningPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs CoreDNS and nat64ctl")
	}
	coredns, nat64ctl := binary(t), nat64ctlBinary(t)
	up := startFakeUpstream(t)
	for _, sh := range diffShapes {
		t.Run(sh.name, func(t *testing.T) {
			dir := t.TempDir()
			corefile := strings.ReplaceAll(sh.corefile, "UP", up)
			for name, data := range map[string]string{
				"Corefile": corefile, "nat64.toml": diffInstances, "sub/nat64.toml": diffInstances,
			} {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			verdict := runCheck(t, nat64ctl, dir)
			port := freePort(t)
			srv := startDiffCoreDNS(t, coredns, dir, port)

			if sh.bad {
				if len(verdict.Errors) == 0 {
					t.Fatalf("check accepted a Corefile CoreDNS must refuse: %+v", verdict)
				}
				out := srv.exited(t)
				// check names the instances file it resolved; CoreDNS the path as written.
				want := strings.ReplaceAll(verdict.Errors[0], dir+string(filepath.Separator), "")
				if !strings.Contains(out, want) {
					t.Errorf("CoreDNS refused with\n%s\nbut check said\n%s", out, want)
				}
				return
			}
			if len(verdict.Errors) != 0 {
				t.Fatalf("check refused a Corefile CoreDNS runs: %v", verdict.Errors)
			}
			srv.waitUp(t)

			owned := map[string]bool{"64:ff9b:1::/96": true, "2001:db8:64::/96": true}
			seenAnywhere := map[string]bool{}
			blocks := dns64Blocks(corefile)
			if len(blocks) != len(verdict.DNS64) {
				t.Fatalf("CoreDNS has %d dns64 blocks %v, check reports %d: %+v", len(blocks), blocks, len(verdict.DNS64), verdict.DNS64)
			}
			for i, zone := range blocks {
				seen := observePrefixes(t, srv.addr, "host."+strings.TrimPrefix(zone, "."))
				if want := slices.Sorted(slices.Values(verdict.DNS64[i].Prefixes)); !slices.Equal(seen, want) {
					t.Errorf("block %s: answers use %v, check says %v", zone, seen, want)
				}
				if !slices.Equal(verdict.DNS64[i].Zones, []string{zone}) {
					t.Errorf("block %d: check names zones %v, want [%s]", i, verdict.DNS64[i].Zones, zone)
				}
				for _, p := range seen {
					seenAnywhere[p] = true
				}
			}
			agree := len(seenAnywhere) == len(owned)
			for p := range seenAnywhere {
				agree = agree && owned[p]
			}
			if verdict.OK != agree {
				t.Errorf("check ok=%v (mismatches %v), but the answers use %v against instances %v",
					verdict.OK, verdict.Mismatches, seenAnywhere, owned)
			}
		})
	}
}

// dns64Blocks lists, in order, the keys of the server blocks that have a
// dns64 directive, written or imported. Each shape keeps one key per block
// and writes snippets as "(name)" blocks, which is all this needs.
func dns64Blocks(corefile string) []string {
	snippets := map[string]bool{}
	var out []string
	key, hasDNS64 := "", false
	flush := func() {
		if key != "" && hasDNS64 {
			out = append(out, key)
		}
		key, hasDNS64 = "", false
	}
	for _, line := range strings.Split(corefile, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[1] == "{" && !strings.HasPrefix(line, " "):
			flush()
			if strings.HasPrefix(f[0], "(") {
				snippets[strings.Trim(f[0], "()")] = true
				continue
			}
			key = f[0]
		case len(f) > 0 && f[0] == "dns64":
			hasDNS64 = true
		case len(f) == 2 && f[0] == "import" && snippets[f[1]]:
			hasDNS64 = true // every snippet here holds a dns64
		}
	}
	flush()
	return out
}

// observePrefixes asks for name's AAAA from 64 client addresses, so that
// client balancing shows every prefix in the rotation, and returns the
// candidate prefixes the answers use, sorted.
func observePrefixes(t *testing.T, addr, name string) []string {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; i < 64; i++ {
		m := query(t, addr, "udp", sourceIP(i), dns.Fqdn(name), dns.TypeAAAA, false)
		for _, s := range aaaas(m) {
			a := netip.MustParseAddr(s)
			found := false
			for _, p := range candidatePrefixes {
				if p.Contains(a) {
					seen[p.String()] = true
					found = true
				}
			}
			if !found {
				t.Fatalf("AAAA %s of %s is in no candidate prefix", s, name)
			}
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	})
}

func runCheck(t *testing.T, bin, dir string) checkVerdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "-c", "nat64.toml", "--corefile", "Corefile", "--json")
	cmd.Dir = dir
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	var v checkVerdict
	if jerr := json.Unmarshal(stdout.Bytes(), &v); jerr != nil {
		t.Fatalf("check: %v, %v: %q", err, jerr, stdout.String())
	}
	if (err == nil) != v.OK {
		t.Fatalf("check exit %v but ok=%v", err, v.OK)
	}
	return v
}

type diffServer struct {
	addr string
	logw *lockedWriter
	done chan error
}

// startDiffCoreDNS starts CoreDNS in dir; the test ends it by PID.
func startDiffCoreDNS(t *testing.T, bin, dir string, port int) *diffServer {
	t.Helper()
	w := &lockedWriter{b: new(bytes.Buffer)}
	s := &diffServer{addr: fmt.Sprintf("127.0.0.1:%d", port), logw: w, done: make(chan error, 1)}
	cmd := exec.Command(bin, "-conf", "Corefile", "-dns.port", fmt.Sprint(port), "-quiet")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("coredns output:\n%s", w.String())
		}
	})
	return s
}

// exited waits for a CoreDNS that must refuse its Corefile to exit, and
// returns what it printed.
func (s *diffServer) exited(t *testing.T) string {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err == nil {
			t.Fatal("CoreDNS exited with status 0")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("CoreDNS did not refuse the Corefile within 30s")
	}
	return s.logw.String()
}

// waitUp waits until the server answers at all (any rcode).
func (s *diffServer) waitUp(t *testing.T) {
	t.Helper()
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("probe.", dns.TypeSOA)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, _, err := c.Exchange(m, s.addr); err == nil {
			return
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("CoreDNS exited: %v\n%s", err, s.logw.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("CoreDNS did not answer within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// startFakeUpstream answers every A question with a documentation address
// and a global one (the Well-Known Prefix synthesizes only from global
// addresses; this one only ever appears inside DNS answers on loopback),
// and every AAAA question with NODATA, so every name is synthesized.
func startFakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			name := r.Question[0].Name
			for _, a := range []string{"198.51.100.2", "8.8.8.8"} {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(a)})
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
)

// nat64ctlBinary builds nat64ctl once per test run, beside the coredns binary.
func nat64ctlBinary(t testing.TB) string {
	goBin := goTool(t)
	binary(t) // creates buildDir, removed by TestMain
	ctlOnce.Do(func() {
		ctlPath = filepath.Join(buildDir, "nat64ctl")
		out, err := exec.Command(goBin, "build", "-o", ctlPath, "../../nat64ctl").CombinedOutput()
		if err != nil {
			ctlErr = &buildError{err: err, out: string(out)}
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}
