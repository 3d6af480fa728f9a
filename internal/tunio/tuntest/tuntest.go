// Package tuntest is an in-memory tunio.Device for tests of the translator
// that need no kernel.
package tuntest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nat64kit/nat64kit/internal/tunio"
)

// ErrQueueFull is returned by Memory.Inject when the read queue is full.
var ErrQueueFull = errors.New("tuntest: memory device queue full")

// Memory is an in-memory Device for translator tests that need no kernel:
// a test injects packets the translator then Reads, and collects what the
// translator Writes. It enforces the same buffer contract as the kernel
// TUN (Write needs tunio.WriteOffset bytes of headroom; a packet must fit the
// buffer it is read into) so a translator bug shows up here too. Steady
// state allocates nothing: packet buffers are recycled.
type Memory struct {
	name      string
	mtu       int
	batchSize int

	toRead    chan []byte // injected, waiting for Read
	written   chan []byte // written by the device's user, waiting for the test
	free      chan []byte // recycled packet buffers
	closed    chan struct{}
	closeOnce sync.Once

	// Dropped counts written packets discarded because the test did not
	// collect them and the written queue was full, as a kernel TUN drops
	// when its queue is full.
	Dropped atomic.Uint64
}

var _ tunio.Device = (*Memory)(nil)

// NewMemory makes a Memory device; depth bounds each direction's queue.
func NewMemory(name string, mtu, batchSize, depth int) *Memory {
	if batchSize < 1 {
		batchSize = 1
	}
	if depth < 1 {
		depth = 1
	}
	return &Memory{
		name:      name,
		mtu:       mtu,
		batchSize: batchSize,
		toRead:    make(chan []byte, depth),
		written:   make(chan []byte, depth),
		free:      make(chan []byte, 2*depth),
		closed:    make(chan struct{}),
	}
}

func (m *Memory) buffer(n int) []byte {
	select {
	case b := <-m.free:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n, max(n, 2048))
}

func (m *Memory) recycle(b []byte) {
	select {
	case m.free <- b:
	default:
	}
}

// Inject queues a copy of pkt for Read.
func (m *Memory) Inject(pkt []byte) error {
	select {
	case <-m.closed:
		return tunio.ErrClosed
	default:
	}
	if len(pkt) > tunio.MaxPacket {
		return fmt.Errorf("tuntest: %d-byte packet exceeds %d", len(pkt), tunio.MaxPacket)
	}
	b := m.buffer(len(pkt))
	copy(b, pkt)
	select {
	case m.toRead <- b:
		return nil
	default:
		m.recycle(b)
		return ErrQueueFull
	}
}

// Read blocks until at least one packet was injected, then returns up to
// len(bufs) (and BatchSize) of them.
func (m *Memory) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var first []byte
	select {
	case first = <-m.toRead:
	case <-m.closed:
		return 0, tunio.ErrClosed
	}
	limit := min(len(bufs), m.batchSize)
	n := 0
	for pkt := first; ; {
		if len(pkt) > len(bufs[n])-offset {
			m.recycle(pkt)
			return n, fmt.Errorf("tunio: %d-byte packet overflows buffer %d (%d bytes at offset %d)", len(pkt), n, len(bufs[n]), offset)
		}
		sizes[n] = copy(bufs[n][offset:], pkt)
		m.recycle(pkt)
		n++
		if n == limit {
			return n, nil
		}
		select {
		case pkt = <-m.toRead:
		default:
			return n, nil
		}
	}
}

// Write queues copies of bufs[i][offset:] for the test to collect.
func (m *Memory) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-m.closed:
		return 0, tunio.ErrClosed
	default:
	}
	if offset < tunio.WriteOffset {
		return 0, fmt.Errorf("tuntest: write offset %d below the %d bytes of headroom a TUN needs", offset, tunio.WriteOffset)
	}
	for _, buf := range bufs {
		pkt := buf[offset:]
		b := m.buffer(len(pkt))
		copy(b, pkt)
		select {
		case m.written <- b:
		default:
			m.recycle(b)
			m.Dropped.Add(1)
		}
	}
	return len(bufs), nil
}

// Next waits for the next written packet and hands it to the caller, who
// owns it.
func (m *Memory) Next(ctx context.Context) ([]byte, error) {
	select {
	case b := <-m.written:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ReadWritten copies the next written packet into dst without waiting;
// ok is false when none is queued. It recycles the packet's buffer, so a
// loop of Inject, Read, Write and ReadWritten allocates nothing.
func (m *Memory) ReadWritten(dst []byte) (n int, ok bool) {
	select {
	case b := <-m.written:
		n = copy(dst, b)
		m.recycle(b)
		return n, true
	default:
		return 0, false
	}
}

// Pending is the number of written packets not yet collected.
func (m *Memory) Pending() int { return len(m.written) }

func (m *Memory) BatchSize() int        { return m.batchSize }
func (m *Memory) MTU() (int, error)     { return m.mtu, nil }
func (m *Memory) Name() (string, error) { return m.name, nil }
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	return nil
}
