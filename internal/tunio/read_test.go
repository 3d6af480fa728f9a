package tunio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/nat64kit/nat64kit/internal/packet"
)

// The reader's tests need no root: a datagram socketpair stands in for the
// TUN queue, since both hand over one whole packet per read(2).

// fakeQueue returns a reader on one end of a socketpair and the other end,
// where the test writes what the kernel would: a virtio-net header and a
// packet per datagram.
func fakeQueue(t testing.TB) (*reader, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Room for a queue of super-packets, as a TUN has.
	unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "fake-tun")
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); unix.Close(fds[1]) })
	return newReader(raw), fds[1]
}

// hdr builds a virtio-net header.
func hdr(flags, gsoType uint8, gsoSize, csumStart, csumOffset int) []byte {
	h := make([]byte, vnetHdrLen)
	h[0], h[1] = flags, gsoType
	binary.NativeEndian.PutUint16(h[4:], uint16(gsoSize))
	binary.NativeEndian.PutUint16(h[6:], uint16(csumStart))
	binary.NativeEndian.PutUint16(h[8:], uint16(csumOffset))
	return h
}

func send(t testing.TB, fd int, h, pkt []byte) {
	t.Helper()
	if _, err := unix.Write(fd, append(append([]byte(nil), h...), pkt...)); err != nil {
		t.Fatal(err)
	}
}

// tcpPacket builds an IPv4 or IPv6 TCP segment with flags and 12 bytes of
// options (a timestamp), its checksums correct.
func tcpPacket(src, dst netip.AddrPort, seq uint32, flags byte, id uint16, payload []byte) []byte {
	tcp := make([]byte, 32+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 8 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	copy(tcp[32:], payload)
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	sum := checksumAdd(checksumAdd(0, s), d) + 6 + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], checksumFold(checksumAdd(sum, tcp)))
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(tcp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		binary.BigEndian.PutUint16(ip[4:], id)
		ip[6] = 0x40
		ip[8], ip[9] = 64, 6
		copy(ip[12:], s)
		copy(ip[16:], d)
		binary.BigEndian.PutUint16(ip[10:], checksumFold(checksumAdd(0, ip)))
		return append(ip, tcp...)
	}
	ip := make([]byte, 40, 40+len(tcp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
	ip[6], ip[7] = 6, 64
	copy(ip[8:], s)
	copy(ip[24:], d)
	return append(ip, tcp...)
}

// transportChecksumOK verifies a TCP or UDP checksum from scratch, and the
// IPv4 header checksum.
func transportChecksumOK(pkt []byte) bool {
	var s, d, l4 []byte
	var proto byte
	if pkt[0]>>4 == 4 {
		hl := int(pkt[0]&0xf) * 4
		if checksumFold(checksumAdd(0, pkt[:hl])) != 0 {
			return false
		}
		s, d, l4, proto = pkt[12:16], pkt[16:20], pkt[hl:], pkt[9]
	} else {
		s, d, l4, proto = pkt[8:24], pkt[24:40], pkt[40:], pkt[6]
	}
	sum := checksumAdd(checksumAdd(0, s), d) + uint32(proto) + uint32(len(l4))
	return checksumFold(checksumAdd(sum, l4)) == 0
}

var (
	v4a = netip.MustParseAddrPort("192.0.2.1:1000")
	v4b = netip.MustParseAddrPort("198.51.100.2:80")
	v6a = netip.MustParseAddrPort("[2001:db8:1::2]:1000")
	v6b = netip.MustParseAddrPort("[2001:db8:64::c633:6402]:80")
)

func TestReaderTakesWhatIsQueued(t *testing.T) {
	r, w := fakeQueue(t)
	var sent [][]byte
	for i := 0; i < 5; i++ {
		p := udpPacket(v6a, v6b, bytes.Repeat([]byte{byte(i)}, 10+i))
		sent = append(sent, p)
		send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), p)
	}
	b := NewBatch(8)
	n, err := b.Read(&kernelQueue{reader: r})
	if err != nil || n != len(sent) {
		t.Fatalf("Read = %d, %v; want all %d queued packets in one batch", n, err, len(sent))
	}
	for i, p := range sent {
		if !bytes.Equal(b.Packet(i), p) {
			t.Errorf("packet %d: got % x, want % x", i, b.Packet(i), p)
		}
	}
}

func TestReaderCompletesPartialChecksum(t *testing.T) {
	r, w := fakeQueue(t)
	for _, tc := range []struct {
		name string
		pkt  []byte
		at   int
	}{
		{"udp4", udpPacket(v4a, v4b, []byte("partial checksum")), 20},
		{"udp6", udpPacket(v6a, v6b, []byte("partial checksum")), 40},
		{"tcp4", tcpPacket(v4a, v4b, 7, 0x18, 1, []byte("partial")), 20},
	} {
		p := tc.pkt
		off := packet.UDPChecksumOffset
		if p[9] == 6 {
			off = packet.TCPChecksumOffset
		}
		// What CHECKSUM_PARTIAL leaves: the pseudo-header sum, not
		// complemented, in the checksum field.
		var s, d []byte
		if p[0]>>4 == 4 {
			s, d = p[12:16], p[16:20]
		} else {
			s, d = p[8:24], p[24:40]
		}
		proto := uint32(17)
		if off == packet.TCPChecksumOffset {
			proto = 6
		}
		pseudo := checksumAdd(checksumAdd(0, s), d) + proto + uint32(len(p)-tc.at)
		binary.BigEndian.PutUint16(p[tc.at+off:], ^checksumFold(pseudo))
		send(t, w, hdr(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_NONE, 0, tc.at, off), p)
		b := NewBatch(4)
		if n, err := b.Read(&kernelQueue{reader: r}); err != nil || n != 1 {
			t.Fatalf("%s: Read = %d, %v", tc.name, n, err)
		}
		if !transportChecksumOK(b.Packet(0)) {
			t.Errorf("%s: checksum not completed", tc.name)
		}
	}
}

func TestReaderSplitsSuperPackets(t *testing.T) {
	r, w := fakeQueue(t)
	const mss = 100
	payload := make([]byte, 3*mss+37)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name     string
		pkt      []byte
		gso, hdr int
	}{
		{"tcp4", tcpPacket(v4a, v4b, 1000, 0x19, 500, payload), unix.VIRTIO_NET_HDR_GSO_TCPV4, 20},
		{"tcp6", tcpPacket(v6a, v6b, 1000, 0x19, 0, payload), unix.VIRTIO_NET_HDR_GSO_TCPV6, 40},
		{"udp4", udpPacket(v4a, v4b, payload), unix.VIRTIO_NET_HDR_GSO_UDP_L4, 20},
		{"udp6", udpPacket(v6a, v6b, payload), unix.VIRTIO_NET_HDR_GSO_UDP_L4, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			udp := tc.gso == unix.VIRTIO_NET_HDR_GSO_UDP_L4
			off := packet.TCPChecksumOffset
			if udp {
				off = packet.UDPChecksumOffset
			}
			send(t, w, hdr(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, uint8(tc.gso), mss, tc.hdr, off), tc.pkt)
			b := NewBatch(8)
			n, err := b.Read(&kernelQueue{reader: r})
			if err != nil || n != 4 {
				t.Fatalf("Read = %d, %v; want 4 segments", n, err)
			}
			var got []byte
			for i := 0; i < n; i++ {
				seg := b.Packet(i)
				if !transportChecksumOK(seg) {
					t.Errorf("segment %d: bad checksum", i)
				}
				l4 := seg[tc.hdr:]
				if udp {
					got = append(got, l4[8:]...)
					if int(binary.BigEndian.Uint16(l4[4:])) != len(l4) {
						t.Errorf("segment %d: UDP length %d, want %d", i, binary.BigEndian.Uint16(l4[4:]), len(l4))
					}
				} else {
					got = append(got, l4[32:]...)
					if seq := binary.BigEndian.Uint32(l4[4:]); seq != uint32(1000+i*mss) {
						t.Errorf("segment %d: seq %d, want %d", i, seq, 1000+i*mss)
					}
					fin := l4[13]&0x09 != 0
					if fin != (i == n-1) {
						t.Errorf("segment %d: flags %#x; FIN and PSH belong to the last segment only", i, l4[13])
					}
				}
				if tc.hdr == 20 {
					if id := binary.BigEndian.Uint16(seg[4:]); tc.gso == unix.VIRTIO_NET_HDR_GSO_TCPV4 && id != uint16(500+i) {
						t.Errorf("segment %d: IPv4 ID %d, want %d", i, id, 500+i)
					}
					if int(binary.BigEndian.Uint16(seg[2:])) != len(seg) {
						t.Errorf("segment %d: total length %d for %d bytes", i, binary.BigEndian.Uint16(seg[2:]), len(seg))
					}
				} else if int(binary.BigEndian.Uint16(seg[4:])) != len(seg)-40 {
					t.Errorf("segment %d: payload length %d for %d bytes", i, binary.BigEndian.Uint16(seg[4:]), len(seg))
				}
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("segments do not reassemble to the payload")
			}
		})
	}
}

// A super-packet that does not fit the rest of a batch waits for the next
// Read; one that fits no batch is an error, and reading goes on after it.
func TestReaderStashesWhatDoesNotFit(t *testing.T) {
	r, w := fakeQueue(t)
	const mss = 50
	for i := 0; i < 3; i++ {
		send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), udpPacket(v4a, v4b, []byte{byte(i)}))
	}
	six := udpPacket(v4a, v4b, make([]byte, 6*mss))
	send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_UDP_L4, mss, 20, packet.UDPChecksumOffset), six)
	nine := udpPacket(v4a, v4b, make([]byte, 9*mss))
	send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_UDP_L4, mss, 20, packet.UDPChecksumOffset), nine)
	last := udpPacket(v4a, v4b, []byte("after"))
	send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), last)

	b := NewBatch(8)
	q := &kernelQueue{reader: r}
	if n, err := b.Read(q); err != nil || n != 3 {
		t.Fatalf("first Read = %d, %v; want the 3 plain packets", n, err)
	}
	if n, err := b.Read(q); err != nil || n != 6 {
		t.Fatalf("second Read = %d, %v; want the 6 stashed segments", n, err)
	}
	if n, err := b.Read(q); !errors.Is(err, tun.ErrTooManySegments) {
		t.Fatalf("third Read = %d, %v; want ErrTooManySegments for 9 segments in 8 buffers", n, err)
	}
	if n, err := b.Read(q); err != nil || n != 1 || !bytes.Equal(b.Packet(0), last) {
		t.Fatalf("fourth Read = %d, %v; want the packet after the oversized one", n, err)
	}
}

// An error met mid-batch does not cost the packets read before it.
func TestReaderDefersErrors(t *testing.T) {
	r, w := fakeQueue(t)
	good := udpPacket(v6a, v6b, []byte("good"))
	send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), good)
	send(t, w, hdr(0, 99, 0, 0, 0), good) // an unknown GSO type
	send(t, w, hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), good)
	b := NewBatch(8)
	q := &kernelQueue{reader: r}
	if n, err := b.Read(q); err != nil || n != 1 {
		t.Fatalf("Read = %d, %v; want the good packet first", n, err)
	}
	if _, err := b.Read(q); err == nil {
		t.Fatal("the malformed packet's error was lost")
	}
	if n, err := b.Read(q); err != nil || n != 1 {
		t.Fatalf("Read = %d, %v; want the packet after the malformed one", n, err)
	}
}

func TestReaderNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	r, w := fakeQueue(t)
	frame := append(hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), udpPacket(v6a, v6b, make([]byte, 64))...)
	b := NewBatch(8)
	q := &kernelQueue{reader: r}
	step := func() {
		for i := 0; i < 4; i++ {
			unix.Write(w, frame)
		}
		if n, err := b.Read(q); err != nil || n != 4 {
			t.Fatalf("Read = %d, %v", n, err)
		}
	}
	if allocs := testing.AllocsPerRun(200, step); allocs != 0 {
		t.Fatalf("%v allocations per batch read", allocs)
	}
}

// FuzzUnpack feeds arbitrary virtio-net headers and packets to the read
// path's parser: it may refuse them, never panic, and what it accepts
// stays inside the batch's buffers.
func FuzzUnpack(f *testing.F) {
	f.Add(hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 0, 0), udpPacket(v4a, v4b, []byte("x")))
	f.Add(hdr(1, unix.VIRTIO_NET_HDR_GSO_NONE, 0, 40, 6), udpPacket(v6a, v6b, []byte("xy")))
	f.Add(hdr(1, unix.VIRTIO_NET_HDR_GSO_TCPV4, 10, 20, 16), tcpPacket(v4a, v4b, 1, 0x10, 1, make([]byte, 35)))
	f.Add(hdr(1, unix.VIRTIO_NET_HDR_GSO_TCPV6, 10, 40, 16), tcpPacket(v6a, v6b, 1, 0x10, 1, make([]byte, 35)))
	f.Add(hdr(1, unix.VIRTIO_NET_HDR_GSO_UDP_L4, 7, 20, 6), udpPacket(v4a, v4b, make([]byte, 30)))
	b := NewBatch(8)
	f.Fuzz(func(t *testing.T, h, pkt []byte) {
		if len(h) > vnetHdrLen {
			h = h[:vnetHdrLen]
		}
		m := copy(b.Bufs[0][Offset-len(h):], h)
		m += copy(b.Bufs[0][Offset-len(h)+m:], pkt)
		if len(h) < vnetHdrLen {
			// A short read: header and packet end early.
			m = len(h)
			copy(b.Bufs[0][Offset-vnetHdrLen:], h)
		}
		n, err := unpack(b.Bufs, b.Sizes, Offset, 0, m)
		if err != nil {
			return
		}
		if n < 1 || n > len(b.Bufs) {
			t.Fatalf("unpack returned %d packets", n)
		}
		for i := 0; i < n; i++ {
			if b.Sizes[i] < 0 || Offset+b.Sizes[i] > len(b.Bufs[i]) {
				t.Fatalf("packet %d: size %d", i, b.Sizes[i])
			}
		}
	})
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
