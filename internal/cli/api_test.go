package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/control/controltest"
)

// apiServer runs the control API on loopback in front of a stand-in
// translator and returns its address.
func apiServer(t *testing.T) (string, *controltest.Backend) {
	t.Helper()
	b := &controltest.Backend{}
	s, err := control.NewServer("127.0.0.1:0", b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s.Addr(), b
}

// Every command that prints data prints JSON that decodes into its type.
func TestJSONOutputsParse(t *testing.T) {
	addr, _ := apiServer(t)
	for _, tc := range []struct {
		args []string
		into any
	}{
		{[]string{"session", "show", "--control", addr, "--json"}, &[]control.Session{}},
		{[]string{"session", "show", "--control", addr, "--proto", "udp", "--json"}, &[]control.Session{}},
		{[]string{"bib", "show", "--control", addr, "--json"}, &[]control.BIBEntry{}},
		{[]string{"stats", "--control", addr, "--json"}, &control.Stats{}},
		{[]string{"addr", "synth", "192.0.2.1", "--prefix", "64:ff9b:1::/96", "--json"}, &[]AddrResult{}},
		{[]string{"check", "-c", filepath.Join("..", "..", "corefile-examples", "nat64.toml"), "--json"}, &CheckResult{}},
	} {
		code, out, stderr := nat64ctl(t, tc.args...)
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if code != 0 || dec.Decode(tc.into) != nil {
			t.Errorf("%v: status %d, stdout %q, stderr %q", tc.args, code, out, stderr)
		}
	}
}

func TestSessionShow(t *testing.T) {
	addr, _ := apiServer(t)
	code, out, _ := nat64ctl(t, "session", "show", "--control", addr)
	if code != 0 || !strings.Contains(out, "[2001:db8::1]:40000") || !strings.Contains(out, "203.0.113.1:40000") ||
		!strings.Contains(out, "ESTABLISHED") || !strings.Contains(out, "2h4m0s") || !strings.HasSuffix(out, "2 sessions\n") {
		t.Errorf("status %d:\n%s", code, out)
	}
	code, out, _ = nat64ctl(t, "session", "show", "--control", addr, "--proto", "udp")
	if code != 0 || strings.Contains(out, "tcp") || !strings.HasSuffix(out, "1 session\n") {
		t.Errorf("--proto udp: status %d:\n%s", code, out)
	}
	if code, _, _ := nat64ctl(t, "session", "show", "--control", addr, "--proto", "gre"); code != exitUsage {
		t.Errorf("--proto gre: status %d", code)
	}
}

func TestBIBAddShowRemove(t *testing.T) {
	addr, b := apiServer(t)
	code, out, stderr := nat64ctl(t, "bib", "add", "tcp", "[2001:db8:10::80]:80", "203.0.113.1:8080", "--control", addr)
	if code != 0 || b.StaticCount() != 1 {
		t.Fatalf("add: status %d, %q %q", code, out, stderr)
	}
	code, out, _ = nat64ctl(t, "bib", "show", "--control", addr)
	if code != 0 || !strings.Contains(out, "[2001:db8:10::80]:80") || !strings.Contains(out, "static") {
		t.Errorf("show: status %d:\n%s", code, out)
	}
	if code, _, _ := nat64ctl(t, "bib", "remove", "tcp", "[2001:db8:10::80]:80", "203.0.113.1:8080", "--control", addr); code != 0 || b.StaticCount() != 0 {
		t.Errorf("remove: status %d", code)
	}
	code, _, stderr = nat64ctl(t, "bib", "remove", "tcp", "[2001:db8:10::80]:80", "203.0.113.1:8080", "--control", addr)
	if code != exitProblem || !strings.Contains(stderr, "404") {
		t.Errorf("remove again: status %d, %q", code, stderr)
	}
	for _, args := range [][]string{
		{"bib", "add", "sctp", "[2001:db8::1]:1", "203.0.113.1:1"},
		{"bib", "add", "tcp", "203.0.113.1:1", "203.0.113.1:1"},
		{"bib", "add", "tcp", "[2001:db8::1]:1", "[2001:db8::1]:1"},
		{"bib", "add", "tcp", "[2001:db8::1]:1"},
	} {
		if code, _, _ := nat64ctl(t, append(args, "--control", addr)...); code != exitUsage {
			t.Errorf("%v: status %d", args, code)
		}
	}
}

func TestStatsAndReload(t *testing.T) {
	addr, b := apiServer(t)
	code, out, _ := nat64ctl(t, "stats", "--control", addr)
	if code != 0 || !strings.Contains(out, "instance nat64-a: healthy") || !strings.Contains(out, "no_binding") || !strings.Contains(out, "6to4/tcp") {
		t.Errorf("stats: status %d:\n%s", code, out)
	}
	code, _, stderr := nat64ctl(t, "reload", "--control", addr)
	if code != exitProblem || !strings.Contains(stderr, "nat64.toml:3") {
		t.Errorf("failed reload: status %d, %q", code, stderr)
	}
	b.SetReloadOK(true)
	if code, out, _ := nat64ctl(t, "reload", "--control", addr); code != 0 || out != "reloaded\n" {
		t.Errorf("reload: status %d, %q", code, out)
	}
}

// Without --control, the address comes from the instance in nat64.toml.
func TestControlAddressFromConfig(t *testing.T) {
	addr, _ := apiServer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nat64.toml")
	os.WriteFile(cfg, []byte("[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\ncontrol = \""+addr+"\"\n"+
		"[[instance]]\nname = \"b\"\nprefix = \"64:ff9b:2::/96\"\npool4 = [\"203.0.113.2/32\"]\n"), 0o644)
	if code, _, stderr := nat64ctl(t, "stats", "-c", cfg, "--instance", "a"); code != 0 {
		t.Errorf("--instance a: status %d, %q", code, stderr)
	}
	if code, _, stderr := nat64ctl(t, "stats", "-c", cfg); code != exitUsage || !strings.Contains(stderr, "--instance") {
		t.Errorf("two instances, none named: status %d, %q", code, stderr)
	}
	if code, _, stderr := nat64ctl(t, "stats", "-c", cfg, "--instance", "b"); code != exitProblem || !strings.Contains(stderr, "no control address") {
		t.Errorf("no control address: status %d, %q", code, stderr)
	}
	// A translator that is not running is a problem, said plainly.
	if code, _, stderr := nat64ctl(t, "stats", "--control", "127.0.0.1:1"); code != exitProblem || !strings.Contains(stderr, "is `nat64ctl run` running?") {
		t.Errorf("nothing listening: status %d, %q", code, stderr)
	}
}

// The rate limit's suppressed errors are shown next to the errors sent,
// as text and as JSON.
func TestStatsShowsSuppressedICMPErrors(t *testing.T) {
	addr, _ := apiServer(t)
	code, out, _ := nat64ctl(t, "stats", "--control", addr)
	if code != 0 || !strings.Contains(out, "ICMP errors sent: 4, suppressed by the rate limit: 2,") {
		t.Errorf("stats: status %d:\n%s", code, out)
	}
	code, out, _ = nat64ctl(t, "stats", "--control", addr, "--json")
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); code != 0 || err != nil {
		t.Fatalf("stats --json: status %d, %v", code, err)
	}
	if raw["icmp_errors_suppressed"] != 2.0 || raw["icmp_errors_sent"] != 4.0 {
		t.Errorf("stats --json: icmp_errors_suppressed %v, icmp_errors_sent %v; want 2 and 4", raw["icmp_errors_suppressed"], raw["icmp_errors_sent"])
	}
}

// stats shows how much of each row the kernel fast path carried, and why
// it left the rest to user space.
func TestStatsShowsTheFastPathSplit(t *testing.T) {
	addr, _ := apiServer(t)
	code, out, _ := nat64ctl(t, "stats", "--control", addr)
	if code != 0 || !strings.Contains(out, "fast path: attached (fastpath = auto), 1 sessions in its maps") {
		t.Fatalf("stats: status %d:\n%s", code, out)
	}
	var row, passed []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "4to6/tcp" {
			row = f
		}
		if len(f) > 0 && f[0] == "tcp_control" {
			passed = f
		}
	}
	if strings.Join(row, " ") != "4to6/tcp 9 900 7 700" || strings.Join(passed, " ") != "tcp_control 2" {
		t.Errorf("want the 4to6/tcp row with its fast-path share and the pass reasons:\n%s", out)
	}
}
