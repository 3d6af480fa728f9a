package cli

import (
	"os"

	"github.com/spf13/cobra/doc"
)

// WriteManPages writes one section-1 man page per command into dir, from
// the same tree the binary runs, so the pages cannot drift from the flags.
func WriteManPages(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := NewRoot()
	root.DisableAutoGenTag = true // the pages stay the same from build to build
	return doc.GenManTree(root, &doc.GenManHeader{Title: "NAT64CTL", Section: "1", Source: "nat64kit", Manual: "nat64kit"}, dir)
}
