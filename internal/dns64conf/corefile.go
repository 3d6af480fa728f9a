package dns64conf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coredns/caddy/caddyfile"
)

// Block is one server block of a Corefile, with its dns64 configuration.
type Block struct {
	Keys  []string // the zones and ports it serves: ".", "example.org:1053"
	Root  string   // its `root` as written, "" for none
	DNS64 *Config  // nil when the block has no dns64 directive
}

// ReadCorefile reads a Corefile as nat64kit's CoreDNS reads it at start-up:
// the same tokenizer (imports, snippets, environment variables), the same
// list of known directives, and Parse for each server block's dns64
// directives. An error reads as CoreDNS's own would.
//
// workDir is the directory CoreDNS runs in: a relative `root` or
// `instances` path resolves against it, as it does in CoreDNS. Imports
// resolve against the Corefile's directory, as in CoreDNS.
func ReadCorefile(path, workDir string) ([]Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCorefile(path, data, workDir)
}

// ParseCorefile is ReadCorefile for a Corefile already in memory; path
// names it in errors and anchors imports.
func ParseCorefile(path string, data []byte, workDir string) ([]Block, error) {
	sbs, err := caddyfile.Parse(path, bytes.NewReader(data), Directives)
	if err != nil {
		return nil, err
	}
	out := make([]Block, 0, len(sbs))
	for _, sb := range sbs {
		b := Block{Keys: sb.Keys, Root: blockRoot(path, sb.Tokens["root"])}
		if toks := sb.Tokens["dns64"]; len(toks) > 0 {
			d := caddyfile.NewDispenserTokens(path, toks)
			root := b.Root
			if !filepath.IsAbs(root) {
				root = filepath.Join(workDir, root)
			}
			cfg, err := Parse(&d, root)
			if err != nil {
				// CoreDNS prefixes a plugin's setup error with its name.
				return nil, fmt.Errorf("plugin/dns64: %w", err)
			}
			b.DNS64 = cfg
		}
		out = append(out, b)
	}
	return out, nil
}

// blockRoot is what the root plugin leaves in the server's config: the
// argument of the block's last `root` directive.
func blockRoot(path string, toks []caddyfile.Token) string {
	root := ""
	d := caddyfile.NewDispenserTokens(path, toks)
	for d.Next() {
		if d.NextArg() {
			root = d.Val()
		}
	}
	return root
}
