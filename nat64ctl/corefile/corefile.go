// Package corefile reads the prefixes a Corefile's dns64 blocks synthesize
// with and compares them with the NAT64 instances of a nat64.toml: the
// check that catches the most common DNS64/NAT64 misconfiguration, a DNS64
// handing out addresses under a prefix that no translator routes.
package corefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coredns/caddy/caddyfile"

	"github.com/nat64kit/nat64kit/nat64conf"
)

// Use is one prefix that a dns64 block synthesizes with, and where the
// operator wrote it.
type Use struct {
	Prefix nat64conf.Prefix
	Where  string // "Corefile:12" or "nat64.toml:4 (instances, Corefile:12)"
	Block  string // where the dns64 directive itself stands, "Corefile:10"
}

// DNS64 is one dns64 directive of the Corefile.
type DNS64 struct {
	Where     string // "Corefile:10"
	Uses      []Use
	Instances string // the instances FILE, resolved; "" when not used
}

// Read parses the Corefile and returns its dns64 directives in file order.
// Relative `instances` paths resolve as CoreDNS resolves them (against the
// working directory, or the block's `root`), falling back to the
// Corefile's own directory so a check run from elsewhere still finds them.
func Read(path string) ([]DNS64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Read for a Corefile already in memory; path names it in
// messages and anchors relative paths.
func Parse(path string, data []byte) ([]DNS64, error) {
	blocks, err := caddyfile.Parse(path, bytes.NewReader(data), nil)
	if err != nil {
		return nil, err
	}
	var out []DNS64
	for _, sb := range blocks {
		root := blockRoot(sb.Tokens["root"])
		d := caddyfile.NewDispenserTokens(path, sb.Tokens["dns64"])
		for d.Next() {
			if d.Val() != "dns64" {
				continue
			}
			dir, err := readDirective(&d, path, root)
			if err != nil {
				return nil, err
			}
			out = append(out, dir)
		}
	}
	return out, nil
}

func blockRoot(tokens []caddyfile.Token) string {
	if len(tokens) >= 2 {
		return tokens[1].Text
	}
	return ""
}

// readDirective reads one `dns64 [PREFIX] { ... }`. Only what decides the
// prefixes is interpreted; the plugin's own setup validates the rest.
func readDirective(d *caddyfile.Dispenser, corefile, root string) (DNS64, error) {
	where := func(line int) string { return fmt.Sprintf("%s:%d", corefile, line) }
	dir := DNS64{Where: where(d.Line())}
	addPrefix := func(s string, line int) error {
		p, err := nat64conf.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%s: dns64: %v", where(line), err)
		}
		dir.Uses = append(dir.Uses, Use{Prefix: p, Where: where(line), Block: dir.Where})
		return nil
	}
	for _, a := range d.RemainingArgs() {
		if err := addPrefix(a, d.Line()); err != nil {
			return dir, err
		}
	}
	for d.NextBlock() {
		switch d.Val() {
		case "prefix":
			line := d.Line()
			args := d.RemainingArgs()
			if len(args) == 0 {
				return dir, fmt.Errorf("%s: dns64: prefix needs at least one prefix", where(line))
			}
			for _, a := range args {
				if err := addPrefix(a, line); err != nil {
					return dir, err
				}
			}
		case "instances":
			line := d.Line()
			args := d.RemainingArgs()
			if len(args) != 1 {
				return dir, fmt.Errorf("%s: dns64: instances takes exactly one file", where(line))
			}
			file := resolve(args[0], root, filepath.Dir(corefile))
			cfg, err := nat64conf.Load(file)
			if err != nil {
				return dir, fmt.Errorf("%s: dns64: instances %s: %w", where(line), args[0], err)
			}
			dir.Instances = file
			for i := range cfg.Instances {
				in := &cfg.Instances[i]
				dir.Uses = append(dir.Uses, Use{
					Prefix: in.Prefix,
					Where:  fmt.Sprintf("%s:%d (instance %q, via instances at %s)", file, in.LineOf("prefix"), in.Name, where(line)),
					Block:  dir.Where,
				})
			}
		default:
			d.RemainingArgs() // options that do not decide prefixes
		}
	}
	if len(dir.Uses) == 0 {
		// The built-in default of CoreDNS's dns64.
		p, _ := nat64conf.NewPrefix(nat64conf.WellKnownPrefix)
		dir.Uses = append(dir.Uses, Use{Prefix: p, Where: dir.Where + " (default prefix)", Block: dir.Where})
	}
	return dir, nil
}

func resolve(file, root, corefileDir string) string {
	if filepath.IsAbs(file) {
		return file
	}
	if root != "" {
		return filepath.Join(root, file)
	}
	if _, err := os.Stat(file); err == nil {
		return file
	}
	return filepath.Join(corefileDir, file)
}

// Mismatch is one disagreement between the two files, phrased as what to
// fix.
type Mismatch struct {
	Message string
}

func (m Mismatch) String() string { return m.Message }

// Compare reports every DNS64 prefix no instance owns and every instance
// prefix no dns64 block synthesizes with.
func Compare(cfg *nat64conf.Config, corefile string, dirs []DNS64) []Mismatch {
	var out []Mismatch
	if len(dirs) == 0 {
		return []Mismatch{{fmt.Sprintf("%s: no dns64 directive: nothing synthesizes AAAA records with the prefixes of %s", corefile, cfg.File)}}
	}
	owned := make(map[nat64conf.Prefix]*nat64conf.Instance)
	for i := range cfg.Instances {
		owned[cfg.Instances[i].Prefix] = &cfg.Instances[i]
	}
	used := make(map[nat64conf.Prefix]bool)
	for _, d := range dirs {
		for _, u := range d.Uses {
			used[u.Prefix] = true
			if _, ok := owned[u.Prefix]; ok {
				continue
			}
			msg := fmt.Sprintf("%s: dns64 synthesizes with %s, but no NAT64 instance in %s owns that prefix, so clients would get addresses no translator routes",
				u.Where, u.Prefix, cfg.File)
			if near := overlapping(cfg, u.Prefix); near != nil {
				msg += fmt.Sprintf("; it overlaps instance %q's prefix %s (%s:%d): make the two the same", near.Name, near.Prefix, cfg.File, near.LineOf("prefix"))
			} else {
				msg += fmt.Sprintf("; fix: use one of %s there, or add an [[instance]] with prefix = %q to %s", prefixList(cfg), u.Prefix.String(), cfg.File)
			}
			out = append(out, Mismatch{msg})
		}
	}
	for i := range cfg.Instances {
		in := &cfg.Instances[i]
		if used[in.Prefix] {
			continue
		}
		out = append(out, Mismatch{fmt.Sprintf("%s:%d: instance %q owns %s, but no dns64 block in %s synthesizes with it, so that translator gets no DNS64 clients; fix: add `prefix %s` to the dns64 block at %s, or write `instances %s` there",
			cfg.File, in.LineOf("prefix"), in.Name, in.Prefix, corefile, in.Prefix, dirs[0].Where, cfg.File)})
	}
	return out
}

func overlapping(cfg *nat64conf.Config, p nat64conf.Prefix) *nat64conf.Instance {
	for i := range cfg.Instances {
		if cfg.Instances[i].Prefix.Overlaps(p) {
			return &cfg.Instances[i]
		}
	}
	return nil
}

func prefixList(cfg *nat64conf.Config) string {
	s := make([]string, len(cfg.Instances))
	for i := range cfg.Instances {
		s[i] = fmt.Sprintf("%s (instance %q)", cfg.Instances[i].Prefix, cfg.Instances[i].Name)
	}
	return strings.Join(s, ", ")
}
