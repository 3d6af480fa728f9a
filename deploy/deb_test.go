package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nat64kit/nat64kit/internal/release"
	"github.com/nat64kit/nat64kit/test/netns"
)

const debDir = "debian"

// builtDeb is the package built once per run, for the tests that only
// read it.
var builtDeb struct {
	sync.Mutex
	path string
	cl   release.Changelog
	err  error
}

// buildDeb builds the package from deploy/debian and deploy/systemd with
// the binaries of this test run, once, into a temporary directory.
func buildDeb(t *testing.T) (deb string, cl release.Changelog) {
	t.Helper()
	netns.RequireCommand(t, "dpkg-deb", "dpkg")
	ctl, dns := binary(t, "nat64ctl"), binary(t, "plugin/coredns")
	builtDeb.Lock()
	defer builtDeb.Unlock()
	if builtDeb.path == "" && builtDeb.err == nil {
		builtDeb.path, builtDeb.err = release.BuildDeb(release.DebInputs{Source: debDir, Units: "systemd", Nat64ctl: ctl, CoreDNS: dns, OutDir: filepath.Dir(ctl)})
		if builtDeb.err == nil {
			builtDeb.cl, builtDeb.err = release.ReadChangelog(filepath.Join(debDir, "changelog"))
		}
	}
	if builtDeb.err != nil {
		t.Fatal(builtDeb.err)
	}
	deb, cl = builtDeb.path, builtDeb.cl
	if want := "nat64kit_" + cl.Version + "_amd64.deb"; filepath.Base(deb) != want {
		t.Errorf("built %s, want %s", filepath.Base(deb), want)
	}
	return deb, cl
}

// dpkgRoot runs dpkg on a throwaway root: --root puts both the files and
// the package database under dir, so the machine's own dpkg database is
// never read or written. The package has no maintainer scripts, so dpkg
// needs no shell inside the root.
func dpkgRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-unsafe-io"}, args...)...)
	cmd.Stdin = strings.NewReader("") // a conffile prompt fails instead of waiting
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func newDpkgRoot(t *testing.T) string {
	root := t.TempDir()
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"status", "available"} {
		if err := os.WriteFile(filepath.Join(admin, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// filesOutsideAdmin lists what is under root apart from dpkg's database
// and the directories newDpkgRoot made for it.
func filesOutsideAdmin(t *testing.T, root string) []string {
	var left []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch rel {
		case ".", "var", "var/lib":
			return nil
		case "var/lib/dpkg":
			return filepath.SkipDir
		}
		left = append(left, rel)
		return nil
	})
	return left
}

// The package passes lintian with no error or warning: the two errors it
// would have (static Go binaries) are overridden by the file it ships,
// with the reason in deploy/debian/lintian-overrides.
func TestDebLintian(t *testing.T) {
	netns.RequireCommand(t, "lintian", "lintian")
	t.Parallel() // lintian takes its time; the install test runs meanwhile
	deb, _ := buildDeb(t)
	out, _ := exec.Command("lintian", "--show-overrides", deb).CombinedOutput()
	var bad, overridden []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "E: "), strings.HasPrefix(l, "W: "):
			bad = append(bad, l)
		case strings.HasPrefix(l, "O: "):
			overridden = append(overridden, strings.TrimPrefix(l, "O: "))
		}
	}
	if len(bad) > 0 {
		t.Errorf("lintian %s:\n%s", filepath.Base(deb), strings.Join(bad, "\n"))
	}
	// The overrides are in force, and nothing else is overridden.
	want := []string{"nat64kit: statically-linked-binary [usr/bin/coredns]", "nat64kit: statically-linked-binary [usr/bin/nat64ctl]"}
	slices.Sort(overridden)
	if !slices.Equal(overridden, want) {
		t.Errorf("lintian overrode %q, want %q\n%s", overridden, want, out)
	}
}

// Installed into a throwaway root, the package's files work: nat64ctl
// checks the shipped configuration, CoreDNS is ours, the units name the
// binaries where the package put them. An operator's edit to a conffile
// survives a second install, the conffiles survive a remove, and a purge
// leaves nothing behind.
func TestDebInstallUpgradePurge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: dpkg installs files as root:root, even into a throwaway root")
	}
	t.Parallel()
	deb, cl := buildDeb(t)
	root := newDpkgRoot(t)

	dpkgRoot(t, root, "--install", deb)
	status := dpkgRoot(t, root, "--status", cl.Package)
	if !strings.Contains(status, "Status: install ok installed") || !strings.Contains(status, "Version: "+cl.Version+"\n") {
		t.Errorf("dpkg --status after install:\n%s", status)
	}
	// The conffiles are registered as such, with their checksums.
	for _, f := range []string{"/etc/nat64kit/nat64.toml", "/etc/nat64kit/Corefile"} {
		if !regexp.MustCompile(`(?m)^ ` + regexp.QuoteMeta(f) + ` [0-9a-f]{32}$`).MatchString(status) {
			t.Errorf("%s is not a conffile:\n%s", f, status)
		}
	}

	ctl := filepath.Join(root, "usr/bin/nat64ctl")
	conf := filepath.Join(root, "etc/nat64kit/nat64.toml")
	corefile := filepath.Join(root, "etc/nat64kit/Corefile")
	check := func(when string) {
		out, err := exec.Command(ctl, "check", "-c", conf, "--corefile", corefile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok: every dns64 prefix is owned") {
			t.Errorf("%s: installed nat64ctl check of the installed configuration: %v\n%s", when, err, out)
		}
	}
	check("after install")
	// The binaries are the ones built, and run from where they are.
	for pkg, inst := range map[string]string{"nat64ctl": "usr/bin/nat64ctl", "plugin/coredns": "usr/bin/coredns"} {
		want, _ := os.ReadFile(binary(t, pkg))
		if got, err := os.ReadFile(filepath.Join(root, inst)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("/%s is not the %s built (%d bytes, want %d): %v", inst, pkg, len(got), len(want), err)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "usr/bin/coredns"), "-version").CombinedOutput(); err != nil || !strings.Contains(string(out), "CoreDNS-") {
		t.Errorf("installed coredns -version: %v\n%s", err, out)
	}
	for _, want := range []struct{ file, bin string }{
		{"lib/systemd/system/nat64ctl@.service", "/usr/bin/nat64ctl"},
		{"lib/systemd/system/coredns-nat64kit.service", "/usr/bin/coredns"},
	} {
		b, err := os.ReadFile(filepath.Join(root, want.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^Exec\w+=(/usr/bin/\S+)`).FindAllStringSubmatch(string(b), -1) {
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s runs %s, which the package does not install", want.file, m[1])
			}
		}
		if !bytes.Contains(b, []byte("ExecStart="+want.bin+" ")) {
			t.Errorf("%s does not start %s", want.file, want.bin)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/man/man1/nat64ctl-check.1.gz")); err != nil {
		t.Error("no man page for nat64ctl check:", err)
	}

	// The operator changes the weight; the package installed again keeps it.
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(orig, []byte("weight  = 1 "), []byte("weight  = 7 "), 1)
	if bytes.Equal(edited, orig) {
		t.Fatal("the shipped nat64.toml has no \"weight  = 1 \" to edit")
	}
	if err := os.WriteFile(conf, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkgRoot(t, root, "--install", deb)
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, edited) {
		t.Errorf("a second install replaced the operator's nat64.toml:\n%s", got)
	}
	check("after the second install")

	// remove keeps the conffiles (Debian's rule: they are the operator's)
	// and takes everything else.
	dpkgRoot(t, root, "--remove", cl.Package)
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, edited) {
		t.Errorf("remove did not keep the edited nat64.toml")
	}
	left := filesOutsideAdmin(t, root)
	if want := []string{"etc", "etc/nat64kit", "etc/nat64kit/Corefile", "etc/nat64kit/nat64.toml"}; !slices.Equal(left, want) {
		t.Errorf("after remove: %q, want only the conffiles %q", left, want)
	}
	dpkgRoot(t, root, "--purge", cl.Package)
	if left := filesOutsideAdmin(t, root); len(left) > 0 {
		t.Errorf("after purge: %q left", left)
	}
	if out, err := exec.Command("dpkg", "--root="+root, "--status", cl.Package).CombinedOutput(); err == nil {
		t.Errorf("dpkg still knows the package after purge:\n%s", out)
	}
}

// A mistake in the packaging sources stops the build before anything is
// built, naming the file, the line and the field.
func TestDebSourceTypoIsNamed(t *testing.T) {
	for _, c := range []struct {
		file, from, to string
		want           []string
	}{
		{"control", "Priority: optional", "Priorty: optional",
			[]string{`control:3: field "Priorty": unknown field`, `control: field "Priority" is missing`}},
		{"control", "Section: net", "Section: nett",
			[]string{`control:2: field "Section": "nett" is not a Debian archive section`}},
		{"control", "Architecture: amd64", "Architecture: amd46",
			[]string{`control:4: field "Architecture": "amd46"`}},
		{"control", "Maintainer: nat64kit maintainers <", "Maintainer: nat64kit maintainers ",
			[]string{`control:5: field "Maintainer"`}},
		{"control", "Package: nat64kit", "Package: nat64kit\nVersion: 9.9",
			[]string{`control:2: field "Version": the build writes it`}},
		{"changelog", "nat64kit (", "nat64kit(",
			[]string{`changelog:1: want "PACKAGE (VERSION) DISTRIBUTION; urgency=URGENCY"`}},
	} {
		t.Run(c.file+" "+c.to, func(t *testing.T) {
			src := t.TempDir()
			entries, err := os.ReadDir(debDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(debDir, e.Name()))
				if e.Name() == c.file {
					if !bytes.Contains(b, []byte(c.from)) {
						t.Fatalf("%s has no %q", c.file, c.from)
					}
					b = bytes.Replace(b, []byte(c.from), []byte(c.to), 1)
				}
				os.WriteFile(filepath.Join(src, e.Name()), b, 0o644)
			}
			out := t.TempDir()
			_, err = release.BuildDeb(release.DebInputs{Source: src, Units: "systemd", Nat64ctl: "/nonexistent/nat64ctl", CoreDNS: "/nonexistent/coredns", OutDir: out})
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), filepath.Join(src, w)) {
					t.Errorf("want an error with %s/%s, got %v", src, w, err)
				}
			}
			if left, _ := os.ReadDir(out); len(left) > 0 {
				t.Errorf("a package was written: %v", left)
			}
		})
	}
	// And the sources as they are pass.
	if _, err := release.ReadControl(filepath.Join(debDir, "control")); err != nil {
		t.Error(err)
	}
}

// The commands make deb and make image run, from the repository's root
// with their default sources, build what the tests above check, byte for
// byte: the same inputs give the same .deb and the same image archives.
func TestReleaseCommandsReproduce(t *testing.T) {
	deb, _ := buildDeb(t)
	ctl, dns := binary(t, "nat64ctl"), binary(t, "plugin/coredns")
	out := t.TempDir()
	cmd := exec.Command(binary(t, "deploy/mkdeb"), "-nat64ctl", ctl, "-coredns", dns, "-o", out)
	cmd.Dir = ".."
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mkdeb: %v\n%s", err, b)
	}
	again := filepath.Join(out, filepath.Base(deb))
	if strings.TrimSpace(string(b)) != again {
		t.Errorf("mkdeb printed %q, want %s", b, again)
	}
	want, _ := os.ReadFile(deb)
	if got, err := os.ReadFile(again); err != nil || !bytes.Equal(got, want) {
		t.Errorf("mkdeb's %s differs from the one built before (%d bytes, want %d): %v", filepath.Base(again), len(got), len(want), err)
	}

	meta := testImageMeta(t)
	cmd = exec.Command(binary(t, "deploy/mkimage"), "-nat64ctl", ctl, "-coredns", dns, "-revision", meta.Revision, "-o", out)
	cmd.Dir = ".."
	b, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage: %v\n%s", err, b)
	}
	files, _ := imageArchives(t)
	for _, s := range release.Images {
		file := filepath.Join(out, release.ImageFile(s, meta.Version))
		got, _ := os.ReadFile(file)
		if want, _ := os.ReadFile(files[s.Name]); len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("mkimage's %s differs from the one built before (%d bytes, want %d)", filepath.Base(file), len(got), len(want))
			continue
		}
		img, err := tarball.ImageFromPath(file, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if line := fmt.Sprintf("%s %s %s", file, release.ImageRef(s, meta.Version), d); !strings.Contains(string(b), line+"\n") {
			t.Errorf("mkimage printed\n%s\nwant the line %s", b, line)
		}
	}
}
