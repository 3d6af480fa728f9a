package xlat

import (
	"bytes"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// fuzzReader hands out the fuzzer's bytes, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) u16() int { return int(r.byte())<<8 | int(r.byte()) }

// FuzzReassembly feeds one datagram's fragments to the reassembly in an
// order, with sizes, overlaps, duplicates, losses and waits all chosen by
// the fuzzer, and checks:
//
//   - nothing panics, and the slots and arena blocks always agree with the
//     free list and stay within their bounds;
//   - a datagram completes only with its original bytes (every fragment is
//     a true slice of it, so a completion can be nothing else);
//   - when the fragments are an exact cover (no overlap, none lost, no
//     wait), the datagram completes exactly once, on the last fragment,
//     unless it is larger than reasmMaxL4 (then it is dropped as too big);
//   - every fragment is accounted for: completed, still held, or counted
//     under exactly one drop reason.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0x0b, 0xc0, 0, 180, 180, 0, 1, 2})             // 3008 bytes in order
	f.Add([]byte{0x0b, 0xc0, 0, 180, 180, 0, 2, 0, 1})          // out of order
	f.Add([]byte{0x0b, 0xc0, 1, 180, 180, 0, 0, 1, 2, 9, 3, 4}) // with an overlap
	f.Add([]byte{0x0b, 0xc0, 4, 180, 180, 0, 0, 1, 2})          // with a wait
	f.Add([]byte{0xff, 0xf0, 0, 255, 255, 255, 0, 1, 2, 3})     // too big
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{b: data}
		n := max(r.u16(), 1)
		flags := r.byte()
		orig := pattern(n)
		// The cover: consecutive pieces of 8..2040 bytes.
		var pieces []cut
		for lo := 0; lo < n; {
			size := 8 * (1 + int(r.byte()))
			pieces = append(pieces, cut{lo, min(lo+size, n)})
			lo += size
			if len(pieces) > 200 {
				pieces = append(pieces, cut{lo, n})
				break
			}
		}
		if pieces[len(pieces)-1].lo >= n {
			pieces = pieces[:len(pieces)-1]
			pieces[len(pieces)-1].hi = n
		}
		// The order: a permutation chosen by the bytes that follow.
		for i := len(pieces) - 1; i > 0; i-- {
			j := int(r.byte()) % (i + 1)
			pieces[i], pieces[j] = pieces[j], pieces[i]
		}
		exact := true
		if flags&1 != 0 { // an overlapping piece, 8-aligned, inserted somewhere
			lo := 8 * (r.u16() % (n/8 + 1))
			hi := min(n, lo+8*(1+int(r.byte())))
			if lo < hi {
				at := int(r.byte()) % (len(pieces) + 1)
				pieces = append(pieces[:at], append([]cut{{lo, hi}}, pieces[at:]...)...)
				exact = false
			}
		}
		if flags&2 != 0 && len(pieces) > 1 { // a lost piece
			at := int(r.byte()) % len(pieces)
			pieces = append(pieces[:at], pieces[at+1:]...)
			exact = false
		}
		waitAt := -1
		if flags&4 != 0 { // the timeout passes before piece waitAt
			waitAt = int(r.byte()) % len(pieces)
			exact = false
		}

		timeout := int64(time.Second)
		ra := NewFragments(time.Second)
		var c Counters
		whole := make([]byte, reasmMaxL4)
		var hdr [40]byte
		k := fragKey{id: 7, proto: nat64.ProtoICMPv6, v6: true}
		now := now0
		fed, completed, held, completions := 0, 0, 0, 0
		for i, p := range pieces {
			if i == waitAt {
				now += timeout
				ra.expire(now, &c)
				held = 0
			}
			fr := fragment{key: &k, hdr: hdr[:], data: orig[p.lo:p.hi], off: p.lo, more: p.hi < n}
			got, v := ra.add(&fr, now, &c, whole, &hdr)
			fed++
			switch {
			case v != nat64.Translated:
				c.Drops[v]++ // as Process counts it
				held = 0     // whatever this datagram held was dropped with it
			case got == 0:
				held++
			default:
				completions++
				completed += held + 1
				held = 0
				if !bytes.Equal(whole[:got], orig[:got]) {
					t.Fatalf("datagram of %d bytes completed with other bytes", got)
				}
				if exact && (got != n || i != len(pieces)-1) {
					t.Fatalf("exact cover of %d bytes completed with %d at piece %d of %d", n, got, i, len(pieces))
				}
			}
			datagrams, blocks, ok := ra.usage()
			if !ok || datagrams > reasmMaxDatagrams || blocks > reasmArenaBlocks {
				t.Fatalf("bounds: %d datagrams, %d blocks, consistent %v", datagrams, blocks, ok)
			}
			dropped := uint64(0)
			for _, d := range reasmDrops(&c) {
				dropped += d
			}
			if dropped+uint64(completed+held) != uint64(fed) {
				t.Fatalf("%d fragments fed, %d completed + %d held + %d dropped", fed, completed, held, dropped)
			}
		}
		if exact && n <= reasmMaxL4 && completions != 1 {
			t.Fatalf("exact cover of %d bytes in %d pieces: %d completions (drops %v)", n, len(pieces), completions, reasmDrops(&c))
		}
		if exact && n > reasmMaxL4 && (completions != 0 || c.Drops[nat64.ReassemblyTooBig] == 0) {
			t.Fatalf("%d bytes: %d completions, too big %d", n, completions, c.Drops[nat64.ReassemblyTooBig])
		}
		// Everything still held goes at the timeout, and all memory with it.
		ra.expire(now+timeout, &c)
		if datagrams, blocks, ok := ra.usage(); datagrams != 0 || blocks != 0 || !ok {
			t.Fatalf("after the timeout: %d datagrams, %d blocks, consistent %v", datagrams, blocks, ok)
		}
	})
}
