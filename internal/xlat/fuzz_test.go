package xlat

import (
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// icmpAnswers are the drop reasons that come with an ICMP error for the
// sender; every other drop must emit nothing.
var icmpAnswers = map[nat64.DropReason]bool{nat64.TTLExpired: true, nat64.SegmentsLeft: true, nat64.FragNeededSent: true, nat64.PacketTooBigSent: true, nat64.Pool4Exhausted: true, nat64.NoBinding: true}

func fuzzTranslator(t testing.TB) *Translator {
	tr := newTestTranslator(t, nil)
	for _, p := range [][]byte{syn6(), udp6(16), echo6(packet.ICMPv6EchoRequest)} {
		if r, _ := run(tr, p, now0); r != nat64.Translated {
			t.Fatalf("priming: %v", r)
		}
	}
	return tr
}

// fuzzOne runs one input and checks the RFC 7915 output properties: no
// panic; every emitted packet parses with consistent lengths; ICMP errors
// (always recomputed) have valid checksums; other packets have valid
// transport checksums whenever the input's was valid (a wrong one stays
// wrong, see TestWrongChecksumStaysWrong).
func fuzzOne(t *testing.T, tr *Translator, in []byte) {
	inValid, inVerifiable := l4ChecksumOK(in)
	held := tr.Counters.FragmentsHeld
	r, out := run(tr, in, now0)
	if r == nat64.Translated && len(out) == 0 && tr.Counters.FragmentsHeld != held+1 {
		t.Fatal("translated but nothing to send, and not held for reassembly")
	}
	if r != nat64.Translated && !icmpAnswers[r] && len(out) != 0 {
		t.Fatalf("dropped (%v) but %d packets emitted", r, len(out))
	}
	for _, o := range out {
		var pi packet.Info
		if pr := packet.Parse(o, &pi); pr != packet.OK {
			t.Fatalf("emitted packet does not parse: %v\nin  %x\nout %x", pr, in, o)
		}
		if pi.Len != len(o) {
			t.Fatalf("emitted packet has trailing bytes\nin  %x\nout %x", in, o)
		}
		isErr := !pi.Fragmented && (pi.Proto == nat64.ProtoICMPv4 && packet.IsICMPv4Error(o[pi.L4Off]) ||
			pi.Proto == nat64.ProtoICMPv6 && packet.IsICMPv6Error(o[pi.L4Off]))
		if isErr || (inValid && inVerifiable) {
			checkWellFormed(t, o)
		}
	}
}

func fuzzSeeds(f *testing.F, version byte) {
	seeds := [][]byte{}
	for _, c := range goldenCases {
		p := c.input()
		if p[0]>>4 == version {
			seeds = append(seeds, p)
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
}

func FuzzTranslate6to4(f *testing.F) {
	fuzzSeeds(f, 6)
	tr := fuzzTranslator(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 {
			b[0] = 0x60 | b[0]&0x0f
		}
		fuzzOne(t, tr, b)
	})
}

func FuzzTranslate4to6(f *testing.F) {
	fuzzSeeds(f, 4)
	tr := fuzzTranslator(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 20 {
			b[0] = 0x40 | b[0]&0x0f
			// Keep the header checksum right so mutations reach the
			// deeper steps instead of all failing Parse.
			if hl := int(b[0]&0x0f) * 4; hl >= 20 && hl <= len(b) {
				setIPv4HeaderChecksum(b)
			}
		}
		fuzzOne(t, tr, b)
	})
}
