package fastpath

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedObjectIsCurrent rebuilds the BPF object and its bindings
// with the go:generate line of gen.go and compares them byte for byte with
// the committed ones: an edit of bpf/fastpath.c without `make generate`
// fails here. clang 14's output is reproducible (the same bytes from any
// checkout path), so a byte comparison is enough.
func TestGeneratedObjectIsCurrent(t *testing.T) {
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: clang, llvm; `make generate` installs them)", tool)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("bpf/bpf_helpers.h is not installed (Debian: libbpf-dev)")
	}
	args := generateArgs(t)
	dir := t.TempDir()
	// The last two arguments are the identifier and the source; the output
	// goes to dir instead of over the committed files.
	n := len(args)
	args = append(append(args[:n-2:n-2], "-output-dir", dir, "-go-package", "fastpath"), args[n-2:]...)
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, f := range []string{"fastpath_bpfel.o", "fastpath_bpfel.go"} {
		fresh, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s differs from what bpf/fastpath.c builds to: run `make generate` and commit the result", f)
		}
	}
}

// generateArgs is gen.go's go:generate command after "go", split as the go
// tool splits it (double quotes group words).
func generateArgs(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(src), "\n") {
		rest, ok := strings.CutPrefix(line, "//go:generate go ")
		if !ok {
			continue
		}
		var args []string
		for i, part := range strings.Split(rest, `"`) {
			if i%2 == 1 {
				args = append(args, part)
			} else {
				args = append(args, strings.Fields(part)...)
			}
		}
		return args
	}
	t.Fatal("gen.go has no go:generate line")
	return nil
}
