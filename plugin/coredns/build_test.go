package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

const (
	inTreeDNS64 = "github.com/coredns/coredns/plugin/dns64"
	ourDNS64    = "github.com/nat64kit/nat64kit/plugin/dns64"
)

func goTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool: ", err)
	}
	return p
}

// corednsDir is the CoreDNS module this build uses.
func corednsDir(t testing.TB) string {
	out, err := exec.Command(goTool(t), "list", "-m", "-f", "{{.Dir}}", "github.com/coredns/coredns").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// stringLits returns the string literals of the composite literal assigned
// to varName in a Go file (zdirectives.go's Directives).
func stockDirectives(t *testing.T) []string {
	src, err := os.ReadFile(filepath.Join(corednsDir(t), "core/dnsserver/zdirectives.go"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "var Directives = []string{")
	end := strings.Index(s[start:], "}")
	var out []string
	for _, line := range strings.Split(s[start:start+end], "\n")[1:] {
		line = strings.TrimSuffix(strings.TrimSpace(line), ",")
		if v, err := strconv.Unquote(line); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func imports(t *testing.T, file string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, im := range f.Imports {
		if im.Name != nil && im.Name.Name == "_" {
			p, _ := strconv.Unquote(im.Path.Value)
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func TestDirectivesAreStock(t *testing.T) {
	stock := stockDirectives(t)
	if len(stock) < 40 {
		t.Fatalf("parsed only %d stock directives", len(stock))
	}
	if !slices.Equal(directives, stock) {
		t.Errorf("directives differ from the stock order:\n ours  %v\n stock %v", directives, stock)
	}
	if !slices.Equal(dnsserver.Directives, stock) {
		t.Error("dnsserver.Directives is not the stock list after init")
	}
	// nat64ctl check tokenizes Corefiles with this list, so it refuses the
	// same unknown directives CoreDNS does.
	if !slices.Equal(dns64conf.Directives, stock) {
		t.Errorf("dns64conf.Directives differ from the stock list:\n ours  %v\n stock %v", dns64conf.Directives, stock)
	}
	n := 0
	for _, d := range dnsserver.Directives {
		if d == "dns64" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("dns64 appears %d times", n)
	}
}

func TestPluginSetIsStockMinusInTreeDNS64(t *testing.T) {
	stock := imports(t, filepath.Join(corednsDir(t), "core/plugin/zplugin.go"))
	ours := imports(t, "main.go")
	want := slices.DeleteFunc(slices.Clone(stock), func(p string) bool { return p == inTreeDNS64 })
	want = append(want, ourDNS64)
	slices.Sort(want)
	if !slices.Equal(ours, want) {
		t.Errorf("blank imports:\n ours %v\n want %v", ours, want)
	}
}

func TestInTreeDNS64NotLinked(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if slices.Contains(deps, inTreeDNS64) {
		t.Errorf("%s is linked", inTreeDNS64)
	}
	if !slices.Contains(deps, ourDNS64) {
		t.Errorf("%s is not linked", ourDNS64)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// binary builds this command once per test run.
func binary(t testing.TB) string {
	goBin := goTool(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "nat64kit-coredns-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "coredns")
		out, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func TestPluginsListsDNS64Once(t *testing.T) {
	if testing.Short() {
		t.Skip("builds CoreDNS")
	}
	out, err := exec.Command(binary(t), "-plugins").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range strings.Fields(string(out)) {
		if f == "dns64" || f == "dns.dns64" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("dns64 listed %d times in:\n%s", n, out)
	}
	if !strings.Contains(string(out), "file") || !strings.Contains(string(out), "forward") {
		t.Errorf("stock plugins missing:\n%s", out)
	}
}
