package tunio

// Tests against real kernel TUN devices (root): kernel to TUN and back,
// GSO batches, multi-queue, adoption of an existing device, refusals and
// allocations. Long because each needs its own device set-up.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/test/netns"
	"golang.org/x/sys/unix"
)

const (
	tunName = "t64"
	tunMTU  = 1500
)

var (
	tunAddr4  = netip.MustParseAddr("192.0.2.1")
	peerAddr4 = netip.MustParseAddr("192.0.2.9")
	tunAddr6  = netip.MustParseAddr("2001:db8:77::1")
	peerAddr6 = netip.MustParseAddr("2001:db8:77::9")
)

// openTUN makes a namespace with a TUN of queues queues, up, addressed
// 192.0.2.1/24 and 2001:db8:77::1/64, so the kernel sends anything for
// those subnets into it.
func openTUN(t testing.TB, queues int) (*netns.NS, []Device) {
	t.Helper()
	ns := netns.New(t, "tun")
	var devs []Device
	if err := ns.Do(func() (err error) { devs, err = Open(tunName, tunMTU, queues); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		for _, d := range devs {
			d.Close()
		}
	})
	ns.LinkUp(tunName)
	ns.AddAddr(tunName, "192.0.2.1/24")
	ns.AddAddr(tunName, "2001:db8:77::1/64")
	return ns, devs
}

// udpSocket opens a UDP socket inside the namespace.
func udpSocket(t testing.TB, ns *netns.NS, local netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
		return err
	})
	if err != nil {
		t.Fatalf("socket in namespace: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received is one UDP datagram a reader took off a queue.
type received struct {
	queue     int
	batchLen  int // packets returned by the Read that carried it
	udp       parsedUDP
	size      int
	checksums bool
}

// readAll runs a reader per queue until the devices close, forwarding the
// UDP datagrams (other kernel chatter is skipped).
func readAll(devs []Device) <-chan received {
	ch := make(chan received, 4096)
	for qi, d := range devs {
		go func() {
			b := NewBatch(d.BatchSize())
			for {
				n, err := b.Read(d)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					pkt := b.Packet(i)
					if u, ok := parseUDP(pkt); ok {
						select {
						case ch <- received{queue: qi, batchLen: n, udp: u, size: len(pkt), checksums: udpChecksumOK(pkt)}:
						default:
						}
					}
				}
			}
		}()
	}
	return ch
}

// await returns the first datagram to dst, or fails after a bounded wait.
func await(t *testing.T, ch <-chan received, dst netip.AddrPort) received {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-ch:
			if r.udp.dst == dst {
				return r
			}
		case <-deadline:
			t.Fatalf("no datagram to %s read from the TUN", dst)
		}
	}
}

func TestKernelToTUN(t *testing.T) {
	ns, devs := openTUN(t, 1)
	if got := devs[0].BatchSize(); got < 2 {
		t.Fatalf("BatchSize %d: the virtio-net header (offloads) is off", got)
	}
	if mtu, err := devs[0].MTU(); err != nil || mtu != tunMTU {
		t.Fatalf("MTU = %d, %v; want %d", mtu, err, tunMTU)
	}
	ch := readAll(devs)
	for _, tc := range []struct{ src, dst netip.AddrPort }{
		{netip.AddrPortFrom(tunAddr4, 5001), netip.AddrPortFrom(peerAddr4, 4000)},
		{netip.AddrPortFrom(tunAddr6, 5001), netip.AddrPortFrom(peerAddr6, 4000)},
	} {
		c := udpSocket(t, ns, tc.src)
		payload := []byte("kernel to tun via " + tc.dst.String())
		if _, err := c.WriteToUDPAddrPort(payload, tc.dst); err != nil {
			t.Fatal(err)
		}
		r := await(t, ch, tc.dst)
		if r.udp.src != tc.src || !bytes.Equal(r.udp.payload, payload) {
			t.Fatalf("read %v -> %v %q; want %v -> %v %q", r.udp.src, r.udp.dst, r.udp.payload, tc.src, tc.dst, payload)
		}
		// The kernel leaves the UDP checksum partial (offload); wireguard's
		// Read must complete it.
		if !r.checksums {
			t.Fatalf("UDP checksum of the read packet is wrong")
		}
	}
}

// TestKernelGSOBatch sends one UDP GSO super-packet (UDP_SEGMENT): the TUN
// hands it over whole and one Read returns all its segments.
func TestKernelGSOBatch(t *testing.T) {
	ns, devs := openTUN(t, 1)
	ch := readAll(devs)
	c := udpSocket(t, ns, netip.AddrPortFrom(tunAddr4, 5002))
	const segment, segments = 1000, 10
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, segment)
	}); err != nil || serr != nil {
		t.Skipf("UDP_SEGMENT unsupported: %v %v", err, serr)
	}
	dst := netip.AddrPortFrom(peerAddr4, 4001)
	payload := bytes.Repeat([]byte("0123456789"), segment*segments/10)
	if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
		t.Fatal(err)
	}
	var got []byte
	maxBatch := 0
	for i := 0; i < segments; i++ {
		r := await(t, ch, dst)
		got = append(got, r.udp.payload...)
		maxBatch = max(maxBatch, r.batchLen)
		if !r.checksums {
			t.Fatalf("segment %d: bad UDP checksum after GSO split", i)
		}
		if r.size != 20+8+segment {
			t.Fatalf("segment %d: %d bytes, want %d", i, r.size, 20+8+segment)
		}
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("segments do not reassemble to the payload sent")
	}
	if maxBatch < segments {
		t.Fatalf("largest Read returned %d packets; the GSO packet was split by the kernel, not by the batched Read", maxBatch)
	}
}

func TestTUNToKernel(t *testing.T) {
	ns, devs := openTUN(t, 1)
	b := NewBatch(devs[0].BatchSize())
	for _, tc := range []struct{ src, dst netip.AddrPort }{
		{netip.AddrPortFrom(peerAddr4, 7000), netip.AddrPortFrom(tunAddr4, 6000)},
		{netip.AddrPortFrom(peerAddr6, 7000), netip.AddrPortFrom(tunAddr6, 6000)},
	} {
		c := udpSocket(t, ns, tc.dst)
		payload := []byte("tun to kernel from " + tc.src.String())
		pkt := udpPacket(tc.src, tc.dst, payload)
		// Place it as a translator would: moved back into the headroom.
		start := Offset - 20
		copy(b.Bufs[0][start:], pkt)
		b.Queue(b.Bufs[0], start, start+len(pkt))
		if n, err := b.Flush(devs[0]); err != nil || n != 1 {
			t.Fatalf("Flush = %d, %v", n, err)
		}
		if b.Queued() != 0 {
			t.Fatal("Flush left packets queued")
		}
		buf := make([]byte, 2048)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("kernel socket did not receive the written packet: %v", err)
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != tc.src || !bytes.Equal(buf[:n], payload) {
			t.Fatalf("received %q from %v; want %q from %v", buf[:n], from, payload, tc.src)
		}
	}
}

func TestMultiQueue(t *testing.T) {
	const queues = 2
	ns, devs := openTUN(t, queues)
	if len(devs) != queues {
		t.Fatalf("Open returned %d devices, want %d", len(devs), queues)
	}
	detail := ns.MustExec("ip", "-d", "link", "show", tunName)
	t.Logf("ip -d link show %s:\n%s", tunName, detail)
	for _, want := range []string{"multi_queue", "vnet_hdr on", fmt.Sprintf("numqueues %d", queues)} {
		if !strings.Contains(detail, want) {
			t.Fatalf("ip -d link lacks %q:\n%s", want, detail)
		}
	}

	// Every queue writes into the kernel.
	dst := netip.AddrPortFrom(tunAddr4, 6100)
	c := udpSocket(t, ns, dst)
	for qi, d := range devs {
		b := NewBatch(1)
		pkt := udpPacket(netip.AddrPortFrom(peerAddr4, uint16(7100+qi)), dst, []byte{byte(qi)})
		copy(b.Bufs[0][Offset:], pkt)
		b.Queue(b.Bufs[0], Offset, Offset+len(pkt))
		if _, err := b.Flush(d); err != nil {
			t.Fatalf("queue %d write: %v", qi, err)
		}
		buf := make([]byte, 64)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil || n != 1 || buf[0] != byte(qi) || from.Port() != uint16(7100+qi) {
			t.Fatalf("queue %d: kernel got %v from %v, %v", qi, buf[:n], from, err)
		}
	}

	// The kernel spreads flows over the queues by hash: with 64 flows the
	// chance that one queue gets none is 2^-63.
	ch := readAll(devs)
	const flows = 64
	src := udpSocket(t, ns, netip.AddrPortFrom(tunAddr4, 5100))
	for i := 0; i < flows; i++ {
		if _, err := src.WriteToUDPAddrPort([]byte{byte(i)}, netip.AddrPortFrom(peerAddr4, uint16(9000+i))); err != nil {
			t.Fatal(err)
		}
	}
	perQueue := make([]int, queues)
	seen := map[uint16]bool{}
	deadline := time.After(5 * time.Second)
	for len(seen) < flows {
		select {
		case r := <-ch:
			if r.udp.dst.Addr() == peerAddr4 && r.udp.dst.Port() >= 9000 && r.udp.dst.Port() < 9000+flows && !seen[r.udp.dst.Port()] {
				seen[r.udp.dst.Port()] = true
				perQueue[r.queue]++
			}
		case <-deadline:
			t.Fatalf("read %d of %d flows (per queue %v)", len(seen), flows, perQueue)
		}
	}
	for qi, n := range perQueue {
		if n == 0 {
			t.Fatalf("queue %d received none of %d flows (per queue %v)", qi, flows, perQueue)
		}
	}
	t.Logf("flows per queue: %v", perQueue)
}

// TestAdoptExisting opens a TUN made beforehand by `ip tuntap` and checks
// it survives the daemon closing it, as an operator-made device should.
func TestAdoptExisting(t *testing.T) {
	for _, tc := range []struct {
		flags  []string
		queues int
	}{
		{[]string{"multi_queue", "vnet_hdr"}, 2},
		{[]string{"vnet_hdr"}, 1},
	} {
		t.Run(strings.Join(tc.flags, "+"), func(t *testing.T) {
			ns := netns.New(t, "adopt")
			ns.MustExec(append([]string{"ip", "tuntap", "add", "dev", "pre0", "mode", "tun"}, tc.flags...)...)
			var devs []Device
			if err := ns.Do(func() (err error) { devs, err = Open("pre0", 1400, tc.queues); return err }); err != nil {
				t.Fatalf("adopt: %v", err)
			}
			if len(devs) != tc.queues || devs[0].BatchSize() < 2 {
				t.Fatalf("adopted %d queues, batch %d", len(devs), devs[0].BatchSize())
			}
			if name, _ := devs[0].Name(); name != "pre0" {
				t.Fatalf("name %q", name)
			}
			for _, d := range devs {
				d.Close()
			}
			if out := ns.MustExec("ip", "-d", "link", "show", "pre0"); !strings.Contains(out, "mtu 1400") {
				t.Fatalf("adopted device lost or MTU not set:\n%s", out)
			}
		})
	}
	t.Run("created-is-removed", func(t *testing.T) {
		ns := netns.New(t, "adopt")
		var devs []Device
		if err := ns.Do(func() (err error) { devs, err = Open("own0", 1400, 2); return err }); err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			d.Close()
		}
		if _, err := ns.Exec(t.Context(), "ip", "link", "show", "own0"); err == nil {
			t.Fatal("a device Open created outlived its last queue")
		}
	})
}

func TestCloseUnblocksRead(t *testing.T) {
	_, devs := openTUN(t, 1)
	done := make(chan error, 1)
	go func() {
		b := NewBatch(devs[0].BatchSize())
		for {
			if _, err := b.Read(devs[0]); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	devs[0].Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v, want ErrClosed", err)
		}
		b := NewBatch(1)
		if _, err := b.Read(devs[0]); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Read after Close: %v, want ErrClosed", err)
		}
		b.Queue(b.Bufs[0], Offset, Offset+28)
		if _, err := b.Flush(devs[0]); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

func TestOpenRejects(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mtu, queues int
	}{
		{"t0", 1500, 0},
		{"", 1500, 1},
		{"a-name-too-long-for-linux", 1500, 1},
		{"t0", 10, 1},
	} {
		if _, err := Open(tc.name, tc.mtu, tc.queues); err == nil {
			t.Errorf("Open(%q, %d, %d) accepted", tc.name, tc.mtu, tc.queues)
		}
	}
}

func TestOpenRefusesIncompatibleDevice(t *testing.T) {
	ns := netns.New(t, "refuse")
	ns.MustExec("ip", "tuntap", "add", "dev", "single0", "mode", "tun", "vnet_hdr")
	ns.MustExec("ip", "tuntap", "add", "dev", "tap0", "mode", "tap", "multi_queue")
	for _, tc := range []struct {
		name   string
		queues int
	}{{"single0", 2}, {"tap0", 1}} {
		err := ns.Do(func() error {
			devs, err := Open(tc.name, 1500, tc.queues)
			for _, d := range devs {
				d.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("Open(%s, %d queues) adopted an incompatible device", tc.name, tc.queues)
		}
	}
}

// TestKernelPathNoAllocs: a batch read from and written to a kernel TUN
// allocates nothing, so the translator's per-packet budget stays at zero.
func TestKernelPathNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	ns, devs := openTUN(t, 1)
	d := devs[0]
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{Port: 4444, Addr: peerAddr4.As4()}
	payload := make([]byte, 100)
	sink := netip.AddrPortFrom(tunAddr4, 6400)
	udpSocket(t, ns, sink)
	out := udpPacket(netip.AddrPortFrom(peerAddr4, 4444), sink, payload)
	b := NewBatch(d.BatchSize())
	step := func() {
		if err := unix.Sendto(fd, payload, 0, to); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Read(d); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			copy(b.Bufs[i][Offset:], out)
			b.Queue(b.Bufs[i], Offset, Offset+len(out))
		}
		if _, err := b.Flush(d); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if allocs := testing.AllocsPerRun(100, step); allocs != 0 {
		t.Fatalf("%v allocations per read+write batch", allocs)
	}
}
