package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The units as shipped name the binaries where docs/deploy.md installs
// them; the tests point them at the binaries they built.
const (
	nat64ctlUnit = "nat64ctl@.service"
	corednsUnit  = "coredns-nat64kit.service"
	installedCtl = "/usr/local/bin/nat64ctl"
	installedDNS = "/usr/local/bin/coredns"
)

// unitEntry is one Key=Value line of a unit file.
type unitEntry struct {
	Section, Key, Value string
	Line                int
}

// parseUnit reads the systemd unit syntax the tests need: [Section]
// headers, Key=Value lines, comments. Continuation lines are not used in
// our units and are refused, so a test never reads one half-parsed.
func parseUnit(path string) ([]unitEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseUnitText(path, f)
}

func parseUnitText(path string, r io.Reader) ([]unitEntry, error) {
	var out []unitEntry
	section := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, `\`):
			return nil, fmt.Errorf("%s:%d: continuation lines are not supported here", path, n)
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s:%d: not Key=Value in a section: %q", path, n, line)
			}
			out = append(out, unitEntry{section, strings.TrimSpace(k), strings.TrimSpace(v), n})
		}
	}
	return out, sc.Err()
}

// values returns every value of Section.Key, in order.
func values(es []unitEntry, section, key string) []string {
	var out []string
	for _, e := range es {
		if e.Section == section && e.Key == key {
			out = append(out, e.Value)
		}
	}
	return out
}

// stageUnits copies deploy/systemd into a temporary directory with the
// installed binary paths replaced by the built ones, applying edit (if
// any) to each file's text, and returns the directory.
func stageUnits(t *testing.T, edit func(name, text string) string) string {
	t.Helper()
	ctl, dns := binary(t, "nat64ctl"), binary(t, "plugin/coredns")
	dir := t.TempDir()
	for _, name := range []string{nat64ctlUnit, corednsUnit} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.NewReplacer(installedCtl, ctl, installedDNS, dns).Replace(string(b))
		if edit != nil {
			text = edit(name, text)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var diagLine = regexp.MustCompile(`^(/[^:]+):(\d+): (.*)$`)

// verifyUnits runs systemd-analyze verify on the two units in dir (the
// template through an instance of it, as systemd would load it). verify
// exits 0 on a misspelt key or value, only warning "FILE:LINE: ...
// ignoring", so any output counts as a failure here; each such line is
// given the Key=Value it points at, since systemd's text does not always
// name the field (a bad Type= says "Failed to parse service type").
func verifyUnits(t *testing.T, dir string) error {
	t.Helper()
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (apt-get install systemd; scripts/deps.sh test installs it)")
	}
	inst := strings.Replace(nat64ctlUnit, "@.", "@nat64-a.", 1)
	cmd := exec.Command(tool, "verify", "--man=no", filepath.Join(dir, inst), filepath.Join(dir, corednsUnit))
	out, runErr := cmd.CombinedOutput()
	var lines []string
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" || seen[l] {
			continue // verify prints some diagnostics twice
		}
		seen[l] = true
		if m := diagLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[2])
			if src := lineOf(m[1], n); src != "" {
				l = fmt.Sprintf("%s:%s: %s: %s", filepath.Base(m[1]), m[2], src, m[3])
			}
		}
		lines = append(lines, l)
	}
	if runErr != nil || len(lines) > 0 {
		return fmt.Errorf("systemd-analyze verify (%v):\n%s", runErr, strings.Join(lines, "\n"))
	}
	return nil
}

// lineOf is line n of a file, trimmed, or "".
func lineOf(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(string(b), "\n")
	if n < 1 || n > len(ls) {
		return ""
	}
	return strings.TrimSpace(ls[n-1])
}

func TestUnitsVerify(t *testing.T) {
	if err := verifyUnits(t, stageUnits(t, nil)); err != nil {
		t.Error(err)
	}
}

// A misspelt value or key fails, naming the file and the field.
func TestUnitTypoIsNamed(t *testing.T) {
	for _, c := range []struct {
		file, from, to string
		want           []string
	}{
		{corednsUnit, "Type=notify", "Type=notfy", []string{corednsUnit + ":", "Type=notfy"}},
		{nat64ctlUnit, "WatchdogSec=30s", "WatchdogSecs=30s", []string{nat64ctlUnit + ":", "WatchdogSecs"}},
		{nat64ctlUnit, "ProtectSystem=strict", "ProtectSystem=strikt", []string{nat64ctlUnit + ":", "ProtectSystem=strikt"}},
		{corednsUnit, "RestrictAddressFamilies=AF_UNIX", "RestrictAddresFamilies=AF_UNIX", []string{corednsUnit + ":", "RestrictAddresFamilies"}},
	} {
		t.Run(c.to, func(t *testing.T) {
			dir := stageUnits(t, func(name, text string) string {
				if name != c.file {
					return text
				}
				if !strings.Contains(text, c.from) {
					t.Fatalf("%s has no %q to break", name, c.from)
				}
				return strings.Replace(text, c.from, c.to, 1)
			})
			err := verifyUnits(t, dir)
			if err == nil {
				t.Fatalf("%s with %s passed verify", c.file, c.to)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error should name %q:\n%v", w, err)
				}
			}
		})
	}
}

// checkUnit holds one unit to the directives it must (and must not) have.
type checkUnit struct {
	t    *testing.T
	file string
	es   []unitEntry
}

func (c checkUnit) want(key, value string) {
	c.t.Helper()
	if got := values(c.es, "Service", key); !slices.Contains(got, value) {
		c.t.Errorf("%s: want %s=%s, have %q", c.file, key, value, got)
	}
}

func (c checkUnit) absent(key, value string) {
	c.t.Helper()
	if got := values(c.es, "Service", key); slices.Contains(got, value) {
		c.t.Errorf("%s: %s=%s must not be set", c.file, key, value)
	}
}

// only checks that the space-separated items of every Key= line are
// exactly want (capabilities, address families): nothing more is granted.
func (c checkUnit) only(key string, want ...string) {
	c.t.Helper()
	var got []string
	for _, v := range values(c.es, "Service", key) {
		got = append(got, strings.Fields(v)...)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		c.t.Errorf("%s: %s is %q, want exactly %q", c.file, key, got, want)
	}
}

func loadUnit(t *testing.T, name string) checkUnit {
	es, err := parseUnit(filepath.Join("systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	return checkUnit{t, name, es}
}

func TestUnitsHardened(t *testing.T) {
	families := []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
	for _, c := range []struct {
		unit string
		caps []string
	}{{nat64ctlUnit, []string{"CAP_NET_ADMIN", "CAP_BPF"}}, {corednsUnit, []string{"CAP_NET_BIND_SERVICE"}}} {
		u := loadUnit(t, c.unit)
		u.want("Type", "notify")
		u.want("NotifyAccess", "main")
		u.want("ProtectSystem", "strict")
		u.want("ProtectHome", "yes")
		u.want("NoNewPrivileges", "yes")
		u.want("DynamicUser", "yes")
		u.only("CapabilityBoundingSet", c.caps...)
		u.only("AmbientCapabilities", c.caps...)
		u.only("RestrictAddressFamilies", families...)
		if len(values(u.es, "Service", "WatchdogSec")) != 1 {
			u.t.Errorf("%s: want one WatchdogSec=", c.unit)
		}
		if len(values(u.es, "Service", "ExecReload")) != 1 {
			u.t.Errorf("%s: want one ExecReload=", c.unit)
		}
	}

	ctl := loadUnit(t, nat64ctlUnit)
	ctl.only("DeviceAllow", "/dev/net/tun", "rw")
	ctl.want("DevicePolicy", "closed")
	// Each would break the translator: no /dev/net/tun, or /proc/sys
	// read-only so forwarding cannot be turned on.
	ctl.absent("PrivateDevices", "yes")
	ctl.absent("ProtectKernelTunables", "yes")
	ctl.absent("ProcSubset", "pid")

	dns := loadUnit(t, corednsUnit)
	dns.want("PrivateDevices", "yes")
	dns.want("ProtectKernelTunables", "yes")
	dns.want("WorkingDirectory", "/etc/nat64kit")
}

// The commands the units run use flags the binaries really have: with
// the unit's arguments and a nat64.toml that lacks the instance (so
// nothing starts), nat64ctl gets as far as looking the instance up in
// that file, which it only does once -c and --instance were understood.
func TestUnitCommandsMatchCLI(t *testing.T) {
	ctl := binary(t, "nat64ctl")
	u := loadUnit(t, nat64ctlUnit)
	cfg := filepath.Join(t.TempDir(), "nat64.toml")
	os.WriteFile(cfg, []byte("[[instance]]\nname = \"other\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"), 0o644)
	for _, key := range []string{"ExecStart", "ExecReload"} {
		vs := values(u.es, "Service", key)
		if len(vs) != 1 {
			t.Fatalf("%s: want one %s, have %q", nat64ctlUnit, key, vs)
		}
		args := strings.Fields(vs[0])
		if args[0] != installedCtl {
			t.Fatalf("%s=%s: want %s", key, vs[0], installedCtl)
		}
		if !slices.Contains(args, "%i") || !slices.Contains(args, "/etc/nat64kit/nat64.toml") {
			t.Errorf("%s=%s: want --instance %%i and -c /etc/nat64kit/nat64.toml", key, vs[0])
		}
		for i, a := range args {
			args[i] = strings.NewReplacer("%i", "nat64-a", "/etc/nat64kit/nat64.toml", cfg).Replace(a)
		}
		out, err := exec.Command(ctl, args[1:]...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(string(out), fmt.Sprintf(`no instance "nat64-a" in %s`, cfg)) {
			t.Errorf("%s=%s: want a failure on the missing instance, got %v:\n%s", key, vs[0], err, out)
		}
	}
	dns := loadUnit(t, corednsUnit)
	if got := values(dns.es, "Service", "ExecStart"); len(got) != 1 || got[0] != installedDNS+" -conf /etc/nat64kit/Corefile" {
		t.Errorf("%s: ExecStart=%q", corednsUnit, got)
	}
}

// systemd's own score of the sandbox stays where these units put it
// (nat64ctl@ 2.0, CoreDNS 1.6 of 10 with systemd 252): a change that
// loosens it past 3.0 fails.
func TestUnitsExposure(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (apt-get install systemd; scripts/deps.sh test installs it)")
	}
	dir := stageUnits(t, nil)
	for _, u := range []string{nat64ctlUnit, corednsUnit} {
		out, err := exec.Command(tool, "security", "--offline=yes", "--threshold=30", filepath.Join(dir, u)).CombinedOutput()
		last := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		if err != nil {
			t.Errorf("%s: %v: %s", u, err, last)
		} else {
			t.Logf("%s: %s", u, last)
		}
	}
}

func FuzzParseUnit(f *testing.F) {
	for _, name := range []string{nat64ctlUnit, corednsUnit} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("[Service]\nExecStart=/bin/true \\\n  --more\n")
	f.Add("Key=before a section\n")
	f.Fuzz(func(t *testing.T, text string) {
		es, err := parseUnitText("fuzz.service", strings.NewReader(text))
		if err != nil {
			return
		}
		for _, e := range es {
			if e.Section == "" || e.Line < 1 || strings.ContainsAny(e.Key, "\n") {
				t.Errorf("%q: entry %+v", text, e)
			}
		}
	})
}
