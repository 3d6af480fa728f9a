package xlat

import (
	"os"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// hotPackets are the steady-state packets of an established TCP connection
// and a UDP flow, both directions, on a warm session table.
func hotPackets(t testing.TB) (*Translator, map[string][]byte) {
	tr := newTestTranslator(t, nil)
	ack6 := fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoTCP, tcpSeg(portX, portZ, nat64.TCPAck, pattern(64)), 0, nil))
	ack4 := fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 9, true, tcpSeg(portZ, portT, nat64.TCPAck, pattern(64))))
	for _, p := range [][]byte{syn6(), synAck4(), ack6, udp6(16)} {
		if r, _ := run(tr, p, now0); r != nat64.Translated {
			t.Fatalf("warming: %v", r)
		}
	}
	return tr, map[string][]byte{
		"tcp6to4": ack6,
		"tcp4to6": ack4,
		"udp6to4": udp6(64),
		"udp4to6": udp4(64, false),
	}
}

func TestZeroAllocs(t *testing.T) {
	tr, pkts := hotPackets(t)
	buf := make([]byte, 2048)
	out := NewOutput()
	for name, p := range pkts {
		var bad nat64.DropReason
		allocs := testing.AllocsPerRun(1000, func() {
			copy(buf[64:], p)
			if r := tr.Process(buf, 64, len(p), now0, out); r != nat64.Translated {
				bad = r
			}
		})
		if bad != nat64.Translated {
			t.Fatalf("%s: dropped: %v", name, bad)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet", name, allocs)
		}
	}
}

func benchmarkPacket(b *testing.B, name string) {
	tr, pkts := hotPackets(b)
	p := pkts[name]
	buf := make([]byte, 2048)
	out := NewOutput()
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		copy(buf[64:], p)
		if r := tr.Process(buf, 64, len(p), now0, out); r != nat64.Translated {
			b.Fatal(r)
		}
	}
}

func BenchmarkTCP6to4(b *testing.B) { benchmarkPacket(b, "tcp6to4") }
func BenchmarkTCP4to6(b *testing.B) { benchmarkPacket(b, "tcp4to6") }
func BenchmarkUDP6to4(b *testing.B) { benchmarkPacket(b, "udp6to4") }
func BenchmarkUDP4to6(b *testing.B) { benchmarkPacket(b, "udp4to6") }

// Every drop reason is documented in the README's table, and the table
// names no reason that does not exist.
func TestREADMEListsEveryDropReason(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(name, "` |"); ok {
				listed[name] = true
			}
		}
	}
	for r := nat64.DropReason(1); r < nat64.NumDropReasons; r++ {
		if !listed[r.String()] {
			t.Errorf("README.md does not list drop reason %s", r)
		}
		delete(listed, r.String())
	}
	for name := range listed {
		t.Errorf("README.md lists %s, which is no drop reason", name)
	}
}
