//go:build !dns64_builtin

package dns64

import (
	"os"
	"os/exec"
	"testing"
)

// TestMatchesBuiltin runs TestBuiltinEquivalence in its own test binary,
// built with the dns64_builtin tag: linking CoreDNS's built-in dns64 beside
// this plugin's registration would panic (two plugins named dns64).
func TestMatchesBuiltin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second test binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool: ", err)
	}
	cmd := exec.Command(goBin, "test", "-count=1", "-tags", "dns64_builtin", "-run", "^TestBuiltinEquivalence$", ".")
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("equivalence with the built-in dns64: %v", err)
	}
}
