package xlat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the translator's current output")

// mask is a byte range of one output packet that the golden does not pin,
// with the reason (the explicit checks still look at those fields).
type mask struct {
	pkt      int
	from, to int // [from, to)
	why      string
}

var maskID4 = []mask{
	{0, 4, 6, "IPv4 identification comes from the generator"},
	{0, 10, 12, "IPv4 header checksum covers the identification"},
}

type goldenCase struct {
	name   string
	why    string
	mod    func(*testConfig)
	setup  func(t *testing.T, tr *Translator)
	input  func() []byte
	masks  []mask
	verify func(t *testing.T, r nat64.DropReason, out [][]byte)
}

// --- field assertions, independent of the goldens ---

type want4 struct {
	src, dst     [4]byte
	ttl          uint8
	proto        nat64.Proto
	tos          uint8
	df, mf       bool
	fragOff      int
	totalLen     int // 0: not checked
	sport, dport int // -1: not checked
}

func assert4(t *testing.T, what string, b []byte, w want4) {
	t.Helper()
	h := packet.IPv4(b)
	if h.Version() != 4 || h.HeaderLen() != 20 {
		t.Fatalf("%s: not a 20-byte IPv4 header: %x", what, b[:min(len(b), 20)])
	}
	if h.Src() != w.src || h.Dst() != w.dst {
		t.Errorf("%s: addresses %v -> %v, want %v -> %v", what, h.Src(), h.Dst(), w.src, w.dst)
	}
	if h.TTL() != w.ttl || h.Protocol() != w.proto || h.TOS() != w.tos {
		t.Errorf("%s: ttl %d proto %d tos %#x, want %d %d %#x", what, h.TTL(), h.Protocol(), h.TOS(), w.ttl, w.proto, w.tos)
	}
	if h.DF() != w.df || h.MF() != w.mf || h.FragOffset() != w.fragOff {
		t.Errorf("%s: DF %v MF %v offset %d, want %v %v %d", what, h.DF(), h.MF(), h.FragOffset(), w.df, w.mf, w.fragOff)
	}
	if w.totalLen != 0 && int(h.TotalLen()) != w.totalLen {
		t.Errorf("%s: total length %d, want %d", what, h.TotalLen(), w.totalLen)
	}
	checkPorts(t, what, b[20:], w.sport, w.dport)
}

type want6 struct {
	src, dst     [16]byte
	hop          uint8
	nh           nat64.Proto // upper-layer protocol
	tc           uint8
	frag         bool
	fragOff      int
	more         bool
	fragID       uint32
	payloadLen   int // 0: not checked
	sport, dport int
}

func assert6(t *testing.T, what string, b []byte, w want6) {
	t.Helper()
	h := packet.IPv6(b)
	if h.Version() != 6 {
		t.Fatalf("%s: not IPv6: %x", what, b[:min(len(b), 40)])
	}
	if h.Src() != w.src || h.Dst() != w.dst {
		t.Errorf("%s: addresses %x -> %x, want %x -> %x", what, h.Src(), h.Dst(), w.src, w.dst)
	}
	if h.HopLimit() != w.hop || h.TrafficClass() != w.tc || h.FlowLabel() != 0 {
		t.Errorf("%s: hop %d tc %#x flow %#x, want %d %#x 0", what, h.HopLimit(), h.TrafficClass(), h.FlowLabel(), w.hop, w.tc)
	}
	if w.payloadLen != 0 && int(h.PayloadLen()) != w.payloadLen {
		t.Errorf("%s: payload length %d, want %d", what, h.PayloadLen(), w.payloadLen)
	}
	l4 := b[40:]
	if w.frag {
		if h.NextHeader() != nat64.ProtoFragment {
			t.Fatalf("%s: next header %d, want a Fragment header", what, h.NextHeader())
		}
		f := packet.IPv6Fragment(b[40:])
		if f.NextHeader() != w.nh || f.Offset() != w.fragOff || f.More() != w.more || f.ID() != w.fragID {
			t.Errorf("%s: fragment nh %d off %d M %v id %#x, want %d %d %v %#x", what, f.NextHeader(), f.Offset(), f.More(), f.ID(), w.nh, w.fragOff, w.more, w.fragID)
		}
		l4 = b[48:]
	} else if h.NextHeader() != w.nh {
		t.Errorf("%s: next header %d, want %d", what, h.NextHeader(), w.nh)
	}
	if !w.frag || w.fragOff == 0 {
		checkPorts(t, what, l4, w.sport, w.dport)
	}
}

func checkPorts(t *testing.T, what string, l4 []byte, sport, dport int) {
	t.Helper()
	if sport >= 0 && int(binary.BigEndian.Uint16(l4[0:])) != sport {
		t.Errorf("%s: source port %d, want %d", what, binary.BigEndian.Uint16(l4[0:]), sport)
	}
	if dport >= 0 && int(binary.BigEndian.Uint16(l4[2:])) != dport {
		t.Errorf("%s: destination port %d, want %d", what, binary.BigEndian.Uint16(l4[2:]), dport)
	}
}

// assertICMP checks type, code and the second word of an ICMP header.
func assertICMP(t *testing.T, what string, ic []byte, typ, code uint8, rest uint32) {
	t.Helper()
	if ic[0] != typ || ic[1] != code || binary.BigEndian.Uint32(ic[4:]) != rest {
		t.Errorf("%s: ICMP %d/%d rest %#08x, want %d/%d %#08x", what, ic[0], ic[1], binary.BigEndian.Uint32(ic[4:]), typ, code, rest)
	}
}

func wantVerdict(t *testing.T, r nat64.DropReason, want nat64.DropReason, out [][]byte, n int) {
	t.Helper()
	if r != want {
		t.Fatalf("verdict %v, want %v", r, want)
	}
	if len(out) != n {
		t.Fatalf("%d packets out, want %d", len(out), n)
	}
}

// --- golden files ---

type golden struct {
	verdict string
	config  string
	in      []byte
	out     [][]byte
}

// goldenConfig is the config line of a golden: the limits the case ran
// with, for readers outside this package (the fast path's differential
// test) that translate the same input.
func goldenConfig(tr *Translator) string {
	return fmt.Sprintf("mtu %d ipv4_mtu %d lowest_ipv6_mtu %d", tr.mtu6, tr.mtu4, tr.lowMTU6)
}

func writeGolden(path string, c *goldenCase, tr *Translator, r nat64.DropReason, in []byte, out [][]byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n", c.name)
	for _, l := range strings.Split(c.why, "\n") {
		fmt.Fprintf(&b, "# %s\n", l)
	}
	for _, m := range c.masks {
		fmt.Fprintf(&b, "# mask out%d bytes %d-%d: %s\n", m.pkt, m.from, m.to-1, m.why)
	}
	fmt.Fprintf(&b, "verdict %s\n", r)
	fmt.Fprintf(&b, "config %s\n", goldenConfig(tr))
	fmt.Fprintf(&b, "in %x\n", in)
	for _, o := range out {
		fmt.Fprintf(&b, "out %x\n", o)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func readGolden(path string) (*golden, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	g := &golden{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "verdict":
			g.verdict = val
		case "config":
			g.config = val
		case "in", "out":
			b, err := hex.DecodeString(val)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", path, err)
			}
			if key == "in" {
				g.in = b
			} else {
				g.out = append(g.out, b)
			}
		default:
			return nil, fmt.Errorf("%s: unknown line %q", path, line)
		}
	}
	return g, sc.Err()
}

func masked(c *goldenCase, pkt, i int) bool {
	for _, m := range c.masks {
		if m.pkt == pkt && i >= m.from && i < m.to {
			return true
		}
	}
	return false
}

func TestGolden(t *testing.T) {
	for i := range goldenCases {
		c := &goldenCases[i]
		t.Run(c.name, func(t *testing.T) {
			tr := newTestTranslator(t, c.mod)
			if c.setup != nil {
				c.setup(t, tr)
			}
			in := c.input()
			r, out := run(tr, in, now0)
			for _, o := range out {
				checkWellFormed(t, o)
			}
			c.verify(t, r, out)
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := writeGolden(path, c, tr, r, in, out); err != nil {
					t.Fatal(err)
				}
				return
			}
			g, err := readGolden(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create, then review)", err)
			}
			if !bytes.Equal(g.in, in) {
				t.Fatalf("input differs from golden:\n got %x\nwant %x", in, g.in)
			}
			if g.verdict != r.String() {
				t.Fatalf("verdict %v, golden %s", r, g.verdict)
			}
			if g.config != goldenConfig(tr) {
				t.Fatalf("config %q, golden %q", goldenConfig(tr), g.config)
			}
			if len(g.out) != len(out) {
				t.Fatalf("%d packets, golden has %d", len(out), len(g.out))
			}
			for p := range out {
				if len(out[p]) != len(g.out[p]) {
					t.Fatalf("out%d: %d bytes, golden %d\n got %x\nwant %x", p, len(out[p]), len(g.out[p]), out[p], g.out[p])
				}
				for j := range out[p] {
					if out[p][j] != g.out[p][j] && !masked(c, p, j) {
						t.Fatalf("out%d differs at byte %d:\n got %x\nwant %x", p, j, out[p], g.out[p])
					}
				}
			}
		})
	}
}

// TestGoldenFilesHaveCases fails on stale golden files nobody generates.
func TestGoldenFilesHaveCases(t *testing.T) {
	names := map[string]bool{}
	for _, c := range goldenCases {
		if names[c.name] {
			t.Fatalf("duplicate case %s", c.name)
		}
		names[c.name] = true
	}
	files, _ := filepath.Glob("testdata/*.golden")
	for _, f := range files {
		if !names[strings.TrimSuffix(filepath.Base(f), ".golden")] {
			t.Errorf("%s has no case", f)
		}
	}
}
