package dns64conf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

func prefixStrings(ps []nat64.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestParseCorefile(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "nat64.toml"), []byte("[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"), 0o644)
	for _, tc := range []struct {
		name, corefile string
		want           [][]string // per block, nil for a block without dns64
		lines          []int      // line of each block's first written prefix
	}{
		{"later replaces earlier", ". {\n dns64 64:ff9b:1::/96 {\n  prefix 2001:db8:64::/96\n }\n}\n", [][]string{{"2001:db8:64::/96"}}, []int{3}},
		{"default", ". {\n dns64\n}\n", [][]string{{"64:ff9b::/96"}}, nil},
		{"instances under root", ". {\n root etc\n dns64 {\n  instances nat64.toml\n }\n}\n", [][]string{{"64:ff9b:1::/96"}}, nil},
		{"blocks without dns64 kept", "a. {\n whoami\n}\nb. {\n dns64 2001:db8:64::/96\n}\n", [][]string{nil, {"2001:db8:64::/96"}}, []int{0, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, err := ParseCorefile(filepath.Join(dir, "Corefile"), []byte(tc.corefile), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) != len(tc.want) {
				t.Fatalf("%d blocks, want %d", len(blocks), len(tc.want))
			}
			for i, b := range blocks {
				if b.DNS64 == nil {
					if tc.want[i] != nil {
						t.Errorf("block %d: no dns64", i)
					}
					continue
				}
				if got := prefixStrings(b.DNS64.SynthesisPrefixes()); !slices.Equal(got, tc.want[i]) {
					t.Errorf("block %d: prefixes %v, want %v", i, got, tc.want[i])
				}
				if tc.lines != nil && len(b.DNS64.Prefixes) > 0 && b.DNS64.Prefixes[0].Line != tc.lines[i] {
					t.Errorf("block %d: line %d, want %d", i, b.DNS64.Prefixes[0].Line, tc.lines[i])
				}
			}
		})
	}
}

func TestParseCorefileErrors(t *testing.T) {
	for _, tc := range []struct{ name, corefile, want string }{
		{"unknown directive", ". {\n dns46\n}\n", "Unknown directive 'dns46'"},
		{"prefix with instances", ". {\n dns64 2001:db8:64::/96 {\n  instances x.toml\n }\n}\n", "plugin/dns64: Corefile:3 - Error during parsing: prefix and instances cannot be used together"},
		{"max_fails negative", ". {\n dns64 {\n  max_fails -1\n }\n}\n", `Corefile:3 - Error during parsing: max_fails: "-1" is not a number of probes`},
		{"max_fails two args", ". {\n dns64 {\n  max_fails 1 2\n }\n}\n", `Corefile:3 - Error during parsing: max_fails: want one number`},
		{"answer_cache size", ". {\n dns64 {\n  answer_cache 0\n }\n}\n", `Corefile:3 - Error during parsing: answer_cache: SIZE "0" is not a number of entries`},
		{"answer_cache ttl", ". {\n dns64 {\n  answer_cache 10 soon\n }\n}\n", `Corefile:3 - Error during parsing: answer_cache: MAX_TTL "soon" is neither`},
		{"answer_cache short ttl", ". {\n\n dns64 {\n  answer_cache 10 500ms\n }\n}\n", `Corefile:4 - Error during parsing: answer_cache: MAX_TTL "500ms" is below one second`},
		{"answer_cache args", ". {\n dns64 {\n  answer_cache 1 2 3\n }\n}\n", `Corefile:3 - Error during parsing: answer_cache: want [SIZE] [MAX_TTL] or off`},
		{"timeout longer than interval", ". {\n dns64 {\n  health_interval 1s\n  health_timeout 2s\n }\n}\n", "health_timeout 2s is longer than health_interval 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCorefile("Corefile", []byte(tc.corefile), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		block    string
		maxFails int
		size     int
		maxTTL   time.Duration
	}{
		{"", DefaultMaxFails, DefaultAnswerCacheSize, DefaultAnswerCacheMaxTTL},
		{"max_fails 0\nanswer_cache off", 0, 0, DefaultAnswerCacheMaxTTL},
		{"max_fails 5\nanswer_cache", 5, DefaultAnswerCacheSize, DefaultAnswerCacheMaxTTL},
		{"answer_cache 100", DefaultMaxFails, 100, DefaultAnswerCacheMaxTTL},
		{"answer_cache 100 300", DefaultMaxFails, 100, 300 * time.Second},
		{"answer_cache off\nanswer_cache 7 2m", DefaultMaxFails, 7, 2 * time.Minute},
	} {
		blocks, err := ParseCorefile("Corefile", []byte(". {\n dns64 {\n"+tc.block+"\n }\n}\n"), t.TempDir())
		if err != nil {
			t.Fatalf("%q: %v", tc.block, err)
		}
		c := blocks[0].DNS64
		if c.MaxFails != tc.maxFails || c.AnswerCacheSize != tc.size || c.AnswerCacheMaxTTL != tc.maxTTL {
			t.Errorf("%q: max_fails %d, answer_cache %d %v; want %d, %d %v", tc.block, c.MaxFails, c.AnswerCacheSize, c.AnswerCacheMaxTTL, tc.maxFails, tc.size, tc.maxTTL)
		}
	}
}

func FuzzParseCorefile(f *testing.F) {
	f.Add([]byte(". {\n dns64 {\n  max_fails 3\n  answer_cache 100 30s\n }\n}\n"))
	f.Add([]byte(". {\n dns64 {\n  answer_cache off\n }\n}\n"))
	f.Add([]byte(". {\n dns64 64:ff9b:1::/96 {\n  prefix 2001:db8:64::/96\n  balance all\n }\n}\n"))
	f.Add([]byte("(s) {\n dns64 {\n  clients !10.0.0.0/8\n  parallel_a on 1ms\n }\n}\na. b. {\n import s\n}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, err := ParseCorefile(filepath.Join(dir, "Corefile"), data, dir)
		if err != nil {
			return
		}
		for _, b := range blocks {
			if b.DNS64 == nil {
				continue
			}
			if c := b.DNS64; c.MaxFails < 0 || c.AnswerCacheSize < 0 || c.AnswerCacheSize > MaxAnswerCacheSize || c.AnswerCacheMaxTTL < time.Second {
				t.Fatalf("bad options accepted: max_fails %d, answer_cache %d %v", c.MaxFails, c.AnswerCacheSize, c.AnswerCacheMaxTTL)
			}
			ps := b.DNS64.SynthesisPrefixes()
			if len(ps) == 0 {
				t.Fatal("a dns64 block without prefixes")
			}
			for i, p := range ps {
				if !p.IsValid() {
					t.Fatal("invalid prefix accepted")
				}
				for _, q := range ps[:i] {
					if p.Overlaps(q) {
						t.Fatalf("overlapping prefixes %s and %s accepted", p, q)
					}
				}
			}
		}
	})
}
