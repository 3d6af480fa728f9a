package tunio

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestMemoryReadBatches(t *testing.T) {
	m := NewMemory("mem0", 1500, 4, 16)
	var want [][]byte
	for i := 0; i < 6; i++ {
		p := udpPacket(netip.MustParseAddrPort("[2001:db8::1]:1000"), netip.MustParseAddrPort("[2001:db8:64::c000:201]:53"), []byte{byte(i), 1, 2})
		want = append(want, p)
		if err := m.Inject(p); err != nil {
			t.Fatal(err)
		}
	}
	b := NewBatch(m.BatchSize())
	var got [][]byte
	for len(got) < len(want) {
		n, err := b.Read(m)
		if err != nil {
			t.Fatal(err)
		}
		if n > m.BatchSize() {
			t.Fatalf("Read returned %d > batch size %d", n, m.BatchSize())
		}
		for i := 0; i < n; i++ {
			got = append(got, append([]byte(nil), b.Packet(i)...))
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d differs or out of order", i)
		}
	}
}

func TestMemoryWriteContract(t *testing.T) {
	m := NewMemory("mem0", 1500, 8, 2)
	b := NewBatch(1)
	pkt := []byte{0x45, 0, 0, 4}
	copy(b.Bufs[0][Offset-MaxGrowth:], pkt)
	// A packet moved back by the full growth budget is still writable.
	b.Queue(b.Bufs[0], Offset-MaxGrowth, Offset-MaxGrowth+len(pkt))
	if n, err := b.Flush(m); err != nil || n != 1 {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	got, err := m.Next(context.Background())
	if err != nil || !bytes.Equal(got, pkt) {
		t.Fatalf("Next = %x, %v; want %x", got, err, pkt)
	}
	// Too little headroom is the bug a kernel TUN would reject.
	if _, err := m.Write([][]byte{b.Bufs[0][Offset:]}, WriteOffset-1); err == nil {
		t.Fatal("Write accepted an offset below WriteOffset")
	}
	// A full written queue drops and counts, like a kernel queue.
	for i := 0; i < 3; i++ {
		m.Write([][]byte{make([]byte, WriteOffset+1)}, WriteOffset)
	}
	if m.Dropped.Load() != 1 || m.Pending() != 2 {
		t.Fatalf("dropped %d pending %d; want 1 and 2", m.Dropped.Load(), m.Pending())
	}
}

func TestMemoryOverflowAndClose(t *testing.T) {
	m := NewMemory("mem0", 1500, 8, 1)
	if err := m.Inject([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := m.Inject([]byte{2}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Inject into a full queue: %v", err)
	}
	small := [][]byte{make([]byte, Offset)}
	m2 := NewMemory("mem1", 1500, 8, 1)
	m2.Inject([]byte{1, 2, 3})
	if _, err := m2.Read(small, make([]int, 1), Offset); err == nil {
		t.Fatal("Read into a buffer too small succeeded")
	}

	done := make(chan error, 1)
	m3 := NewMemory("mem2", 1500, 8, 1)
	go func() {
		_, err := m3.Read([][]byte{make([]byte, BufferSize)}, make([]int, 1), Offset)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	m3.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Read")
	}
	if _, err := m3.Write([][]byte{make([]byte, 20)}, WriteOffset); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

// A translator loop over Memory (inject, read, write, collect) allocates
// nothing in steady state, so translator tests can assert zero allocations.
func TestMemoryNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	m := NewMemory("mem0", 1500, 16, 64)
	b := NewBatch(16)
	pkt := udpPacket(netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("198.51.100.2:2"), make([]byte, 100))
	out := make([]byte, 2048)
	step := func() {
		for i := 0; i < 8; i++ {
			m.Inject(pkt)
		}
		n, _ := b.Read(m)
		for i := 0; i < n; i++ {
			b.Queue(b.Bufs[i], Offset, Offset+b.Sizes[i])
		}
		b.Flush(m)
		for {
			if _, ok := m.ReadWritten(out); !ok {
				break
			}
		}
	}
	step()
	if allocs := testing.AllocsPerRun(200, step); allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

func TestBatchBuffersAreIsolated(t *testing.T) {
	b := NewBatch(3)
	for i, buf := range b.Bufs {
		if len(buf) != BufferSize || cap(buf) != BufferSize {
			t.Fatalf("buffer %d: len %d cap %d, want %d", i, len(buf), cap(buf), BufferSize)
		}
	}
	// Queue keeps the rest of the buffer for write coalescing; QueueExact
	// does not.
	b.Queue(b.Bufs[0], Offset, Offset+100)
	b.QueueExact(b.Bufs[1], Offset, Offset+100)
	if cap(b.out[0]) != BufferSize-(Offset-WriteOffset) || cap(b.out[1]) != 100+WriteOffset {
		t.Fatalf("write views cap %d / %d", cap(b.out[0]), cap(b.out[1]))
	}
	if BufferSize%64 != 0 || Offset%64 != 0 || BufferSize < Offset+MaxPacket {
		t.Fatalf("BufferSize %d / Offset %d break the layout", BufferSize, Offset)
	}
}
