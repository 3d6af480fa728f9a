package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nat64kit/nat64kit/internal/release"
)

// built holds the binaries the tests build once per run, into one
// temporary directory removed by TestMain.
var built struct {
	sync.Mutex
	dir  string
	bins map[string]string
	errs map[string]error
}

// binary builds the package at ../pkg (nat64ctl, plugin/coredns) once,
// with release.GoBuild, and returns the path of the executable, named
// after the package's last element.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if p, ok := built.bins[pkg]; ok {
		return p
	}
	if err, ok := built.errs[pkg]; ok {
		t.Fatal(err)
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "nat64kit-deploy-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.bins, built.errs = dir, map[string]string{}, map[string]error{}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build ", pkg)
	}
	out := filepath.Join(built.dir, filepath.Base(pkg))
	// Built as released, so the package and image tests hold the very
	// bytes make deb and make image ship.
	if b, err := release.GoBuild(goBin, "../"+pkg, out).CombinedOutput(); err != nil {
		built.errs[pkg] = fmt.Errorf("go build ../%s: %v\n%s", pkg, err, b)
		t.Fatal(built.errs[pkg])
	}
	built.bins[pkg] = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}
