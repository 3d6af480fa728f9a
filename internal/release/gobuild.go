package release

import (
	"fmt"
	"os"
	"os/exec"
)

// GoBuild is the command that builds the Go package in dir into out as
// nat64kit ships it: CGO off, so the binary is static and runs in an
// image with nothing else in it and on any Debian without a libc
// dependency; -trimpath and no build ID or VCS stamp, so the same source
// gives the same bytes; -s -w, because lintian refuses unstripped
// binaries (a Go binary keeps the tables panics print from).
func GoBuild(goTool, dir, out string) *exec.Cmd {
	cmd := exec.Command(goTool, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// BuildBinaries runs GoBuild for each package directory (relative to the
// working directory) and output path.
func BuildBinaries(outs map[string]string) error {
	for dir, out := range outs {
		if b, err := GoBuild("go", dir, out).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", dir, err, b)
		}
	}
	return nil
}
