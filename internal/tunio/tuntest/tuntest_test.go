package tuntest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/tunio"
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
	b := tunio.NewBatch(m.BatchSize())
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
	b := tunio.NewBatch(1)
	pkt := []byte{0x45, 0, 0, 4}
	copy(b.Bufs[0][tunio.Offset-tunio.MaxGrowth:], pkt)
	// A packet moved back by the full growth budget is still writable.
	b.Queue(b.Bufs[0], tunio.Offset-tunio.MaxGrowth, tunio.Offset-tunio.MaxGrowth+len(pkt))
	if n, err := b.Flush(m); err != nil || n != 1 {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	got, err := m.Next(context.Background())
	if err != nil || !bytes.Equal(got, pkt) {
		t.Fatalf("Next = %x, %v; want %x", got, err, pkt)
	}
	// Too little headroom is the bug a kernel TUN would reject.
	if _, err := m.Write([][]byte{b.Bufs[0][tunio.Offset:]}, tunio.WriteOffset-1); err == nil {
		t.Fatal("Write accepted an offset below tunio.WriteOffset")
	}
	// A full written queue drops and counts, like a kernel queue.
	for i := 0; i < 3; i++ {
		m.Write([][]byte{make([]byte, tunio.WriteOffset+1)}, tunio.WriteOffset)
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
	small := [][]byte{make([]byte, tunio.Offset)}
	m2 := NewMemory("mem1", 1500, 8, 1)
	m2.Inject([]byte{1, 2, 3})
	if _, err := m2.Read(small, make([]int, 1), tunio.Offset); err == nil {
		t.Fatal("Read into a buffer too small succeeded")
	}

	done := make(chan error, 1)
	m3 := NewMemory("mem2", 1500, 8, 1)
	go func() {
		_, err := m3.Read([][]byte{make([]byte, tunio.BufferSize)}, make([]int, 1), tunio.Offset)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	m3.Close()
	select {
	case err := <-done:
		if !errors.Is(err, tunio.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Read")
	}
	if _, err := m3.Write([][]byte{make([]byte, 20)}, tunio.WriteOffset); !errors.Is(err, tunio.ErrClosed) {
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
	b := tunio.NewBatch(16)
	pkt := udpPacket(netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("198.51.100.2:2"), make([]byte, 100))
	out := make([]byte, 2048)
	step := func() {
		for i := 0; i < 8; i++ {
			m.Inject(pkt)
		}
		n, _ := b.Read(m)
		for i := 0; i < n; i++ {
			b.Queue(b.Bufs[i], tunio.Offset, tunio.Offset+b.Sizes[i])
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

// BenchmarkMemoryRoundTrip is the in-memory double's cost per packet.
func BenchmarkMemoryRoundTrip(b *testing.B) {
	m := NewMemory("mem0", 1500, 64, 128)
	batch := tunio.NewBatch(64)
	pkt := udpPacket(netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("198.51.100.2:2"), make([]byte, 64))
	out := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		for j := 0; j < 64; j++ {
			m.Inject(pkt)
		}
		n, _ := batch.Read(m)
		for j := 0; j < n; j++ {
			batch.Queue(batch.Bufs[j], tunio.Offset, tunio.Offset+batch.Sizes[j])
		}
		batch.Flush(m)
		for {
			if _, ok := m.ReadWritten(out); !ok {
				break
			}
		}
	}
}

// udpPacket is an IPv4 or IPv6 UDP datagram from src to dst; Memory reads
// no header, so the checksums are left zero.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(udp))
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		copy(ip[12:], s)
		copy(ip[16:], d)
		return append(ip, udp...)
	}
	ip := make([]byte, 40, 40+len(udp))
	ip[0], ip[6], ip[7] = 0x60, 17, 64
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	copy(ip[8:], s)
	copy(ip[24:], d)
	return append(ip, udp...)
}
