// Command mkdeb builds nat64kit's Debian package, nat64kit_VERSION_amd64.deb,
// from deploy/debian and deploy/systemd: `make deb` runs it in the
// repository's root. VERSION is the top entry of deploy/debian/changelog.
//
//	go run ./deploy/mkdeb [-o DIR] [-nat64ctl FILE -coredns FILE]
//
// Without -nat64ctl and -coredns it builds both binaries as released first.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nat64kit/nat64kit/internal/release"
)

func main() {
	in := release.DebInputs{}
	flag.StringVar(&in.Source, "src", "deploy/debian", "the packaging sources")
	flag.StringVar(&in.Units, "units", "deploy/systemd", "the systemd units")
	flag.StringVar(&in.Nat64ctl, "nat64ctl", "", "a nat64ctl binary built by release.GoBuild (default: build one)")
	flag.StringVar(&in.CoreDNS, "coredns", "", "a coredns binary built by release.GoBuild (default: build one)")
	flag.StringVar(&in.OutDir, "o", "bin", "where to write the .deb")
	flag.Parse()
	if flag.NArg() != 0 || (in.Nat64ctl == "") != (in.CoreDNS == "") {
		fmt.Fprintln(os.Stderr, "usage: mkdeb [-o DIR] [-src DIR] [-units DIR] [-nat64ctl FILE -coredns FILE]")
		os.Exit(2)
	}
	out, err := run(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(out)
}

func run(in release.DebInputs) (string, error) {
	if in.Nat64ctl == "" {
		dir, err := os.MkdirTemp("", "nat64kit-mkdeb-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		in.Nat64ctl, in.CoreDNS = filepath.Join(dir, "nat64ctl"), filepath.Join(dir, "coredns")
		if err := release.BuildBinaries(map[string]string{"./nat64ctl": in.Nat64ctl, "./plugin/coredns": in.CoreDNS}); err != nil {
			return "", err
		}
	}
	return release.BuildDeb(in)
}
