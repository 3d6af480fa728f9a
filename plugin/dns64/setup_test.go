package dns64

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

const twoInstances = `
[[instance]]
name = "nat64-a"
prefix = "2001:db8:64::/96"
pool4 = ["203.0.113.1/32"]
weight = 1

[[instance]]
name = "nat64-b"
prefix = "64:ff9b:1::/96"
pool4 = ["203.0.113.2/32"]
weight = 2
control = "127.0.0.1:9"
`

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "nat64.toml", twoInstances)
	bad := writeFile(t, dir, "bad.toml", "[[instance]]\nname = \"x\"\n")

	tests := []struct {
		input   string
		wantErr string // "" means success
		check   func(t *testing.T, d *DNS64)
	}{
		{input: "dns64", check: func(t *testing.T, d *DNS64) {
			wantPrefixes(t, d, "64:ff9b::/96")
			if d.parallelA != dns64conf.ParallelAuto || d.parallelDelay != 250*time.Microsecond || d.translateAll || d.allowIPv4 || d.balance != dns64conf.BalanceClient {
				t.Error("defaults")
			}
			if len(d.exclude) != 1 || d.exclude[0] != dns64conf.DefaultExclude {
				t.Errorf("default exclude %v", d.exclude)
			}
		}},
		{input: "dns64 64:1337::/96", check: func(t *testing.T, d *DNS64) { wantPrefixes(t, d, "64:1337::/96") }},
		{input: "dns64 64:1337::1/96", check: func(t *testing.T, d *DNS64) { wantPrefixes(t, d, "64:1337::/96") }},
		{input: "dns64 {\nprefix 64:1337::/96\n}", check: func(t *testing.T, d *DNS64) { wantPrefixes(t, d, "64:1337::/96") }},
		{input: "dns64 64:1337::/96 {\nprefix 64:1338::/96\n}", check: func(t *testing.T, d *DNS64) { wantPrefixes(t, d, "64:1338::/96") }},
		{input: "dns64 {\nprefix 64:1337::/96\nprefix 64:1338::/96\n}", check: func(t *testing.T, d *DNS64) { wantPrefixes(t, d, "64:1338::/96") }},
		{input: "dns64 {\ntranslate_all\nallow_ipv4\n}", check: func(t *testing.T, d *DNS64) {
			if !d.translateAll || !d.allowIPv4 {
				t.Error("flags not set")
			}
		}},
		{input: "dns64 2001:db8:64::/96 64:ff9b:1::/48", check: func(t *testing.T, d *DNS64) {
			wantPrefixes(t, d, "2001:db8:64::/96", "64:ff9b:1::/48")
		}},
		{input: "dns64 {\nprefix 2001:db8:64::/32 2001:db9::/40 2001:dba::/48 2001:dbb::/56 2001:dbc::/64 2001:dbd::/96\n}", check: func(t *testing.T, d *DNS64) {
			if len(d.set.Load().all) != 6 {
				t.Error("six prefixes")
			}
		}},
		{input: "dns64 {\ninstances " + good + "\nbalance all\nreload 1s\nhealth_interval 2s\nhealth_timeout 500ms\n}", check: func(t *testing.T, d *DNS64) {
			wantPrefixes(t, d, "2001:db8:64::/96", "64:ff9b:1::/96")
			s := d.set.Load()
			if s.all[0].name != "nat64-a" || s.all[1].weight != 2 || s.all[1].control != "127.0.0.1:9" {
				t.Errorf("instances %+v %+v", s.all[0], s.all[1])
			}
			if d.balance != dns64conf.BalanceAll || d.reload != time.Second || d.healthInterval != 2*time.Second || d.healthTimeout != 500*time.Millisecond {
				t.Error("options")
			}
		}},
		{input: "dns64 {\nexclude 2001:db8::/32 ::ffff:0:0/96\nignore_aaaa Example.COM broken.test.\nclients 2001:db8::/32 !2001:db8:1::/48 192.0.2.1\nmapped !10.0.0.0/8 0.0.0.0/0\nparallel_a off\nbalance destination\n}", check: func(t *testing.T, d *DNS64) {
			if len(d.exclude) != 2 || len(d.ignoreAAAA) != 2 || d.ignoreAAAA[0] != "example.com." || len(d.clients) != 3 || !d.clients[1].Deny || len(d.mapped) != 2 || d.parallelA != dns64conf.ParallelOff || d.balance != dns64conf.BalanceDestination {
				t.Errorf("parsed %+v", d)
			}
		}},
		{input: "dns64 {\nparallel_a on\n}", check: wantParallel(dns64conf.ParallelOn, dns64conf.DefaultParallelDelay)},
		{input: "dns64 {\nparallel_a off\nparallel_a auto\n}", check: wantParallel(dns64conf.ParallelAuto, dns64conf.DefaultParallelDelay)},
		{input: "dns64 {\nparallel_a on 0\n}", check: wantParallel(dns64conf.ParallelOn, 0)},
		{input: "dns64 {\nparallel_a on 0s\n}", check: wantParallel(dns64conf.ParallelOn, 0)},
		{input: "dns64 {\nparallel_a on 1ms\n}", check: wantParallel(dns64conf.ParallelOn, time.Millisecond)},
		{input: "dns64 {\nparallel_a on 100us\n}", check: wantParallel(dns64conf.ParallelOn, 100*time.Microsecond)},
		{input: "dns64 {\nparallel_a off\n}", check: wantParallel(dns64conf.ParallelOff, dns64conf.DefaultParallelDelay)},
		// The last line wins; a bare `on` restores the default delay.
		{input: "dns64 {\nparallel_a on 1ms\nparallel_a off\nparallel_a on\n}", check: wantParallel(dns64conf.ParallelOn, dns64conf.DefaultParallelDelay)},
		{input: "dns64 {\nparallel_a on 0\nparallel_a off\n}", check: wantParallel(dns64conf.ParallelOff, 0)},
		{input: "dns64 {\nbalance random\nreload 0s\n}", check: func(t *testing.T, d *DNS64) {
			if d.balance != dns64conf.BalanceRandom || d.reload != 0 {
				t.Error("balance random / reload 0")
			}
		}},

		{input: "dns64 64:ff9b::/95", wantErr: "length must be"},
		{input: "dns64 64:ff9b::/128", wantErr: "length must be"},
		{input: "dns64 192.0.2.0/24", wantErr: "not an IPv6 prefix"},
		{input: "dns64 not-a-prefix", wantErr: "invalid prefix"},
		{input: "dns64 2001:db8:64:0:ff00::/96", wantErr: "bits 64-71"},
		{input: "dns64 {\nprefix\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nprefix 64:ff9b::/96 64:ff9b::/96\n}", wantErr: "overlaps"},
		{input: "dns64 {\nprefix 2001:db8:64::/96 2001:db8::/32\n}", wantErr: "overlaps"},
		{input: "dns64 {\nunknown\n}", wantErr: "unknown property"},
		{input: "dns64 {\ntranslate_all yes\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nallow_ipv4 yes\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\ninstances\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\ninstances " + filepath.Join(dir, "missing.toml") + "\n}", wantErr: "missing.toml"},
		{input: "dns64 {\ninstances " + bad + "\n}", wantErr: "bad.toml"},
		{input: "dns64 {\ninstances " + good + "\nprefix 2001:db8:99::/96\n}", wantErr: "cannot be used together"},
		{input: "dns64 {\nbalance\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nbalance roundrobin\n}", wantErr: "unknown mode"},
		{input: "dns64 {\nreload soon\n}", wantErr: "invalid duration"},
		{input: "dns64 {\nhealth_interval 0s\n}", wantErr: "must be positive"},
		{input: "dns64 {\nhealth_timeout -1s\n}", wantErr: "must be positive"},
		{input: "dns64 {\nhealth_interval 1s\nhealth_timeout 2s\n}", wantErr: "longer than"},
		{input: "dns64 {\nexclude\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nexclude 192.0.2.0/24\n}", wantErr: "not an IPv6 prefix"},
		{input: "dns64 {\nignore_aaaa\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nignore_aaaa bad..name\n}", wantErr: "not a domain name"},
		{input: "dns64 {\nclients\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nclients 2001:db8::/129\n}", wantErr: "invalid range"},
		{input: "dns64 {\nclients nonsense\n}", wantErr: "invalid address"},
		{input: "dns64 {\nmapped 2001:db8::/32\n}", wantErr: "not an IPv4 range"},
		{input: "dns64 {\nmapped\n}", wantErr: "Wrong argument count"},
		{input: "dns64 {\nparallel_a\n}", wantErr: "want auto, on [DELAY] or off"},
		{input: "dns64 {\nparallel_a maybe\n}", wantErr: "want auto, on [DELAY] or off"},
		{input: "dns64 {\nparallel_a 1ms\n}", wantErr: "want auto, on [DELAY] or off"},
		{input: "dns64 {\nparallel_a auto 1ms\n}", wantErr: "want auto, on [DELAY] or off"},
		{input: "dns64 {\nparallel_a on -1ms\n}", wantErr: "must not be negative"},
		{input: "dns64 {\nparallel_a on -0.5us\n}", wantErr: "must not be negative"},
		{input: "dns64 {\nparallel_a on soon\n}", wantErr: "invalid delay"},
		{input: "dns64 {\nparallel_a on 5\n}", wantErr: "invalid delay"},
		{input: "dns64 {\nparallel_a on 1ms 2ms\n}", wantErr: "want auto, on [DELAY] or off"},
		{input: "dns64 {\nparallel_a off 1ms\n}", wantErr: "want auto, on [DELAY] or off"},
		{input: "dns64 {\nparallel_a on\nparallel_a off now\n}", wantErr: "want auto, on [DELAY] or off"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.input, "\n", " "), func(t *testing.T) {
			d, err := parse(caddy.NewTestController("dns", tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tc.check(t, d)
		})
	}
}

func wantParallel(mode dns64conf.ParallelA, delay time.Duration) func(*testing.T, *DNS64) {
	return func(t *testing.T, d *DNS64) {
		t.Helper()
		if d.parallelA != mode || d.parallelDelay != delay {
			t.Errorf("parallel_a: mode %d delay %v, want %d %v", d.parallelA, d.parallelDelay, mode, delay)
		}
	}
}

func wantPrefixes(t *testing.T, d *DNS64, want ...string) {
	t.Helper()
	var got []string
	for _, in := range d.set.Load().all {
		got = append(got, in.prefixS)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("prefixes %v, want %v", got, want)
	}
}

// TestSetupWrapsErrors checks the error reaches CoreDNS in its usual form.
func TestSetupWrapsErrors(t *testing.T) {
	err := setup(caddy.NewTestController("dns", "dns64 {\nunknown\n}"))
	if err == nil || !strings.HasPrefix(err.Error(), "plugin/dns64:") {
		t.Fatalf("error %v", err)
	}
	if err := setup(caddy.NewTestController("dns", "dns64 2001:db8:64::/96")); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"dns64", "dns64 64:ff9b::/96", "dns64 {\nprefix 2001:db8:64::/96\ntranslate_all\nallow_ipv4\n}",
		"dns64 {\nexclude ::ffff:0:0/96\nclients !10.0.0.0/8\nmapped 0.0.0.0/0\nbalance all\n}",
		"dns64 {\nreload 1s\nhealth_interval 1s\nhealth_timeout 1s\nparallel_a off\nignore_aaaa a.b\n}",
		"dns64 {\nparallel_a on 1ms\n}", "dns64 {\nparallel_a on 0\n}", "dns64 {\nparallel_a on -1s\n}",
		"dns64 {\n}", "dns64 {", "dns64 \"x\" {\nprefix 1::/32 2::/32\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		if strings.Contains(input, "instances") {
			return // would read arbitrary files
		}
		d, err := parse(caddy.NewTestController("dns", input))
		if err == nil && d.set.Load() == nil {
			t.Fatal("parsed without instances")
		}
	})
}
