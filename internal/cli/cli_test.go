package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// nat64ctl runs the CLI in-process and returns its exit status and output.
func nat64ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(args, &out, &errb)
	return code, out.String(), errb.String()
}

// walk visits every command of the tree with its argument path.
func walk(c *cobra.Command, path []string, fn func(*cobra.Command, []string)) {
	fn(c, path)
	for _, s := range c.Commands() {
		walk(s, append(append([]string(nil), path...), s.Name()), fn)
	}
}

// printsData are the commands whose output is data: they take --json.
var printsData = [][]string{
	{"check"}, {"route", "show"}, {"session", "show"}, {"bib", "show"}, {"stats"}, {"addr", "synth"}, {"addr", "extract"},
}

func TestCommandTree(t *testing.T) {
	root := NewRoot()
	data := map[string]bool{}
	for _, p := range printsData {
		data[strings.Join(append([]string{"nat64ctl"}, p...), " ")] = true
	}
	seen := 0
	walk(root, nil, func(c *cobra.Command, path []string) {
		seen++
		name := c.CommandPath()
		if c.Short == "" || c.Example == "" {
			t.Errorf("%q: missing short help or example", name)
		}
		if c.RunE == nil && c.Run == nil {
			t.Errorf("%q: does not run", name)
		}
		if got := c.Flags().Lookup("json") != nil; got != data[name] {
			t.Errorf("%q: has --json %v, want %v (prints data: %v)", name, got, data[name], data[name])
		}
		code, out, stderr := nat64ctl(t, append(path, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "Examples:") {
			t.Errorf("%q --help: status %d, output %q, stderr %q", name, code, out, stderr)
		}
		for _, s := range c.Commands() {
			if !strings.Contains(out, "  "+s.Name()+" ") {
				t.Errorf("%q --help does not list %q", name, s.Name())
			}
		}
		// Help is generated from the flags, so every flag appears in it.
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(out, "--"+f.Name) {
				t.Errorf("%q --help does not show --%s", name, f.Name)
			}
		})
		// An inner node without a subcommand is a usage error.
		if c.HasSubCommands() {
			if code, _, stderr := nat64ctl(t, path...); code != exitUsage || !strings.Contains(stderr, "subcommand") {
				t.Errorf("%q alone: status %d, stderr %q", name, code, stderr)
			}
		}
	})
	if seen < 19 {
		t.Errorf("only %d commands in the tree", seen)
	}
	for _, p := range append(printsData, []string{"run"}, []string{"route", "sync"}, []string{"route", "flush"},
		[]string{"bib", "add"}, []string{"bib", "remove"}, []string{"reload"}, []string{"completion", "bash"}) {
		if c, rest, err := root.Find(p); err != nil || len(rest) != 0 || c.Name() != p[len(p)-1] {
			t.Errorf("%v: %v (found %v, rest %v)", p, err, c.CommandPath(), rest)
		}
	}
}

// Every shell's completion script comes out, and --instance completes from
// nat64.toml.
func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__nat64ctl_", "zsh": "#compdef nat64ctl", "fish": "complete -c nat64ctl"} {
		code, out, stderr := nat64ctl(t, "completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: status %d, stderr %q, %d bytes without %q", shell, code, stderr, len(out), marker)
		}
	}
	code, out, _ := nat64ctl(t, cobra.ShellCompNoDescRequestCmd, "stats", "-c", examples(t, "nat64.toml"), "--instance", "")
	if code != 0 || !strings.Contains(out, "nat64-a\n") || !strings.Contains(out, "nat64-b\n") {
		t.Errorf("--instance completion: status %d, %q", code, out)
	}
	code, out, _ = nat64ctl(t, cobra.ShellCompNoDescRequestCmd, "session", "show", "--proto", "")
	if code != 0 || !strings.Contains(out, "tcp\nudp\nicmp\n") {
		t.Errorf("--proto completion: status %d, %q", code, out)
	}
}

// The man pages are generated from the same tree: one page per command.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if err := WriteManPages(dir); err != nil {
		t.Fatal(err)
	}
	pages := 0
	walk(NewRoot(), nil, func(c *cobra.Command, path []string) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		pages++
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !strings.Contains(string(b), ".SH EXAMPLE") {
			t.Errorf("%s: %v, %d bytes", name, err, len(b))
		}
	})
	if files, _ := filepath.Glob(filepath.Join(dir, "*.1")); len(files) != pages {
		t.Errorf("%d man pages for %d commands", len(files), pages)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"addr"},
		{"addr", "synth"},
		{"addr", "synth", "not-an-ip", "--prefix", "64:ff9b:1::/96"},
		{"addr", "synth", "192.0.2.1", "--prefix", "64:ff9b:1::/80"},
		{"addr", "synth", "192.0.2.1", "--bogus"},
		{"addr", "synth", "192.0.2.1", "--prefix", "64:ff9b:1::/96", "--instance", "a"},
		{"addr", "extract", "192.0.2.1"},
		{"check", "extra-arg"},
	} {
		code, _, stderr := nat64ctl(t, args...)
		if code != exitUsage || stderr == "" {
			t.Errorf("%v: status %d, stderr %q; want %d and a message", args, code, stderr, exitUsage)
		}
	}
}

// A daemon with a bad config says why and stops before touching anything.
func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "nat64.toml")
	os.WriteFile(bad, []byte("[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/80\"\npool4 = [\"203.0.113.1/32\"]\n"), 0o644)
	code, out, stderr := nat64ctl(t, "run", "-c", bad)
	if code != exitProblem || out != "" || !strings.Contains(stderr, bad+":3: instance[0].prefix") {
		t.Errorf("status %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = nat64ctl(t, "run", "-c", examples(t, "nat64.toml"), "--instance", "nope")
	if code != exitProblem || !strings.Contains(stderr, `no instance "nope"`) {
		t.Errorf("unknown instance: status %d, %q", code, stderr)
	}
}

func TestAddrSynthRFC6052(t *testing.T) {
	code, out, stderr := nat64ctl(t, "addr", "synth", "192.0.2.33", "--prefix", "2001:db8:122:344::/64")
	if code != 0 || out != "2001:db8:122:344:c0:2:2100:0\n" {
		t.Errorf("status %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestAddrSynthRefusesWellKnownPrefixForNonGlobal(t *testing.T) {
	code, out, stderr := nat64ctl(t, "addr", "synth", "192.0.2.33", "--prefix", "64:ff9b::/96")
	if code != exitProblem || out != "" || !strings.Contains(stderr, "RFC 6052 section 3.1") {
		t.Errorf("status %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, _ = nat64ctl(t, "addr", "synth", "8.8.8.8", "--prefix", "64:ff9b::/96")
	if code != 0 || out != "64:ff9b::808:808\n" {
		t.Errorf("global address: status %d, stdout %q", code, out)
	}
}

func TestAddrWithConfig(t *testing.T) {
	cfg := examples(t, "nat64.toml")
	code, out, _ := nat64ctl(t, "addr", "synth", "198.51.100.2", "-c", cfg)
	if code != 0 || out != "nat64-a\t64:ff9b:1::c633:6402\nnat64-b\t2001:db8:64::c633:6402\n" {
		t.Errorf("all instances: status %d, stdout %q", code, out)
	}
	code, out, _ = nat64ctl(t, "addr", "synth", "198.51.100.2", "-c", cfg, "--instance", "nat64-b")
	if code != 0 || out != "2001:db8:64::c633:6402\n" {
		t.Errorf("--instance: status %d, stdout %q", code, out)
	}
	code, out, _ = nat64ctl(t, "addr", "extract", "2001:db8:64::c633:6402", "-c", cfg, "--json")
	var got []AddrResult
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 ||
		got[0] != (AddrResult{IPv4: "198.51.100.2", IPv6: "2001:db8:64::c633:6402", Prefix: "2001:db8:64::/96", Instance: "nat64-b"}) {
		t.Errorf("extract --json: status %d, %q", code, out)
	}
	code, _, stderr := nat64ctl(t, "addr", "extract", "2001:db8:65::1", "-c", cfg)
	if code != exitProblem || !strings.Contains(stderr, "not inside 64:ff9b:1::/96, 2001:db8:64::/96") {
		t.Errorf("outside every prefix: status %d, %q", code, stderr)
	}
	code, out, _ = nat64ctl(t, "addr", "extract", "64:ff9b::808:808")
	if code != 0 || out != "8.8.8.8\n" {
		t.Errorf("well-known prefix needs no config: status %d, %q", code, out)
	}
}

// examples returns the path of a file in corefile-examples/.
func examples(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "corefile-examples", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every Corefile in corefile-examples agrees with the nat64.toml beside it.
func TestCheckExamples(t *testing.T) {
	tomls, _ := filepath.Glob(filepath.Join("..", "..", "corefile-examples", "*.toml"))
	for _, f := range tomls {
		if code, out, stderr := nat64ctl(t, "check", "-c", f); code != 0 {
			t.Errorf("%s: status %d\n%s%s", f, code, out, stderr)
		}
	}
	corefiles, _ := filepath.Glob(filepath.Join("..", "..", "corefile-examples", "Corefile*"))
	if len(corefiles) < 2 {
		t.Fatalf("found %d Corefiles", len(corefiles))
	}
	for _, cf := range corefiles {
		code, out, stderr := nat64ctl(t, "check", "-c", examples(t, "nat64.toml"), "--corefile", cf)
		if code != 0 || !strings.Contains(out, "ok: every dns64 prefix") {
			t.Errorf("%s: status %d\n%s%s", cf, code, out, stderr)
		}
	}
}

// The misconfiguration operators hit most: one prefix edited in either file.
// The check fails and names both files.
func TestCheckCatchesEditedPrefix(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(examples(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	toml, corefile := read("nat64.toml"), read("Corefile.inline")
	for _, tc := range []struct{ name, toml, corefile string }{
		{"Corefile edited", toml, strings.Replace(corefile, "64:ff9b:1::/96", "64:ff9b:2::/96", 1)},
		{"nat64.toml edited", strings.Replace(toml, "2001:db8:64::/96", "2001:db8:65::/96", 1), corefile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, cf := filepath.Join(dir, "nat64.toml"), filepath.Join(dir, "Corefile")
			os.WriteFile(cfg, []byte(tc.toml), 0o644)
			os.WriteFile(cf, []byte(tc.corefile), 0o644)
			code, _, stderr := nat64ctl(t, "check", "-c", cfg, "--corefile", cf)
			if code != exitProblem {
				t.Fatalf("status %d, want %d; stderr %q", code, exitProblem, stderr)
			}
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if strings.HasPrefix(line, "mismatch: ") && !(strings.Contains(line, cfg) && strings.Contains(line, cf)) {
					t.Errorf("a mismatch that does not name both files: %q", line)
				}
			}
			if strings.Count(stderr, "mismatch: ") != 2 {
				t.Errorf("want two mismatches (the unowned prefix and the unused instance):\n%s", stderr)
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	code, out, _ := nat64ctl(t, "check", "-c", examples(t, "nat64.toml"), "--corefile", examples(t, "Corefile"), "--json")
	var res CheckResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("status %d, %v: %q", code, err, out)
	}
	if !res.OK || len(res.Instances) != 2 || res.Instances[1].Weight != 2 || len(res.DNS64) != 1 || len(res.DNS64[0].Prefixes) != 2 {
		t.Errorf("%+v", res)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "nat64.toml")
	os.WriteFile(bad, []byte("[[instance]]\nname = \"a\"\nprefix = \"64:ff9b:1::/80\"\npool4 = [\"203.0.113.1/32\"]\n"), 0o644)
	code, out, _ = nat64ctl(t, "check", "-c", bad, "--json")
	res = CheckResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitProblem || res.OK || len(res.Errors) != 1 ||
		!strings.HasPrefix(res.Errors[0], bad+":3: instance[0].prefix:") {
		t.Errorf("bad config: status %d, %+v", code, res)
	}
}
