package fastpath

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// golden is one of the Go translator's golden packet pairs
// (internal/xlat/testdata), which the fast path must reproduce byte for
// byte wherever it takes the input.
type golden struct {
	name       string
	verdict    string
	in         []byte
	out        [][]byte
	mtu, mtu4  int
	low        int
	maskRanges [][2]int // bytes of out0 the golden does not pin
}

func readGoldens(t *testing.T) []golden {
	t.Helper()
	files, err := filepath.Glob("../xlat/testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	var gs []golden
	for _, path := range files {
		g, err := readGolden(path)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

func readGolden(path string) (golden, error) {
	g := golden{name: strings.TrimSuffix(filepath.Base(path), ".golden")}
	f, err := os.Open(path)
	if err != nil {
		return g, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var from, to int
		if n, _ := fmt.Sscanf(line, "# mask out0 bytes %d-%d:", &from, &to); n == 2 {
			g.maskRanges = append(g.maskRanges, [2]int{from, to})
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "verdict":
			g.verdict = val
		case "config":
			if _, err := fmt.Sscanf(val, "mtu %d ipv4_mtu %d lowest_ipv6_mtu %d", &g.mtu, &g.mtu4, &g.low); err != nil {
				return g, fmt.Errorf("%s: config: %v", path, err)
			}
		case "in", "out":
			b, err := hex.DecodeString(val)
			if err != nil {
				return g, fmt.Errorf("%s: %v", path, err)
			}
			if key == "in" {
				g.in = b
			} else {
				g.out = append(g.out, b)
			}
		}
	}
	if g.mtu == 0 {
		return g, fmt.Errorf("%s: no config line", path)
	}
	return g, sc.Err()
}

func (g *golden) masked(i int) bool {
	for _, m := range g.maskRanges {
		if i >= m[0] && i <= m[1] {
			return true
		}
	}
	return false
}

// packetVerdicts are the drops the packet alone decides, whatever state
// exists: the fast path must decline them even with a session in its maps.
var packetVerdicts = map[string]bool{
	"ttl_expired": true, "fragmented_icmp": true, "fragmented_zero_checksum_udp": true,
	"udp6_zero_checksum": true, "zero_checksum_udp": true, "packet_too_big_sent": true,
	"frag_needed_sent": true, "segments_left": true, "unsupported_proto": true,
	"untranslatable_icmp": true, "bad_icmp_checksum": true, "icmp_error_in_error": true,
}

// eligible is the contract of README.md, written out independently of the
// C program: the inputs the fast path takes when it holds their session.
func eligible(b []byte, mtu, mtu4, low int) bool {
	var in packet.Info
	if len(b) == 0 {
		return false
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 6:
		if packet.ParseIPv6(b, &in) != packet.OK || in.L4Off != packet.IPv6HeaderLen || in.Len != len(b) {
			return false
		}
		if packet.IPv6(b).HopLimit() <= 1 || packet.IPv4MinHeader+in.Len-in.L4Off > mtu4 {
			return false
		}
		l4 = b[in.L4Off:]
		if in.Proto == nat64.ProtoICMPv6 {
			return l4[1] == 0 && (l4[0] == packet.ICMPv6EchoRequest || l4[0] == packet.ICMPv6EchoReply)
		}
	case 4:
		if packet.ParseIPv4(b, &in) != packet.OK || in.L4Off != packet.IPv4MinHeader || in.Len != len(b) || in.Fragmented {
			return false
		}
		limit := low
		if in.DF {
			limit = mtu
		}
		if packet.IPv4(b).TTL() <= 1 || packet.IPv6HeaderLen+in.Len-in.L4Off > limit {
			return false
		}
		l4 = b[in.L4Off:]
		if in.Proto == nat64.ProtoICMPv4 {
			return l4[1] == 0 && (l4[0] == packet.ICMPv4EchoRequest || l4[0] == packet.ICMPv4EchoReply)
		}
	default:
		return false
	}
	switch in.Proto {
	case nat64.ProtoTCP:
		return packet.TCP(l4).Flags()&(nat64.TCPSyn|nat64.TCPFin|nat64.TCPRst) == 0
	case nat64.ProtoUDP:
		return packet.UDP(l4).Checksum() != 0
	}
	return false
}

// TestGoldenPairs runs every golden input through the program, with the
// session the golden shows in its maps (or, for a drop the packet decides,
// a made-up one; for a drop state decides, none). Where it takes the input
// its output must equal the Go translator's, byte for byte but for the
// IPv4 identification (random here, from a counter there); where it
// declines, the packet must come back as it went in.
func TestGoldenPairs(t *testing.T) {
	gs := readGoldens(t)
	// One program per set of limits the goldens ran with.
	progs := map[[3]int]*runner{}
	for _, g := range gs {
		key := [3]int{g.mtu, g.mtu4, g.low}
		if progs[key] == nil {
			progs[key] = newRunner(loadForTest(t, g.mtu, g.mtu4, g.low))
		}
	}
	taken := 0
	for _, g := range gs {
		t.Run(g.name, func(t *testing.T) {
			r := progs[[3]int{g.mtu, g.mtu4, g.low}]
			in, ok := readTuple(g.in)
			var s Session
			var have bool
			switch {
			case !ok:
			case g.verdict == "translated" && len(g.out) > 0:
				out, _ := readTuple(g.out[0])
				s, have = sessionOf(in, out)
			case packetVerdicts[g.verdict]:
				s, have = someSession(in)
			}
			if have {
				if err := r.f.Insert(&s); err != nil {
					t.Fatal(err)
				}
				defer r.f.Delete(&s)
			}
			ret, got := r.run(t, g.in)
			want := have && g.verdict == "translated" && len(g.out) == 1 && eligible(g.in, g.mtu, g.mtu4, g.low)
			switch {
			case ret == actRedirect && want:
				taken++
				compare(t, &g, got)
			case ret == actRedirect:
				t.Fatalf("taken, but the contract leaves it to the slow path (verdict %s, %d out)", g.verdict, len(g.out))
			case ret != actOK:
				t.Fatalf("verdict %d", ret)
			case want:
				t.Fatalf("declined, but the contract says the fast path takes it")
			case !bytes.Equal(got, g.in):
				t.Fatalf("declined, but changed:\n got %x\nwant %x", got, g.in)
			}
		})
	}
	t.Logf("the fast path took %d of %d golden inputs", taken, len(gs))
	if taken == 0 && !t.Skipped() {
		t.Error("no golden input was taken")
	}
}

func compare(t *testing.T, g *golden, got []byte) {
	t.Helper()
	want := g.out[0]
	if len(got) != len(want) {
		t.Fatalf("%d bytes, Go translator %d:\n got %x\nwant %x", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i] != want[i] && !g.masked(i) {
			t.Fatalf("differs at byte %d:\n got %x\nwant %x", i, got, want)
		}
	}
	if got[0]>>4 == 4 && !packet.IPv4(got).HeaderChecksumOK() {
		t.Fatalf("IPv4 header checksum %#04x is wrong", binary.BigEndian.Uint16(got[10:]))
	}
}
