package nat64conf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

const twoInstances = `# two translators, one file
[[instance]]
name    = "nat64-a"
prefix  = "64:ff9b:1::/96"
pool4   = ["203.0.113.1/32"]
weight  = 1
control = "127.0.0.1:9164"

  [[instance.static]]
  proto = "tcp"
  ipv6  = "[2001:db8:10::80]:80"
  ipv4  = "203.0.113.1:8080"

[[instance]]
name    = "nat64-b"
prefix  = "2001:db8:64::/96"
pool4   = ["198.51.100.0/30 2000-2999", "198.51.100.8/31"]
weight  = 2
mtu     = 9000
ipv4_mtu = 1500
filtering = "endpoint-independent"
udp_zero_checksum = "drop"
max_sessions = 1000
max_sessions_per_source = 10

  [instance.timeouts]
  udp = "10m"
  tcp_established = "3h"
  tcp_transitory = "5m"
  icmp = "90s"
  fragment = "5s"
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse("nat64.toml", []byte(twoInstances))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Instances) != 2 {
		t.Fatalf("%d instances", len(cfg.Instances))
	}
	a, ok := cfg.Instance("nat64-a")
	if !ok {
		t.Fatal("no nat64-a")
	}
	if a.Prefix.String() != "64:ff9b:1::/96" || a.Weight != 1 || a.Control != "127.0.0.1:9164" || a.Line != 2 || a.LineOf("prefix") != 4 {
		t.Errorf("nat64-a = %+v", a)
	}
	// Defaults are RFC 6146's.
	want := nat64.Timeouts{UDP: 5 * time.Minute, TCPEstablished: 2*time.Hour + 4*time.Minute, TCPTransitory: 4 * time.Minute, ICMP: time.Minute}
	if a.Timeouts != want || a.FragmentTimeout != 2*time.Second || a.MTU != 1500 || a.IPv4MTU != 1500 || a.EndpointIndependentFiltering || a.DropZeroChecksumUDP {
		t.Errorf("nat64-a defaults: %+v", a)
	}
	if len(a.Pool4) != 1 || a.Pool4[0] != (nat64.Pool4Range{Prefix: netip.MustParsePrefix("203.0.113.1/32"), FirstPort: 1024, LastPort: 65535}) {
		t.Errorf("nat64-a pool4 %+v", a.Pool4)
	}
	if len(a.Static) != 1 || a.Static[0].Proto != nat64.TCP || a.Static[0].IPv6 != netip.MustParseAddrPort("[2001:db8:10::80]:80") ||
		a.Static[0].IPv4 != netip.MustParseAddrPort("203.0.113.1:8080") || a.Static[0].Line != 9 {
		t.Errorf("nat64-a static %+v", a.Static)
	}

	b, _ := cfg.Instance("nat64-b")
	want = nat64.Timeouts{UDP: 10 * time.Minute, TCPEstablished: 3 * time.Hour, TCPTransitory: 5 * time.Minute, ICMP: 90 * time.Second}
	if b.Timeouts != want || b.FragmentTimeout != 5*time.Second || b.MTU != 9000 || b.IPv4MTU != 1500 || !b.EndpointIndependentFiltering || !b.DropZeroChecksumUDP ||
		b.MaxSessions != 1000 || b.MaxSessionsPerSource != 10 || b.Weight != 2 {
		t.Errorf("nat64-b = %+v", b)
	}
	if len(b.Pool4) != 2 || b.Pool4[0].FirstPort != 2000 || b.Pool4[0].LastPort != 2999 || b.Pool4[0].Addresses() != 4 || b.Pool4[0].Ports() != 1000 {
		t.Errorf("nat64-b pool4 %+v", b.Pool4)
	}
	if got, ok := cfg.ByPrefix(netip.MustParsePrefix("2001:db8:64::/96")); !ok || got.Name != "nat64-b" {
		t.Errorf("ByPrefix: %v %v", got, ok)
	}
}

// Every mistake an operator can make is reported with file, line and field,
// and no Config comes back.
func TestParseErrors(t *testing.T) {
	base := "[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"
	for _, tc := range []struct {
		name, doc   string
		line        int
		field, want string
	}{
		{"empty file", "", 0, "instance", "no [[instance]]"},
		{"syntax", "[[instance]]\nname = \"a\n", 2, "", "new lines"},
		{"unknown key", base + "colour = \"blue\"\n", 5, "instance.colour", "unknown key"},
		{"unknown table", base + "[instance.bogus]\nx = 1\n", 5, "instance.bogus", "unknown key"},
		{"unknown static key", base + "[[instance.static]]\nproto = \"tcp\"\nport = 1\n", 7, "instance.static.port", "unknown key"},
		{"type mismatch", base + "weight = \"two\"\n", 5, "instance.weight", "cannot decode"},
		{"missing name", "[[instance]]\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n", 1, "instance[0].name", "missing"},
		{"bad name", strings.Replace(base, `"a"`, `"this-name-is-too-long"`, 1), 2, "instance[0].name", "interface name"},
		{"missing prefix", "[[instance]]\nname = \"a\"\npool4 = [\"203.0.113.1/32\"]\n", 1, "instance[0].prefix", "missing"},
		{"prefix length", strings.Replace(base, "/96", "/80", 1), 3, "instance[0].prefix", "length must be 32, 40, 48, 56, 64 or 96"},
		{"prefix u octet", strings.Replace(base, "64:ff9b:1::/96", "2001:db8:0:0:100::/96", 1), 3, "instance[0].prefix", "bits 64-71"},
		{"prefix host bits", strings.Replace(base, "64:ff9b:1::/96", "64:ff9b:1::1/96", 1), 3, "instance[0].prefix", "did you mean 64:ff9b:1::/96"},
		{"prefix garbage", strings.Replace(base, "64:ff9b:1::/96", "nope", 1), 3, "instance[0].prefix", "nope"},
		{"missing pool4", "[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\n", 1, "instance[0].pool4", "missing"},
		{"pool4 garbage", strings.Replace(base, "203.0.113.1/32", "203.0.113.1", 1), 4, "instance[0].pool4[0]", "not an IPv4 prefix"},
		{"pool4 ipv6", strings.Replace(base, "203.0.113.1/32", "2001:db8::/64", 1), 4, "instance[0].pool4[0]", "not an IPv4 prefix"},
		{"pool4 host bits", strings.Replace(base, "203.0.113.1/32", "203.0.113.1/24", 1), 4, "instance[0].pool4[0]", "did you mean 203.0.113.0/24"},
		{"pool4 too large", strings.Replace(base, "203.0.113.1/32", "10.0.0.0/8", 1), 4, "instance[0].pool4[0]", "limit is /16"},
		{"pool4 ports reversed", strings.Replace(base, "203.0.113.1/32", "203.0.113.1/32 2000-1000", 1), 4, "instance[0].pool4[0]", "port range"},
		{"pool4 port zero", strings.Replace(base, "203.0.113.1/32", "203.0.113.1/32 0-1000", 1), 4, "instance[0].pool4[0]", "port range"},
		{"pool4 port too big", strings.Replace(base, "203.0.113.1/32", "203.0.113.1/32 1-70000", 1), 4, "instance[0].pool4[0]", "port range"},
		{"pool4 overlap inside", strings.Replace(base, `["203.0.113.1/32"]`, `["203.0.113.0/30", "203.0.113.2/32 1000-2000"]`, 1), 4, "instance[0].pool4", "overlaps"},
		{"weight zero", base + "weight = 0\n", 5, "instance[0].weight", "out of range"},
		{"mtu too small", base + "mtu = 1000\n", 5, "instance[0].mtu", "out of range 1280-65535"},
		{"ipv4 mtu too small", base + "ipv4_mtu = 60\n", 5, "instance[0].ipv4_mtu", "out of range"},
		{"lowest ipv6 mtu too small", base + "lowest_ipv6_mtu = 1279\n", 5, "instance[0].lowest_ipv6_mtu", "1279 is out of range 1280-1500 (the instance's mtu)"},
		{"lowest ipv6 mtu above mtu", base + "mtu = 1400\nlowest_ipv6_mtu = 1401\n", 6, "instance[0].lowest_ipv6_mtu", "1401 is out of range 1280-1400"},
		{"lowest ipv6 mtu type", base + "lowest_ipv6_mtu = \"1280\"\n", 5, "instance.lowest_ipv6_mtu", "cannot decode"},
		{"icmp error rate zero", base + "icmp_error_rate = 0\n", 5, "instance[0].icmp_error_rate", "0 is out of range 1-1000000"},
		{"icmp error burst zero", base + "icmp_error_burst = 0\n", 5, "instance[0].icmp_error_burst", "out of range 1-1000000"},
		{"icmp error rate huge", base + "icmp_error_rate = 1000001\n", 5, "instance[0].icmp_error_rate", "out of range"},
		{"max sessions", base + "max_sessions = 0\n", 5, "instance[0].max_sessions", "out of range"},
		{"max per source", base + "max_sessions_per_source = -1\n", 5, "instance[0].max_sessions_per_source", "out of range"},
		{"control no port", base + "control = \"127.0.0.1\"\n", 5, "instance[0].control", "HOST:PORT"},
		{"control hostname", base + "control = \"example.com:80\"\n", 5, "instance[0].control", "IP address"},
		{"control port", base + "control = \"127.0.0.1:0\"\n", 5, "instance[0].control", "port"},
		{"filtering", base + "filtering = \"full-cone\"\n", 5, "instance[0].filtering", "endpoint-independent"},
		{"zero checksum", base + "udp_zero_checksum = \"ignore\"\n", 5, "instance[0].udp_zero_checksum", "compute"},
		{"fastpath", base + "fastpath = \"yes\"\n", 5, "instance[0].fastpath", `"yes": want "auto", "on" or "off"`},
		{"timeout garbage", base + "[instance.timeouts]\nudp = \"soon\"\n", 6, "instance[0].timeouts.udp", "not a duration"},
		{"udp timeout floor", base + "[instance.timeouts]\nudp = \"119s\"\n", 6, "instance[0].timeouts.udp", "RFC 6146 minimum of 2m0s"},
		{"tcp est floor", base + "[instance.timeouts]\ntcp_established = \"2h\"\n", 6, "instance[0].timeouts.tcp_established", "minimum of 2h4m0s"},
		{"tcp trans floor", base + "[instance.timeouts]\ntcp_transitory = \"3m\"\n", 6, "instance[0].timeouts.tcp_transitory", "minimum of 4m0s"},
		{"icmp floor", base + "[instance.timeouts]\nicmp = \"30s\"\n", 6, "instance[0].timeouts.icmp", "minimum of 1m0s"},
		{"fragment floor", base + "[instance.timeouts]\nfragment = \"1s\"\n", 6, "instance[0].timeouts.fragment", "RFC 6146 minimum of 2s"},
		{"fragment ceiling", base + "[instance.timeouts]\nfragment = \"61s\"\n", 6, "instance[0].timeouts.fragment", "above RFC 8200's reassembly time of 1m0s"},
		{"fragment garbage", base + "[instance.timeouts]\nfragment = \"2\"\n", 6, "instance[0].timeouts.fragment", "not a duration"},
		{"inline timeouts", base + "timeouts = { icmp = \"30s\" }\n", 5, "instance[0].timeouts.icmp", "minimum"},
		{"static proto", base + "[[instance.static]]\nproto = \"sctp\"\nipv6 = \"[2001:db8::1]:80\"\nipv4 = \"203.0.113.1:80\"\n", 6, "instance[0].static[0].proto", "want \"tcp\""},
		{"static ipv6 garbage", base + "[[instance.static]]\nproto = \"tcp\"\nipv6 = \"2001:db8::1\"\nipv4 = \"203.0.113.1:2000\"\n", 7, "instance[0].static[0].ipv6", "IPv6 transport address"},
		{"static ipv6 in prefix", base + "[[instance.static]]\nproto = \"tcp\"\nipv6 = \"[64:ff9b:1::1]:80\"\nipv4 = \"203.0.113.1:2000\"\n", 7, "instance[0].static[0].ipv6", "inside the instance's own prefix"},
		{"static ipv4 garbage", base + "[[instance.static]]\nproto = \"tcp\"\nipv6 = \"[2001:db8::1]:80\"\nipv4 = \"[2001:db8::2]:80\"\n", 8, "instance[0].static[0].ipv4", "IPv4 transport address"},
		{"static outside pool4 address", base + "[[instance.static]]\nproto = \"tcp\"\nipv6 = \"[2001:db8::1]:80\"\nipv4 = \"203.0.113.2:2000\"\n", 8, "instance[0].static[0].ipv4", "outside the instance's pool4 (203.0.113.1/32)"},
		{"static outside pool4 ports", base + "[[instance.static]]\nproto = \"tcp\"\nipv6 = \"[2001:db8::1]:80\"\nipv4 = \"203.0.113.1:80\"\n", 8, "instance[0].static[0].ipv4", "outside the instance's pool4"},
		{"static duplicate ipv4", base + "[[instance.static]]\nproto = \"udp\"\nipv6 = \"[2001:db8::1]:53\"\nipv4 = \"203.0.113.1:5353\"\n[[instance.static]]\nproto = \"udp\"\nipv6 = \"[2001:db8::2]:53\"\nipv4 = \"203.0.113.1:5353\"\n", 12, "instance[0].static[1].ipv4", "already bound by the static entry on line 5"},
		{"static duplicate ipv6", base + "[[instance.static]]\nproto = \"udp\"\nipv6 = \"[2001:db8::1]:53\"\nipv4 = \"203.0.113.1:5353\"\n[[instance.static]]\nproto = \"udp\"\nipv6 = \"[2001:db8::1]:53\"\nipv4 = \"203.0.113.1:5354\"\n", 11, "instance[0].static[1].ipv6", "already bound"},
		{"duplicate name", base + strings.Replace(strings.Replace(base, "1::/96", "2::/96", 1), "113.1/32", "113.2/32", 1), 6, "instance[1].name", "duplicate instance name \"a\" (first on line 2)"},
		{"duplicate prefix", base + strings.Replace(strings.Replace(base, `"a"`, `"b"`, 1), "113.1/32", "113.2/32", 1), 7, "instance[1].prefix", "duplicates the prefix 64:ff9b:1::/96 of instance \"a\" (line 3)"},
		{"overlapping prefix", base + strings.Replace(strings.Replace(strings.Replace(base, `"a"`, `"b"`, 1), "113.1/32", "113.2/32", 1), "1::/96", "1::/64", 1), 7, "instance[1].prefix", "overlaps the prefix"},
		{"overlapping pool4", base + strings.Replace(strings.Replace(base, `"a"`, `"b"`, 1), "1::/96", "2::/96", 1), 8, "instance[1].pool4", "overlaps 203.0.113.1/32 of instance \"a\" (line 4)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("x.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("a config came back with the error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *Error: %v", err, err)
			}
			if e.File != "x.toml" || e.Line != tc.line || e.Field != tc.field || !strings.Contains(e.Msg, tc.want) {
				t.Errorf("got %q (file %q line %d field %q), want line %d field %q containing %q", err, e.File, e.Line, e.Field, tc.line, tc.field, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "x.toml") {
				t.Errorf("message does not start with the file: %q", err)
			}
		})
	}
}

// lowest_ipv6_mtu is RFC 7915 §4's threshold for fragmenting non-DF IPv4:
// 1280 unless raised, and never above the instance's own MTU.
func TestLowestIPv6MTU(t *testing.T) {
	base := "[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"
	for _, tc := range []struct {
		extra string
		want  int
	}{
		{"", 1280},
		{"mtu = 9000\n", 1280}, // a larger TUN MTU does not raise it
		{"lowest_ipv6_mtu = 1280\n", 1280},
		{"lowest_ipv6_mtu = 1400\n", 1400},
		{"lowest_ipv6_mtu = 1500\n", 1500},
		{"mtu = 9000\nlowest_ipv6_mtu = 9000\n", 9000},
	} {
		cfg, err := Parse("x.toml", []byte(base+tc.extra))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if got := cfg.Instances[0].LowestIPv6MTU; got != tc.want {
			t.Errorf("%q: lowest_ipv6_mtu %d, want %d", tc.extra, got, tc.want)
		}
	}
}

// The ICMP error limit defaults to the kernel's own figures.
func TestICMPErrorLimit(t *testing.T) {
	base := "[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"
	cfg, err := Parse("x.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if in := cfg.Instances[0]; in.ICMPErrorRate != 1000 || in.ICMPErrorBurst != 50 {
		t.Errorf("defaults: rate %d burst %d, want 1000 and 50", in.ICMPErrorRate, in.ICMPErrorBurst)
	}
	cfg, err = Parse("x.toml", []byte(base+"icmp_error_rate = 10\nicmp_error_burst = 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if in := cfg.Instances[0]; in.ICMPErrorRate != 10 || in.ICMPErrorBurst != 3 {
		t.Errorf("set: rate %d burst %d, want 10 and 3", in.ICMPErrorRate, in.ICMPErrorBurst)
	}
}

func TestParseReportsEveryError(t *testing.T) {
	doc := "[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/80\"\npool4 = [\"203.0.113.1\"]\nweight = 0\n"
	_, err := Parse("x.toml", []byte(doc))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i, line := range []int{3, 4, 5} {
		if es[i].Line != line {
			t.Errorf("error %d on line %d, want %d: %v", i, es[i].Line, line, es[i])
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nat64.toml")
	if err := os.WriteFile(path, []byte(twoInstances), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil || cfg.File != path || len(cfg.Instances) != 2 {
		t.Fatalf("Load: %v %+v", err, cfg)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(twoInstances))
	f.Add([]byte("[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32 1-2\"]\n[instance.timeouts]\nudp = \"3m\"\n"))
	f.Add([]byte("[[instance]]\n[[instance.static]]\nproto = \"icmp\"\nipv6 = \"[::1]:1\"\nipv4 = \"1.2.3.4:5\"\n"))
	f.Add([]byte("instance = [{name = \"a\", static = [{proto = \"tcp\"}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A config that loads is fully valid: re-check the invariants
		// consumers rely on.
		if len(cfg.Instances) == 0 {
			t.Fatal("valid config without instances")
		}
		for i := range cfg.Instances {
			in := &cfg.Instances[i]
			if !in.Prefix.IsValid() || len(in.Pool4) == 0 || in.Weight < 1 || in.MTU < nat64.MinIPv6MTU {
				t.Fatalf("invalid instance accepted: %+v", in)
			}
			if in.LowestIPv6MTU < nat64.MinIPv6MTU || in.LowestIPv6MTU > in.MTU {
				t.Fatalf("lowest_ipv6_mtu %d outside 1280..mtu %d accepted", in.LowestIPv6MTU, in.MTU)
			}
			for _, s := range in.Static {
				if !in.Pool4Contains(s.IPv4) {
					t.Fatalf("static outside pool4 accepted: %+v", s)
				}
			}
			for j := range cfg.Instances[:i] {
				if cfg.Instances[j].Prefix.Overlaps(in.Prefix) {
					t.Fatal("overlapping prefixes accepted")
				}
			}
		}
	})
}

// fastpath is auto unless set; the three words are the only values.
func TestFastPathSetting(t *testing.T) {
	base := "[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"
	for extra, want := range map[string]FastPathMode{
		"":                      FastPathAuto,
		"fastpath = \"auto\"\n": FastPathAuto,
		"fastpath = \"on\"\n":   FastPathOn,
		"fastpath = \"off\"\n":  FastPathOff,
	} {
		cfg, err := Parse("x.toml", []byte(base+extra))
		if err != nil {
			t.Fatalf("%q: %v", extra, err)
		}
		if got := cfg.Instances[0].FastPath; got != want {
			t.Errorf("%q: fastpath %q, want %q", extra, got, want)
		}
	}
}
