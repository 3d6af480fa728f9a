package release

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nat64kit/nat64kit/internal/cli"
)

// DebInputs is what the package is made of.
type DebInputs struct {
	Source   string // deploy/debian: control, changelog, copyright, lintian-overrides, the conffiles, coredns.1
	Units    string // deploy/systemd
	Nat64ctl string // the binaries, built by GoBuild
	CoreDNS  string
	OutDir   string
}

// Where the package puts things. The units of deploy/systemd name
// /usr/local/bin, where a hand install puts the binaries; a package may
// not ship files there (Debian policy 9.1.2), so the package's copies
// name /usr/bin.
const (
	debBinDir    = "usr/bin"
	debUnitDir   = "lib/systemd/system" // Debian 12's unit directory for packages
	debConfDir   = "etc/nat64kit"
	debDocDir    = "usr/share/doc/nat64kit"
	debManDir    = "usr/share/man/man1"
	handBinDir   = "/usr/local/bin/"
	debConffiles = "nat64.toml Corefile"
)

// DebName is the file name of the package of a version.
func DebName(c Changelog) string { return fmt.Sprintf("%s_%s_amd64.deb", c.Package, c.Version) }

// BuildDeb stages the package's tree and builds it with dpkg-deb, returning
// the .deb's path. A bad control file or changelog is refused before
// anything is built, every problem named with its file, line and field.
//
// No maintainer scripts: the units run as transient users (DynamicUser=),
// so there is no account to create, and nothing is enabled or started on
// install, since which instances a box runs (nat64ctl@NAME) and with what
// prefixes is the operator's choice, made in the conffiles first.
func BuildDeb(in DebInputs) (string, error) {
	cl, err := ReadChangelog(filepath.Join(in.Source, "changelog"))
	if err != nil {
		return "", err
	}
	ctl, err := ReadControl(filepath.Join(in.Source, "control"))
	if err != nil {
		return "", err
	}
	if p := ctl.Get("Package"); p != cl.Package {
		return "", fmt.Errorf("%s: Package %q but %s names %q", filepath.Join(in.Source, "control"), p, filepath.Join(in.Source, "changelog"), cl.Package)
	}
	stage, err := os.MkdirTemp("", "nat64kit-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return "", err
	}
	put := func(rel string, data []byte, mode os.FileMode) error {
		p := filepath.Join(stage, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			return err
		}
		return os.Chmod(p, mode) // past the umask
	}
	copyIn := func(from, rel string, mode os.FileMode, edit func([]byte) []byte) error {
		data, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		if edit != nil {
			data = edit(data)
		}
		return put(rel, data, mode)
	}

	steps := []func() error{
		func() error { return copyIn(in.Nat64ctl, debBinDir+"/nat64ctl", 0o755, nil) },
		func() error { return copyIn(in.CoreDNS, debBinDir+"/coredns", 0o755, nil) },
		func() error {
			units, err := filepath.Glob(filepath.Join(in.Units, "*.service"))
			if err != nil || len(units) == 0 {
				return fmt.Errorf("no units in %s (%v)", in.Units, err)
			}
			for _, u := range units {
				if err := copyIn(u, debUnitDir+"/"+filepath.Base(u), 0o644, func(b []byte) []byte {
					return bytes.ReplaceAll(b, []byte(handBinDir), []byte("/"+debBinDir+"/"))
				}); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			var list []string
			for _, f := range strings.Fields(debConffiles) {
				if err := copyIn(filepath.Join(in.Source, f), debConfDir+"/"+f, 0o644, nil); err != nil {
					return err
				}
				list = append(list, "/"+debConfDir+"/"+f+"\n")
			}
			return put("DEBIAN/conffiles", []byte(strings.Join(list, "")), 0o644)
		},
		func() error { return copyIn(filepath.Join(in.Source, "copyright"), debDocDir+"/copyright", 0o644, nil) },
		func() error {
			return copyIn(filepath.Join(in.Source, "lintian-overrides"), "usr/share/lintian/overrides/nat64kit", 0o644, nil)
		},
		func() error {
			// A native package's changelog is changelog.gz (policy 12.7).
			b, err := os.ReadFile(filepath.Join(in.Source, "changelog"))
			if err != nil {
				return err
			}
			return put(debDocDir+"/changelog.gz", gzipped(b), 0o644)
		},
		func() error { return manPages(in.Source, filepath.Join(stage, debManDir), put) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return "", err
		}
	}

	sums, size, err := md5sums(stage)
	if err != nil {
		return "", err
	}
	if err := put("DEBIAN/md5sums", sums, 0o644); err != nil {
		return "", err
	}
	// Version right after Package, Installed-Size (KiB) after Architecture:
	// the order dpkg-gencontrol writes.
	var full Control
	for _, f := range ctl {
		full = append(full, f)
		switch f.Name {
		case "Package":
			full = append(full, controlField{Name: "Version", Value: cl.Version})
		case "Architecture":
			full = append(full, controlField{Name: "Installed-Size", Value: strconv.FormatInt(size, 10)})
		}
	}
	if err := put("DEBIAN/control", full.Bytes(), 0o644); err != nil {
		return "", err
	}
	// The same mtime everywhere, the changelog's: the same inputs give the
	// same .deb (dpkg-deb takes SOURCE_DATE_EPOCH for the archive itself).
	if err := filepath.WalkDir(stage, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, cl.Date, cl.Date)
	}); err != nil {
		return "", err
	}

	if err := os.MkdirAll(in.OutDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(in.OutDir, DebName(cl))
	// --root-owner-group: every file root:root without fakeroot. gzip, not
	// dpkg-deb's default xz: every dpkg reads it, and xz takes a minute over
	// two Go binaries where gzip takes seconds; level 6, not gzip's 9: a
	// third of the time for 0.4% more bytes.
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", stage, out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(cl.Date.Unix(), 10))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %v\n%s", err, b)
	}
	return out, nil
}

// manPages writes nat64ctl's pages, generated from its command tree, and
// CoreDNS's, from the packaging sources, compressed as policy 12.1 asks.
func manPages(source, dir string, put func(string, []byte, os.FileMode) error) error {
	gen, err := os.MkdirTemp("", "nat64kit-man-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gen)
	if err := cli.WriteManPages(gen); err != nil {
		return err
	}
	pages, _ := filepath.Glob(filepath.Join(gen, "*.1"))
	pages = append(pages, filepath.Join(source, "coredns.1"))
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := put(filepath.Join(debManDir, filepath.Base(p)+".gz"), gzipped(b), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// gzipped is b compressed at the best level with no name or time in the
// header, as lintian wants and so that it is reproducible.
func gzipped(b []byte) []byte {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// md5sums is DEBIAN/md5sums for the staged tree, and the tree's size in
// KiB as Installed-Size counts it (each file rounded up, as du does).
func md5sums(stage string) ([]byte, int64, error) {
	var lines []string
	var kib int64
	err := filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		if rel == "DEBIAN" && d.IsDir() {
			return filepath.SkipDir
		}
		if d.IsDir() {
			kib++
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		kib += (int64(len(b)) + 1023) / 1024
		lines = append(lines, fmt.Sprintf("%x  %s\n", md5.Sum(b), filepath.ToSlash(rel)))
		return nil
	})
	sort.Strings(lines)
	return []byte(strings.Join(lines, "")), kib, err
}
