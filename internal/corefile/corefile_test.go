package corefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/nat64conf"
)

const toml = `[[instance]]
name   = "a"
prefix = "64:ff9b:1::/96"
pool4  = ["203.0.113.1/32"]

[[instance]]
name   = "b"
prefix = "2001:db8:64::/96"
pool4  = ["203.0.113.2/32"]
`

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func prefixes(dirs []DNS64) []string {
	var out []string
	for _, d := range dirs {
		for _, u := range d.Uses {
			out = append(out, u.Prefix.String())
		}
	}
	return out
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "nat64.toml", toml)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	write(t, dir, "sub/nat64.toml", "[[instance]]\nname = \"c\"\nprefix = \"64:ff9b:2::/96\"\npool4 = [\"203.0.113.3/32\"]\n")
	for _, tc := range []struct {
		name, corefile string
		want           []string
		where          string // of the first use
	}{
		{"default prefix", ". {\n dns64\n}\n", []string{"64:ff9b::/96"}, "Corefile:2 (default prefix)"},
		{"argument", ". {\n dns64 64:ff9b:1::/96\n}\n", []string{"64:ff9b:1::/96"}, "Corefile:2"},
		{"prefix option", ". {\n dns64 {\n  translate_all\n  prefix 64:ff9b:1::/96 2001:db8:64::/96\n }\n}\n", []string{"64:ff9b:1::/96", "2001:db8:64::/96"}, "Corefile:4"},
		{"instances relative to the working directory", ". {\n dns64 {\n  instances nat64.toml\n }\n}\n", []string{"64:ff9b:1::/96", "2001:db8:64::/96"}, "nat64.toml:3 (instance \"a\", via instances at " + filepath.Join(dir, "Corefile") + ":3)"},
		{"instances relative to root", ". {\n root sub\n dns64 {\n  instances nat64.toml\n }\n}\n", []string{"64:ff9b:2::/96"}, filepath.Join(dir, "sub", "nat64.toml") + ":3"},
		{"argument then prefix: the later replaces", ". {\n dns64 64:ff9b:1::/96 {\n  prefix 2001:db8:64::/96\n }\n}\n", []string{"2001:db8:64::/96"}, "Corefile:3"},
		{"prefix twice", ". {\n dns64 {\n  prefix 2001:db8:64::/96\n  prefix 64:ff9b:1::/96\n }\n}\n", []string{"64:ff9b:1::/96"}, "Corefile:4"},
		{"host bits cleared", ". {\n dns64 64:ff9b:1::1/96\n}\n", []string{"64:ff9b:1::/96"}, "Corefile:2"},
		{"import snippet", "(synth) {\n dns64 2001:db8:64::/96\n}\n. {\n import synth\n}\n", []string{"2001:db8:64::/96"}, "Corefile:2"},
		{"two servers", "a. {\n dns64 64:ff9b:1::/96\n}\nb. {\n dns64 2001:db8:64::/96\n}\n", []string{"64:ff9b:1::/96", "2001:db8:64::/96"}, "Corefile:2"},
		{"no dns64", ". {\n whoami\n}\n", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, dir, "Corefile", tc.corefile)
			dirs, err := Read(path, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := prefixes(dirs); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("prefixes %v, want %v", got, tc.want)
			}
			if tc.where != "" && !strings.Contains(dirs[0].Uses[0].Where, tc.where) {
				t.Errorf("where %q, want it to contain %q", dirs[0].Uses[0].Where, tc.where)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.toml", "[[instance]]\nname = 1\n")
	for _, tc := range []struct{ name, corefile, want string }{
		{"bad prefix length", ". {\n dns64 64:ff9b:1::/80\n}\n", "Corefile:2 - Error during parsing: invalid NAT64 prefix: 64:ff9b:1::/80: length"},
		{"bits 64-71", ". {\n dns64 {\n  prefix 2001:db8:0:0:ff00::/96\n }\n}\n", "Corefile:3 - Error during parsing: invalid NAT64 prefix: 2001:db8:0:0:ff00::/96: bits 64-71"},
		{"empty prefix", ". {\n dns64 {\n  prefix\n }\n}\n", "Corefile:3 - Error during parsing: Wrong argument count"},
		{"missing instances", ". {\n dns64 {\n  instances nope.toml\n }\n}\n", "instances: open " + filepath.Join(dir, "nope.toml")},
		{"bad instances file", ". {\n dns64 {\n  instances bad.toml\n }\n}\n", "bad.toml:2"},
		{"instances arity", ". {\n dns64 {\n  instances a b\n }\n}\n", "Corefile:3 - Error during parsing: Wrong argument count"},
		{"prefix with instances", ". {\n dns64 2001:db8:64::/96 {\n  instances nat64.toml\n }\n}\n", "prefix and instances cannot be used together"},
		{"unknown option", ". {\n dns64 {\n  prefixes 2001:db8:64::/96\n }\n}\n", "Corefile:3 - Error during parsing: unknown property 'prefixes'"},
		{"unknown directive", ". {\n dns46\n}\n", "Unknown directive 'dns46'"},
		{"syntax", ". {\n dns64 {\n", "Corefile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(write(t, dir, "Corefile", tc.corefile), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	cfgPath := write(t, dir, "nat64.toml", toml)
	cfg, err := nat64conf.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, corefile string
		want           []string // substrings, one per mismatch, in order
	}{
		{"agree", ". {\n dns64 {\n  prefix 64:ff9b:1::/96 2001:db8:64::/96\n }\n}\n", nil},
		{"agree through instances", ". {\n dns64 {\n  instances nat64.toml\n }\n}\n", nil},
		{"agree across two server blocks", "a. {\n dns64 64:ff9b:1::/96\n}\nb. {\n dns64 2001:db8:64::/96\n}\n", nil},
		{"argument replaced by prefix", ". {\n dns64 64:ff9b:1::/96 {\n  prefix 2001:db8:64::/96\n }\n}\n", []string{
			cfgPath + ":3: instance \"a\" owns 64:ff9b:1::/96, but no dns64 block",
		}},
		{"unowned prefix", ". {\n dns64 {\n  prefix 64:ff9b:2::/96 2001:db8:64::/96\n }\n}\n", []string{
			"Corefile:3: dns64 synthesizes with 64:ff9b:2::/96, but no NAT64 instance in " + cfgPath + " owns that prefix",
			cfgPath + ":3: instance \"a\" owns 64:ff9b:1::/96, but no dns64 block in " + filepath.Join(dir, "Corefile") + " synthesizes with it",
		}},
		{"near miss", ". {\n dns64 {\n  prefix 64:ff9b:1::/64 2001:db8:64::/96\n }\n}\n", []string{
			"it overlaps instance \"a\"'s prefix 64:ff9b:1::/96 (" + cfgPath + ":3): make the two the same",
			"instance \"a\" owns",
		}},
		{"default prefix unowned", ". {\n dns64\n}\n", []string{"64:ff9b::/96, but no NAT64 instance", "instance \"a\"", "instance \"b\""}},
		{"no dns64", ". {\n whoami\n}\n", []string{"no dns64 directive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, dir, "Corefile", tc.corefile)
			dirs, err := Read(path, dir)
			if err != nil {
				t.Fatal(err)
			}
			got := Compare(cfg, path, dirs)
			if len(got) != len(tc.want) {
				t.Fatalf("mismatches %v, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i].Message, w) {
					t.Errorf("mismatch %d: %q\nwant it to contain %q", i, got[i].Message, w)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(". {\n dns64 {\n  prefix 64:ff9b:1::/96\n  translate_all\n }\n}\n"))
	f.Add([]byte("a.:53 b.:53 {\n dns64 64:ff9b::/96\n import x\n}\n"))
	f.Add([]byte("(snip) {\n dns64\n}\n. {\n import snip\n}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		dirs, err := Parse(filepath.Join(dir, "Corefile"), data, dir)
		if err != nil {
			return
		}
		for _, d := range dirs {
			if len(d.Uses) == 0 {
				t.Fatal("a dns64 directive without prefixes")
			}
			for _, u := range d.Uses {
				if !u.Prefix.IsValid() {
					t.Fatal("invalid prefix accepted")
				}
			}
		}
	})
}
