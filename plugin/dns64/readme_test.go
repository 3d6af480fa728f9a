package dns64

import (
	"os"
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

// TestReadmeExamples parses the dns64 part of every ~~~ corefile example
// in README.md, so the documentation cannot drift from the parser.
func TestReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	toml := writeFile(t, t.TempDir(), "nat64.toml", twoInstances)
	blocks := strings.Split(string(data), "~~~ corefile\n")[1:]
	if len(blocks) < 4 {
		t.Fatalf("found %d examples", len(blocks))
	}
	for i, b := range blocks {
		b = b[:strings.Index(b, "~~~")]
		directive := dns64Directive(b)
		if directive == "" {
			t.Errorf("example %d has no dns64 directive:\n%s", i, b)
			continue
		}
		directive = strings.ReplaceAll(directive, "/etc/nat64kit/nat64.toml", toml)
		if _, err := parse(caddy.NewTestController("dns", directive)); err != nil {
			t.Errorf("example %d: %v\n%s", i, err, directive)
		}
	}
}

// dns64Directive cuts the dns64 line and its block out of a server block.
func dns64Directive(server string) string {
	lines := strings.Split(server, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "dns64") {
			continue
		}
		if !strings.HasSuffix(strings.TrimSpace(l), "{") {
			return strings.TrimSpace(l)
		}
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "}" {
				return strings.Join(lines[i:j+1], "\n")
			}
		}
	}
	return ""
}
