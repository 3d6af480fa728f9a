// Command mkimage builds nat64kit's two container images without a
// daemon: nat64kit/coredns and nat64kit/nat64ctl, each a static binary in
// /usr/local/bin on an empty base, written as the archive `docker save`
// makes (bin/nat64kit-coredns_VERSION.tar, bin/nat64kit-nat64ctl_VERSION.tar)
// for docker load, podman load or kind load image-archive. `make image`
// runs it in the repository's root; VERSION is the top entry of
// deploy/debian/changelog.
//
//	go run ./deploy/mkimage [-o DIR] [-nat64ctl FILE -coredns FILE] [-revision COMMIT]
//
// Without -nat64ctl and -coredns it builds both binaries as released first.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nat64kit/nat64kit/internal/release"
)

func main() {
	var (
		bins      = map[string]*string{}
		outDir    = flag.String("o", "bin", "where to write the archives")
		changelog = flag.String("changelog", "deploy/debian/changelog", "the changelog whose top entry is the version")
		revision  = flag.String("revision", gitHead(), "the commit, for the org.opencontainers.image.revision label")
	)
	for _, s := range release.Images {
		bins[s.Binary] = flag.String(s.Binary, "", "a "+s.Binary+" binary built by release.GoBuild (default: build one)")
	}
	flag.Parse()
	given := 0
	for _, b := range bins {
		if *b != "" {
			given++
		}
	}
	if flag.NArg() != 0 || given != 0 && given != len(bins) {
		fmt.Fprintln(os.Stderr, "usage: mkimage [-o DIR] [-changelog FILE] [-revision COMMIT] [-nat64ctl FILE -coredns FILE]")
		os.Exit(2)
	}
	if err := run(bins, *outDir, *changelog, *revision); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(bins map[string]*string, outDir, changelog, revision string) error {
	cl, err := release.ReadChangelog(changelog)
	if err != nil {
		return err
	}
	if *bins["nat64ctl"] == "" {
		dir, err := os.MkdirTemp("", "nat64kit-mkimage-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		outs := map[string]string{}
		for _, s := range release.Images {
			*bins[s.Binary] = filepath.Join(dir, s.Binary)
			outs[s.Package] = *bins[s.Binary]
		}
		if err := release.BuildBinaries(outs); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, s := range release.Images {
		img, err := release.BuildImage(s, *bins[s.Binary], release.ImageMeta{Version: cl.Version, Revision: revision, Created: cl.Date})
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		file := filepath.Join(outDir, release.ImageFile(s, cl.Version))
		if err := release.WriteImage(file, s, img, cl.Version); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s %s %s\n", file, release.ImageRef(s, cl.Version), digest)
	}
	return nil
}

// gitHead is the checked-out commit, or "" outside a git tree.
func gitHead() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
