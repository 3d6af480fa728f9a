package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promqlMetrics returns the metric names a PromQL expression reads, in
// order of appearance. It is a tokenizer, not a parser: it skips string
// literals, label matchers ({...}, except a __name__ matcher, whose value
// is a metric name), ranges and subquery steps ([...]), numbers and
// durations, Grafana variables ($x, ${x}), comments, and the label lists
// after by, without, on, ignoring, group_left and group_right; an
// identifier left over is a function or aggregation when "(" follows it
// or it is a keyword, and a metric name otherwise.
func promqlMetrics(expr string) ([]string, error) {
	var out []string
	s := expr
	i := 0
	nextNonSpace := func(j int) byte {
		for ; j < len(s); j++ {
			if !isSpace(s[j]) {
				return s[j]
			}
		}
		return 0
	}
	for i < len(s) {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, names, err := skipMatchers(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, names...)
			i = j
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					return nil, fmt.Errorf("unclosed ${ at %d", i-1)
				}
				i += j + 1
			} else {
				for i < len(s) && isIdent(s[i]) {
					i++
				}
			}
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++ // 0.99, 1e3, 0x1f, 5m, 1h30m
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			lower := strings.ToLower(word)
			i = j
			switch {
			case labelListKeywords[lower]:
				if nextNonSpace(i) == '(' {
					k := strings.IndexByte(s[i:], ')')
					if k < 0 {
						return nil, fmt.Errorf("unclosed label list after %s", word)
					}
					i += k + 1
				}
			case keywords[lower] || aggregations[lower]:
			case nextNonSpace(i) == '(':
				// a function call
			default:
				out = append(out, word)
			}
		default:
			i++ // operators, parentheses, commas, @
		}
	}
	return out, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) }

// Keywords that are neither metrics nor followed by a call's "(".
var keywords = map[string]bool{
	"bool": true, "offset": true, "and": true, "or": true, "unless": true,
	"atan2": true, "inf": true, "nan": true,
}

// Aggregation operators take "by (...)" before their argument, so "("
// need not follow them directly.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// Keywords followed by a parenthesized list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

var nameMatcher = regexp.MustCompile(`^\s*__name__\s*=\s*$`)

// skipMatchers returns the index after the label matchers starting at i,
// and the value of a __name__="..." matcher among them.
func skipMatchers(s string, i int) (int, []string, error) {
	var names []string
	start := i + 1
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, nil, err
			}
			if nameMatcher.MatchString(s[start:j]) {
				names = append(names, strings.Trim(s[j:end], "\"'`"))
			}
			j = end - 1
		case ',':
			start = j + 1
		case '}':
			return j + 1, names, nil
		}
	}
	return 0, nil, fmt.Errorf("unclosed { at %d", i)
}

func TestPromQLMetrics(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (le) (rate(nat64ctl_tun_batch_size_bucket{instance=~"$translator"}[$__rate_interval]))`, []string{"nat64ctl_tun_batch_size_bucket"}},
		{`sum(rate(a_total[5m])) by (job) / ignoring(code) group_left(team) b`, []string{"a_total", "b"}},
		{`histogram_quantile(0.99, sum without (instance) (rate(x_bucket[1h30m])))`, []string{"x_bucket"}},
		{`a offset 5m > bool 1e3 and on(job) c unless d or e`, []string{"a", "c", "d", "e"}},
		{`{__name__="by_name", job="sum"}`, []string{"by_name"}},
		{`topk(5, m{l="a}b\"c"}) @ start()`, []string{"m"}},
		{`SUM BY (x) (Rate(m:recorded[${__range}]))`, []string{"m:recorded"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{"# comment sum\nx * -inf", []string{"x"}},
		{`max (coredns_dns64_instance_healthy)`, []string{"coredns_dns64_instance_healthy"}},
	} {
		got, err := promqlMetrics(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q %v, want %q", c.expr, got, err, c.want)
		}
	}
	for _, bad := range []string{`m{a="b"`, `rate(m[5m)`, `m{a="b}`, `"open`} {
		if _, err := promqlMetrics(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func FuzzPromQLMetrics(f *testing.F) {
	for _, s := range []string{`sum by (le) (rate(x_bucket{a="b"}[5m]))`, `{__name__="m"}`, `a offset 1h`, `$x ${y}`, `"\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := promqlMetrics(expr)
		if err != nil {
			return
		}
		for _, n := range names {
			// A __name__ value may be anything; identifiers must be names.
			if !metricName.MatchString(n) && !strings.Contains(expr, "__name__") {
				t.Errorf("%q: %q is not a metric name", expr, n)
			}
		}
	})
}
