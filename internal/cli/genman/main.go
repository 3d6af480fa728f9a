// Command genman writes nat64ctl's man pages: `make man` runs it into
// docs/man/.
package main

import (
	"fmt"
	"os"

	"github.com/nat64kit/nat64kit/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DIR")
		os.Exit(2)
	}
	if err := cli.WriteManPages(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
}
