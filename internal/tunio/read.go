package tunio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Reading a kernel TUN: one read(2) returns one packet behind its
// virtio-net header, so a batch is filled by reading on until the queue is
// empty (EAGAIN). Under load the batch grows by itself, and Write can then
// coalesce a flow's datagrams into one UDP or TCP super-packet: one write
// and one trip through the kernel's forwarding for many packets. Idle, a
// batch is one packet and nothing waits for company.
//
// Each packet is read straight into its batch buffer, its virtio-net header
// landing in the headroom, so a plain packet is never copied. A GSO
// super-packet is split into the buffers after it, its first segment
// staying in place.

const (
	// vnetHdrLen is the size of struct virtio_net_hdr.
	vnetHdrLen = 10
)

// vnetHdr is the virtio-net header the kernel writes in front of each
// packet (struct virtio_net_hdr, host byte order):
//
//	0        1        2                 4                 6
//	+--------+--------+--------+--------+--------+--------+
//	| flags  |gso_type|     hdr_len     |    gso_size     |
//	+--------+--------+--------+--------+--------+--------+
//	|   csum_start    |   csum_offset   |
//	+--------+--------+--------+--------+
type vnetHdr []byte

func (h vnetHdr) flags() uint8        { return h[0] }
func (h vnetHdr) gsoType() uint8      { return h[1] }
func (h vnetHdr) gsoSize() int        { return int(binary.NativeEndian.Uint16(h[4:])) }
func (h vnetHdr) csumStart() int      { return int(binary.NativeEndian.Uint16(h[6:])) }
func (h vnetHdr) csumOffset() int     { return int(binary.NativeEndian.Uint16(h[8:])) }
func (h vnetHdr) needsChecksum() bool { return h.flags()&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 }

// errNoRoom: a super-packet has more segments than the batch has buffers
// left; it waits for the next Read.
var errNoRoom = errors.New("tunio: super-packet does not fit the rest of the batch")

// reader is the read side of one kernel queue. Only one goroutine reads a
// Device at a time, so its fields need no lock.
type reader struct {
	raw syscall.RawConn
	// The two read callbacks and their arguments and results, bound once
	// so that a read allocates no closure.
	waitRead, tryRead func(fd uintptr) bool
	dst               []byte
	got               int
	err               error
	// stash holds a super-packet (header included) that did not fit the
	// rest of a batch, for the next Read; stashLen is 0 when empty.
	stash    []byte
	stashLen int
	// deferred is an error met after some packets were read: those are
	// returned first, the error by the next Read.
	deferred error
}

func newReader(raw syscall.RawConn) *reader {
	r := &reader{raw: raw, stash: make([]byte, vnetHdrLen+MaxPacket)}
	r.waitRead = func(fd uintptr) bool {
		r.got, r.err = unix.Read(int(fd), r.dst)
		return r.err != unix.EAGAIN && r.err != unix.EINTR
	}
	r.tryRead = func(fd uintptr) bool {
		r.got, r.err = unix.Read(int(fd), r.dst)
		return r.err != unix.EINTR
	}
	return r
}

// errWouldBlock: the queue is empty (only from a non-waiting read).
var errWouldBlock = errors.New("tunio: no packet queued")

// readOne reads one packet (virtio-net header first) into dst, waiting for
// one when wait is set.
func (r *reader) readOne(dst []byte, wait bool) (int, error) {
	r.dst = dst
	f := r.tryRead
	if wait {
		f = r.waitRead
	}
	if err := r.raw.Read(f); err != nil {
		return 0, err // the file was closed
	}
	r.dst = nil
	switch {
	case r.err == unix.EAGAIN:
		return 0, errWouldBlock
	case r.err == unix.EBADFD || r.err == unix.EBADF:
		return 0, ErrClosed
	case r.err != nil:
		return 0, r.err
	}
	return r.got, nil
}

// Read fills bufs[i][offset:] with packets, waiting for the first one and
// then taking whatever else is queued, up to len(bufs) packets.
func (r *reader) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if offset < vnetHdrLen {
		return 0, fmt.Errorf("tunio: read offset %d: need %d bytes for the virtio-net header", offset, vnetHdrLen)
	}
	if err := r.deferred; err != nil {
		r.deferred = nil
		return 0, err
	}
	n := 0
	if r.stashLen > 0 {
		m := copy(bufs[0][offset-vnetHdrLen:], r.stash[:r.stashLen])
		r.stashLen = 0
		k, err := unpack(bufs, sizes, offset, 0, m)
		if err != nil {
			return r.fail(0, err)
		}
		n = k
	}
	for n < len(bufs) {
		dst := bufs[n][offset-vnetHdrLen:]
		m, err := r.readOne(dst, n == 0)
		if err == errWouldBlock {
			break
		}
		if err != nil {
			return r.fail(n, err)
		}
		k, err := unpack(bufs, sizes, offset, n, m)
		if err == errNoRoom && n > 0 {
			r.stashLen = copy(r.stash, dst[:m])
			break
		}
		if err != nil {
			return r.fail(n, err)
		}
		n += k
	}
	return n, nil
}

// fail returns the packets read so far and keeps err for the next Read;
// with none, it returns err now.
func (r *reader) fail(n int, err error) (int, error) {
	if err == errNoRoom {
		err = tun.ErrTooManySegments
	}
	if n == 0 {
		return 0, err
	}
	r.deferred = err
	return n, nil
}

// unpack turns the m bytes read into bufs[n][offset-vnetHdrLen:] (virtio-net
// header, then the packet) into packets: the packet itself, with its
// checksum completed when the kernel left that to us, or the segments of a
// super-packet in bufs[n], bufs[n+1], ... It returns how many.
func unpack(bufs [][]byte, sizes []int, offset, n, m int) (int, error) {
	if m < vnetHdrLen {
		return 0, fmt.Errorf("tunio: read %d bytes, shorter than the virtio-net header", m)
	}
	buf := bufs[n]
	hdr := vnetHdr(buf[offset-vnetHdrLen : offset])
	pkt := buf[offset : offset-vnetHdrLen+m]
	switch hdr.gsoType() {
	case unix.VIRTIO_NET_HDR_GSO_NONE:
		if hdr.needsChecksum() {
			if err := completeChecksum(pkt, hdr.csumStart(), hdr.csumOffset()); err != nil {
				return 0, err
			}
		}
		sizes[n] = len(pkt)
		return 1, nil
	case unix.VIRTIO_NET_HDR_GSO_TCPV4, unix.VIRTIO_NET_HDR_GSO_TCPV6, unix.VIRTIO_NET_HDR_GSO_UDP_L4:
		return split(hdr, pkt, bufs[n:], sizes[n:], offset)
	default:
		return 0, fmt.Errorf("tunio: unsupported virtio-net GSO type %d", hdr.gsoType())
	}
}

// completeChecksum finishes a CHECKSUM_PARTIAL packet: the field at
// start+off holds the pseudo-header sum, and the sum over pkt[start:] goes
// in its place.
func completeChecksum(pkt []byte, start, off int) error {
	at := start + off
	if start >= len(pkt) || at+2 > len(pkt) {
		return fmt.Errorf("tunio: checksum at %d+%d outside a %d-byte packet", start, off, len(pkt))
	}
	partial := binary.BigEndian.Uint16(pkt[at:])
	pkt[at], pkt[at+1] = 0, 0
	sum := ^packet.Checksum(pkt[start:], partial)
	if sum == 0 && off == packet.UDPChecksumOffset {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(pkt[at:], sum)
	return nil
}

// split cuts the super-packet pkt (in bufs[0] at offset) into segments of
// hdr.gsoSize() payload bytes: segment i goes to bufs[i][offset:], each
// with its own headers, lengths and checksums. Segment 0 stays where it is,
// so it is done last, after the bytes behind it were copied out.
func split(hdr vnetHdr, pkt []byte, bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(pkt) < 1 {
		return 0, errors.New("tunio: empty super-packet")
	}
	v6 := pkt[0]>>4 == 6
	ipLen := hdr.csumStart()
	minIP := 20
	if v6 {
		minIP = 40
	} else if pkt[0]>>4 != 4 {
		return 0, fmt.Errorf("tunio: super-packet of IP version %d", pkt[0]>>4)
	}
	udp := hdr.gsoType() == unix.VIRTIO_NET_HDR_GSO_UDP_L4
	if ipLen < minIP || ipLen+20 > len(pkt) || !v6 && ipLen != int(pkt[0]&0xf)*4 {
		return 0, fmt.Errorf("tunio: super-packet with transport header at %d of %d bytes", ipLen, len(pkt))
	}
	// The kernel's hdr_len may cover the whole first packet on the
	// forwarding path; the transport header's own length is the truth.
	hdrLen := ipLen + 8
	if !udp {
		hdrLen = ipLen + int(pkt[ipLen+12]>>4)*4
		if hdrLen < ipLen+20 || hdrLen > len(pkt) {
			return 0, fmt.Errorf("tunio: TCP header length %d in a %d-byte super-packet", hdrLen-ipLen, len(pkt))
		}
	}
	mss := hdr.gsoSize()
	if mss < 1 {
		return 0, errors.New("tunio: super-packet with segment size 0")
	}
	payload := len(pkt) - hdrLen
	segments := max(1, (payload+mss-1)/mss)
	if segments > len(bufs) {
		return 0, errNoRoom
	}
	for i := segments - 1; i >= 0; i-- {
		from := hdrLen + i*mss
		to := min(from+mss, len(pkt))
		var seg []byte
		if i == 0 {
			seg = pkt[:to]
		} else {
			seg = bufs[i][offset : offset+hdrLen+to-from]
			copy(seg, pkt[:hdrLen])
			copy(seg[hdrLen:], pkt[from:to])
		}
		finishSegment(seg, ipLen, hdrLen, i, mss, i == segments-1, v6, udp)
		sizes[i] = len(seg)
	}
	return segments, nil
}

// finishSegment fixes the headers of segment i of a super-packet whose
// headers were copied in: lengths, the IPv4 ID (one more per segment), the
// TCP sequence number and flags, and both checksums.
func finishSegment(seg []byte, ipLen, hdrLen, i, mss int, last, v6, udp bool) {
	l4 := seg[ipLen:]
	proto, sumAt := nat64.ProtoTCP, packet.TCPChecksumOffset
	if udp {
		proto, sumAt = nat64.ProtoUDP, packet.UDPChecksumOffset
	}
	var pseudo uint16
	if v6 {
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)-40))
		pseudo = packet.PseudoHeaderSum6((*[16]byte)(seg[8:24]), (*[16]byte)(seg[24:40]), proto, uint32(len(l4)))
	} else {
		binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
		binary.BigEndian.PutUint16(seg[4:], binary.BigEndian.Uint16(seg[4:])+uint16(i))
		seg[10], seg[11] = 0, 0
		binary.BigEndian.PutUint16(seg[10:], ^packet.Checksum(seg[:ipLen], 0))
		pseudo = packet.PseudoHeaderSum4([4]byte(seg[12:16]), [4]byte(seg[16:20]), proto, uint16(len(l4)))
	}
	if udp {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	} else {
		binary.BigEndian.PutUint32(l4[4:], binary.BigEndian.Uint32(l4[4:])+uint32(i*mss))
		if !last {
			// FIN and PSH belong to the last segment only.
			l4[13] &^= 0x01 | 0x08
		}
	}
	l4[sumAt], l4[sumAt+1] = 0, 0
	sum := ^packet.Checksum(l4, pseudo)
	if udp && sum == 0 {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[sumAt:], sum)
}
