package tunio

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// fragSeen is an IPv4 fragment a reader took off a queue.
type fragSeen struct {
	queue int
	id    uint16
}

// readFragments runs a reader per queue, forwarding the IPv4 UDP
// fragments the kernel sends into the TUN.
func readFragments(devs []Device) <-chan fragSeen {
	ch := make(chan fragSeen, 4096)
	for qi, d := range devs {
		go func() {
			b := NewBatch(d.BatchSize())
			for {
				n, err := b.Read(d)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					p := b.Packet(i)
					if len(p) >= 20 && p[0]>>4 == 4 && p[9] == 17 && binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
						select {
						case ch <- fragSeen{queue: qi, id: binary.BigEndian.Uint16(p[4:])}:
						default:
						}
					}
				}
			}
		}()
	}
	return ch
}

// TestFragmentQueueFollowsLastWriter checks what the translator's design
// rests on (xlat.Fragments): the kernel sends every fragment of an IPv4
// datagram to one TUN queue when nothing intervenes, since fragments hash
// by addresses and protocol only; but the queue is the flow table's entry
// for that hash, which the last queue to write a packet of the same hash
// takes over. A worker writing such a packet between two fragments moves
// the rest of the datagram to itself, so the fragment state cannot be per
// worker.
func TestFragmentQueueFollowsLastWriter(t *testing.T) {
	ns, devs := openTUN(t, 2)
	ch := readFragments(devs)
	src := udpSocket(t, ns, netip.AddrPortFrom(tunAddr4, 5300))
	dst := netip.AddrPortFrom(peerAddr4, 9300)

	// sendDatagram sends a 4000-byte UDP datagram (three fragments) and
	// returns the queue its fragments reached; every fragment must reach
	// the same one.
	sendDatagram := func() int {
		t.Helper()
		if _, err := src.WriteToUDPAddrPort(make([]byte, 4000), dst); err != nil {
			t.Fatal(err)
		}
		queue, n := -1, 0
		var id uint16
		deadline := time.After(5 * time.Second)
		for n < 3 {
			select {
			case f := <-ch:
				if n > 0 && f.id != id {
					continue // a straggler of an earlier datagram
				}
				if n == 0 {
					queue, id = f.queue, f.id
				} else if f.queue != queue {
					t.Fatalf("fragments of datagram %#x on queues %d and %d with nothing written between", id, queue, f.queue)
				}
				n++
			case <-deadline:
				t.Fatalf("%d of 3 fragments read", n)
			}
		}
		return queue
	}
	// claim writes, on queue q, a later fragment from the peer: its hash
	// is the datagrams' (addresses and protocol, sorted, no ports).
	claim := func(q int, id uint16) {
		t.Helper()
		p := make([]byte, 28)
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], 28)
		binary.BigEndian.PutUint16(p[4:], id)
		binary.BigEndian.PutUint16(p[6:], 100) // offset 800, last fragment
		p[8], p[9] = 64, 17
		a, b := peerAddr4.As4(), tunAddr4.As4()
		copy(p[12:], a[:])
		copy(p[16:], b[:])
		binary.BigEndian.PutUint16(p[10:], checksumFold(checksumAdd(0, p[:20])))
		bt := NewBatch(1)
		copy(bt.Bufs[0][Offset:], p)
		bt.Queue(bt.Bufs[0], Offset, Offset+len(p))
		if _, err := bt.Flush(devs[q]); err != nil {
			t.Fatalf("write on queue %d: %v", q, err)
		}
	}

	first := sendDatagram()
	if again := sendDatagram(); again != first {
		t.Fatalf("the same addresses went to queue %d, then %d, with nothing written", first, again)
	}
	other := 1 - first
	claim(other, 1)
	if q := sendDatagram(); q != other {
		t.Fatalf("after a write on queue %d, the next datagram's fragments still reached queue %d", other, q)
	}
	claim(first, 2)
	if q := sendDatagram(); q != first {
		t.Fatalf("after a write on queue %d, the next datagram's fragments reached queue %d", first, q)
	}
}
