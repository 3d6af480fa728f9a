// Package corefile compares the prefixes a Corefile's dns64 blocks
// synthesize with and the NAT64 instances of a nat64.toml: the check that
// catches the most common DNS64/NAT64 misconfiguration, a DNS64 handing
// out addresses under a prefix that no translator routes.
//
// The Corefile is read by dns64conf, the parser the plugin itself runs at
// start-up, so what is compared is what the plugin will synthesize with.
package corefile

import (
	"fmt"
	"strings"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// Use is one prefix that a dns64 block synthesizes with, and where the
// operator wrote it.
type Use struct {
	Prefix nat64.Prefix
	Where  string // "Corefile:12", "nat64.toml:4 (instance "a", via instances at Corefile:12)"
}

// DNS64 is the dns64 configuration of one server block.
type DNS64 struct {
	Where     string   // the block's first dns64 directive, "Corefile:10"
	Zones     []string // the block's keys
	Uses      []Use
	Instances string // the instances file, resolved; "" when not used
}

// Read parses the Corefile as CoreDNS started in workDir would and returns
// the dns64 configuration of each server block that has one, in file
// order.
func Read(path, workDir string) ([]DNS64, error) {
	blocks, err := dns64conf.ReadCorefile(path, workDir)
	if err != nil {
		return nil, err
	}
	return fromBlocks(blocks), nil
}

// Parse is Read for a Corefile already in memory; path names it in
// messages and anchors imports.
func Parse(path string, data []byte, workDir string) ([]DNS64, error) {
	blocks, err := dns64conf.ParseCorefile(path, data, workDir)
	if err != nil {
		return nil, err
	}
	return fromBlocks(blocks), nil
}

func fromBlocks(blocks []dns64conf.Block) []DNS64 {
	var out []DNS64
	for _, b := range blocks {
		if b.DNS64 != nil {
			out = append(out, uses(b.Keys, b.DNS64))
		}
	}
	return out
}

// uses lists the prefixes of one block, each with the line that decided it.
func uses(zones []string, c *dns64conf.Config) DNS64 {
	where := func(line int) string { return fmt.Sprintf("%s:%d", c.File, line) }
	d := DNS64{Where: where(c.Line), Zones: zones}
	switch {
	case c.Instances != nil:
		d.Instances = c.InstancesFile
		for i := range c.Instances.Instances {
			in := &c.Instances.Instances[i]
			d.Uses = append(d.Uses, Use{
				Prefix: in.Prefix,
				Where: fmt.Sprintf("%s:%d (instance %q, via instances at %s)",
					c.InstancesFile, in.LineOf("prefix"), in.Name, where(c.InstancesLine)),
			})
		}
	case c.DefaultPrefix:
		d.Uses = []Use{{Prefix: dns64conf.WellKnownPrefix(), Where: d.Where + " (default prefix)"}}
	default:
		for _, p := range c.Prefixes {
			d.Uses = append(d.Uses, Use{Prefix: p.Prefix, Where: where(p.Line)})
		}
	}
	return d
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
	owned := make(map[nat64.Prefix]*nat64conf.Instance)
	for i := range cfg.Instances {
		owned[cfg.Instances[i].Prefix] = &cfg.Instances[i]
	}
	used := make(map[nat64.Prefix]bool)
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

func overlapping(cfg *nat64conf.Config, p nat64.Prefix) *nat64conf.Instance {
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
