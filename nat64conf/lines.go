package nat64conf

import (
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// lineIndex remembers where each instance's keys stand in the file, so a
// validation error can point at the line an operator has to change. The
// decoder that fills the structs does not keep positions; a second, cheap
// pass over the syntax tree does.
type lineIndex struct {
	instances []instanceLines
}

type instanceLines struct {
	header int
	keys   map[string]int // "prefix", "timeouts.udp", ...
	static []staticLines
}

type staticLines struct {
	header int
	keys   map[string]int // "proto", "ipv6", "ipv4"
}

func (ix *lineIndex) instance(i int) instanceLines {
	if ix == nil || i >= len(ix.instances) {
		return instanceLines{}
	}
	return ix.instances[i]
}

func (ix *lineIndex) static(i, j int) staticLines {
	in := ix.instance(i)
	if j >= len(in.static) {
		return staticLines{header: in.header}
	}
	return in.static[j]
}

// indexLines walks the document's expressions. The document already
// decoded without error, so the parser cannot fail here; if it somehow
// does, messages fall back to instance-level lines.
func indexLines(data []byte) *lineIndex {
	ix := &lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	// section says which table the following key/values belong to:
	// "" (top level), "instance", "instance.timeouts" or "instance.static".
	section := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			key, line := keyOf(&p, e.Key())
			section = key
			switch {
			case e.Kind == unstable.ArrayTable && key == "instance":
				ix.instances = append(ix.instances, instanceLines{header: line, keys: map[string]int{}})
			case e.Kind == unstable.ArrayTable && key == "instance.static" && len(ix.instances) > 0:
				cur := &ix.instances[len(ix.instances)-1]
				cur.static = append(cur.static, staticLines{header: line, keys: map[string]int{}})
			case key == "instance.timeouts" && len(ix.instances) > 0:
				ix.instances[len(ix.instances)-1].keys["timeouts"] = line
			}
		case unstable.KeyValue:
			key, line := keyOf(&p, e.Key())
			if len(ix.instances) == 0 {
				continue
			}
			cur := &ix.instances[len(ix.instances)-1]
			switch section {
			case "instance":
				cur.keys[key] = line
			case "instance.timeouts":
				cur.keys["timeouts."+key] = line
			case "instance.static":
				if len(cur.static) > 0 {
					cur.static[len(cur.static)-1].keys[key] = line
				}
			}
		}
	}
	return ix
}

func keyOf(p *unstable.Parser, it unstable.Iterator) (string, int) {
	var parts []string
	line := 0
	for it.Next() {
		n := it.Node()
		parts = append(parts, string(n.Data))
		if line == 0 {
			line = p.Shape(n.Raw).Start.Line
		}
	}
	return strings.Join(parts, "."), line
}
