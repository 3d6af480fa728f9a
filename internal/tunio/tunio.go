// Package tunio is the translator's packet I/O: a multi-queue Linux TUN
// device with virtio-net header offloads read and written in batches,
// preallocated buffer batches, and an in-memory Device for tests that do
// not need the kernel.
//
// Read is this package's (read.go): it takes every packet queued, up to a
// batch, and splits the TCP/UDP super-packets the kernel hands over. Write
// is golang.zx2c4.com/wireguard/tun's, which coalesces a batch's segments
// of one flow back into super-packets, so a full batch costs the kernel a
// few forwarding decisions instead of one per packet.
//
// # Buffer contract
//
// Every buffer handed to Read is BufferSize bytes. Read places packet i at
// bufs[i][Offset : Offset+sizes[i]]. The Offset bytes in front are the
// translator's: an IPv4 -> IPv6 translation grows the header by 20 bytes
// (28 with a Fragment header), an ICMP error with its inner header by up to
// 56, and the translator grows it in place by moving the packet's start
// back, never by copying the payload. Write needs WriteOffset (10) bytes in
// front of each packet for the virtio-net header, so a translation may move
// a packet's start back by at most MaxGrowth = Offset - WriteOffset bytes.
//
// Write takes one offset for the whole batch while translated packets start
// at different places: Batch.Queue re-slices each buffer so that its packet
// starts exactly at WriteOffset, which costs no copy and no allocation.
package tunio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

const (
	// WriteOffset is the headroom Write needs in front of every packet:
	// the 10-byte virtio-net header the kernel expects before each frame.
	WriteOffset = 10
	// Offset is where Read places each packet in its buffer; 128 keeps the
	// IP header cache-line aligned and leaves MaxGrowth bytes to grow into.
	Offset = 128
	// MaxGrowth is how far back a translation may move a packet's start.
	MaxGrowth = Offset - WriteOffset
	// MaxPacket is the largest packet Read returns (an IPv4 total length or
	// IPv6 header plus payload, after GSO splitting).
	MaxPacket = 65535
	// BufferSize is the size of every buffer of a batch: headroom plus the
	// largest packet, rounded up to a cache line.
	BufferSize = (Offset + MaxPacket + 63) &^ 63
)

// Device is one queue of a TUN device (or a test double) read and written
// in batches. It has the shape of golang.zx2c4.com/wireguard/tun.Device,
// without its events. Read and Write of one Device may run concurrently;
// each runs from one goroutine at a time.
type Device interface {
	// Read reads one or more packets into bufs[i][offset:], setting
	// sizes[i]; it returns how many. A kernel TUN returns several packets
	// when the kernel handed over a GSO super-packet, which needs enough
	// buffers (BatchSize) or it fails with tun.ErrTooManySegments.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// Write writes the packets bufs[i][offset:], offset >= WriteOffset,
	// and returns len(bufs) when all were accepted. On error the count is
	// how many are known written (0 for a kernel TUN, whose per-packet
	// errors are joined into err).
	// A kernel TUN may coalesce TCP/UDP segments into the first packet's
	// buffer beyond its length (up to the buffer's capacity), so the
	// buffers must not be shared between queued packets (see Batch.Queue).
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the most packets one Read or Write handles.
	BatchSize() int
	MTU() (int, error)
	Name() (string, error)
	Close() error
}

// ErrClosed is returned by Read and Write on a closed Device.
var ErrClosed = os.ErrClosed

// Open opens (creating it when absent) the TUN device name with queues
// queues, each with the virtio-net header and offloads, and sets its MTU.
// It returns one Device per queue so the translator runs one reader per
// queue; the kernel spreads flows over the queues by hash.
//
// An existing device of that name is adopted when its flags allow: a
// multi-queue TUN, or a single-queue one when queues is 1. A device Open
// created is deleted by the kernel when the last queue closes, and with it
// every route through it; an adopted one (persistent, made by `ip tuntap`)
// stays. Open does not bring the link up: that is routes' job, with the
// MTU and routes it installs.
//
// The device is created in the network namespace of the calling OS thread.
func Open(name string, mtu int, queues int) ([]Device, error) {
	if queues < 1 {
		return nil, fmt.Errorf("tunio: %d queues: need at least one", queues)
	}
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tunio: device name %q: need 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	if mtu < 68 || mtu > MaxPacket {
		return nil, fmt.Errorf("tunio: MTU %d out of range 68-%d", mtu, MaxPacket)
	}
	fds := make([]int, 0, queues)
	closeFDs := func(fds []int) {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	multi := true
	for i := 0; i < queues; i++ {
		fd, err := openQueue(name, multi)
		if err != nil && i == 0 && queues == 1 && errors.Is(err, unix.EINVAL) {
			// An existing single-queue device refuses IFF_MULTI_QUEUE.
			multi = false
			fd, err = openQueue(name, multi)
		}
		if err != nil {
			closeFDs(fds)
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (an existing %s with other flags: not a TUN, or not multi_queue while %d queues were asked)", err, name, queues)
			}
			return nil, fmt.Errorf("tunio: open queue %d of %s: %w", i, name, err)
		}
		fds = append(fds, fd)
	}
	// MTU queries need a socket in the device's namespace, which is the
	// calling thread's now but need not be the thread's that asks later.
	ctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		closeFDs(fds)
		return nil, fmt.Errorf("tunio: control socket: %w", err)
	}
	if err := setMTU(ctl, name, mtu); err != nil {
		closeFDs(fds)
		unix.Close(ctl)
		return nil, err
	}
	shared := &sharedControl{fd: ctl, name: name}
	shared.refs.Store(int32(queues))
	devs := make([]Device, 0, queues)
	fail := func(i int, err error) ([]Device, error) {
		for _, d := range devs {
			d.Close()
		}
		closeFDs(fds[i:])
		unix.Close(ctl)
		return nil, fmt.Errorf("tunio: queue %d of %s: %w", i, name, err)
	}
	for i, fd := range fds {
		// The unmonitored constructor reads the flags back with TUNGETIFF,
		// sees IFF_VNET_HDR and enables the offloads (TUNSETOFFLOAD) and
		// batching itself. It starts no netlink monitor: link state is
		// routes' business, and a monitor per queue fed nothing.
		d, _, err := tun.CreateUnmonitoredTUNFromFD(fd)
		if err != nil {
			return fail(i, err)
		}
		raw, err := d.File().SyscallConn()
		if err != nil {
			d.Close()
			return fail(i+1, err)
		}
		devs = append(devs, &kernelQueue{Device: d, ctl: shared, reader: newReader(raw)})
	}
	return devs, nil
}

// setMTU sets the device's MTU through the control socket ctl.
func setMTU(ctl int, name string, mtu int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(ctl, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("tunio: set MTU %d on %s: %w", mtu, name, err)
	}
	return nil
}

// openQueue attaches one queue to the device (creating it if absent) and
// returns its file descriptor.
func openQueue(name string, multiQueue bool) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF: %w", err)
	}
	// The constructor makes it non-blocking, so the Go poller owns it and
	// Close wakes a blocked Read.
	return fd, nil
}

// kernelQueue is one queue of a kernel TUN.
type kernelQueue struct {
	tun.Device
	// reader replaces wireguard's Read, which takes one packet per call.
	reader    *reader
	ctl       *sharedControl
	closed    atomic.Bool
	closeOnce sync.Once
}

// sharedControl is the device's control socket, shared by its queues and
// closed with the last one.
type sharedControl struct {
	fd   int
	name string
	refs atomic.Int32
}

// Read fills the batch with what the queue holds (see reader.Read). Every
// error after Close is ErrClosed.
func (q *kernelQueue) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := q.reader.Read(bufs, sizes, offset)
	if err != nil && q.closed.Load() {
		return 0, ErrClosed
	}
	return n, err
}

// Write normalizes wireguard's count (bytes written) to packets, and its
// errors after Close to ErrClosed.
func (q *kernelQueue) Write(bufs [][]byte, offset int) (int, error) {
	if _, err := q.Device.Write(bufs, offset); err != nil {
		if q.closed.Load() {
			return 0, ErrClosed
		}
		return 0, err
	}
	return len(bufs), nil
}

// MTU asks the kernel through the device's own namespace (wireguard's
// MTU would ask the calling thread's).
func (q *kernelQueue) MTU() (int, error) {
	ifr, err := unix.NewIfreq(q.ctl.name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(q.ctl.fd, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, fmt.Errorf("tunio: MTU of %s: %w", q.ctl.name, err)
	}
	return int(ifr.Uint32()), nil
}

// Close closes the queue; the last queue's Close closes the control socket.
func (q *kernelQueue) Close() error {
	q.closed.Store(true)
	err := q.Device.Close()
	q.closeOnce.Do(func() {
		if q.ctl.refs.Add(-1) == 0 {
			unix.Close(q.ctl.fd)
		}
	})
	return err
}

// Batch is a set of BatchSize buffers allocated once per reader and reused
// for every Read, plus the write list that Queue fills.
type Batch struct {
	// Bufs are the buffers, each BufferSize bytes with capacity limited to
	// its own slot. After Read, packet i is Packet(i).
	Bufs  [][]byte
	Sizes []int
	// N is the number of packets the last Read returned.
	N int

	out [][]byte
}

// NewBatch allocates n buffers in one block.
func NewBatch(n int) *Batch {
	if n < 1 {
		n = 1
	}
	block := make([]byte, n*BufferSize)
	b := &Batch{
		Bufs:  make([][]byte, n),
		Sizes: make([]int, n),
		out:   make([][]byte, 0, n),
	}
	for i := range b.Bufs {
		// The capacity stops at the slot's end so Write's coalescing can
		// never spill into the next buffer.
		b.Bufs[i] = block[i*BufferSize : (i+1)*BufferSize : (i+1)*BufferSize]
	}
	return b
}

// Read fills the batch from d, packets at Offset.
func (b *Batch) Read(d Device) (int, error) {
	n, err := d.Read(b.Bufs, b.Sizes, Offset)
	b.N = n
	return n, err
}

// Packet returns the i-th packet of the last Read.
func (b *Batch) Packet(i int) []byte {
	return b.Bufs[i][Offset : Offset+b.Sizes[i]]
}

// Queue adds the packet buf[start:end] to the write list; start must be at
// least WriteOffset. buf is normally one of Bufs (a packet translated in
// place): Write may then coalesce later segments of the same flow into it,
// past end, up to the end of buf's capacity, so no other queued packet
// may live there; use QueueExact for packets sharing a buffer.
func (b *Batch) Queue(buf []byte, start, end int) {
	b.out = append(b.out, buf[start-WriteOffset:end])
}

// QueueExact is Queue for a packet that shares its buffer with another
// queued packet (the fragments of one datagram): nothing is coalesced into
// it.
func (b *Batch) QueueExact(buf []byte, start, end int) {
	b.out = append(b.out, buf[start-WriteOffset:end:end])
}

// Queued is the number of packets waiting for Flush.
func (b *Batch) Queued() int { return len(b.out) }

// Flush writes the queued packets to d and empties the write list, also on
// error (a TUN write fails per packet; the rest are still written).
func (b *Batch) Flush(d Device) (int, error) {
	if len(b.out) == 0 {
		return 0, nil
	}
	n, err := d.Write(b.out, WriteOffset)
	b.out = b.out[:0]
	return n, err
}
