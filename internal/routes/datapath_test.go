package routes

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/tunio"
	"github.com/nat64kit/nat64kit/test/netns"
)

// TestDataPathWithoutAddresses checks the package's central claim: with only
// the installed routes (no address on the TUN) and forwarding on, under
// strict reverse-path filtering, the kernel delivers pool6 and pool4
// traffic into the TUN and forwards what the translator writes from pool6
// and pool4 sources, including from the ICMP source addresses.
func TestDataPathWithoutAddresses(t *testing.T) {
	tp := netns.NewTopology(t)
	xl := tp.Translator
	xl.Sysctl("net.ipv4.ip_forward", "0") // Reconcile must turn it on
	xl.Sysctl("net.ipv4.conf.all.rp_filter", "1")

	inst := instance()
	d, err := ForTranslator(inst)
	if err != nil {
		t.Fatal(err)
	}
	var devs []tunio.Device
	m := NewManager(xl.Handle())
	err = xl.Do(func() (err error) {
		if devs, err = tunio.Open(d.Device, d.MTU, 1); err != nil {
			return err
		}
		_, err = m.Reconcile(d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer devs[0].Close()
	dev := devs[0]

	// Reader: every UDP datagram read, keyed by destination.
	got := make(chan [2]netip.AddrPort, 64)
	go func() {
		b := tunio.NewBatch(dev.BatchSize())
		for {
			n, err := b.Read(dev)
			if err != nil {
				return
			}
			for i := 0; i < n; i++ {
				if src, dst, ok := udpEnds(b.Packet(i)); ok {
					got <- [2]netip.AddrPort{src, dst}
				}
			}
		}
	}()
	awaitRead := func(want netip.AddrPort) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case e := <-got:
				if e[1] == want {
					return
				}
			case <-timeout:
				t.Fatalf("nothing for %v came out of the TUN", want)
			}
		}
	}
	write := func(pkt []byte) {
		t.Helper()
		b := tunio.NewBatch(1)
		copy(b.Bufs[0][tunio.Offset:], pkt)
		b.Queue(b.Bufs[0], tunio.Offset, tunio.Offset+len(pkt))
		if _, err := b.Flush(dev); err != nil {
			t.Fatal(err)
		}
	}
	listen := func(ns *netns.NS, at netip.AddrPort) *net.UDPConn {
		t.Helper()
		var c *net.UDPConn
		if err := ns.Do(func() (err error) { c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(at)); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	expect := func(c *net.UDPConn, from netip.AddrPort, payload []byte) {
		t.Helper()
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("expected a datagram from %v: %v", from, err)
		}
		if netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != from || !bytes.Equal(buf[:n], payload) {
			t.Fatalf("got %q from %v, want %q from %v", buf[:n], src, payload, from)
		}
	}

	// IPv4 side: server -> pool4 reaches the TUN; pool4 -> server is forwarded.
	pool4 := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), 40000)
	server := netip.AddrPortFrom(tp.ServerAddr, 7777)
	sc := listen(tp.Server, server)
	if _, err := sc.WriteToUDPAddrPort([]byte("to pool4"), pool4); err != nil {
		t.Fatal(err)
	}
	awaitRead(pool4)
	write(udp(pool4, server, []byte("from pool4")))
	expect(sc, pool4, []byte("from pool4"))
	icmp4 := netip.AddrPortFrom(d.ICMPSource4, 1)
	write(udp(icmp4, server, []byte("from the icmp source")))
	expect(sc, icmp4, []byte("from the icmp source"))

	// IPv6 side: client -> pool6 reaches the TUN; pool6 -> client is forwarded.
	pool6 := netip.AddrPortFrom(inst.Prefix.EmbedAddr(tp.ServerAddr), 80)
	client := netip.AddrPortFrom(tp.ClientAddr, 7777)
	cc := listen(tp.Client, client)
	if _, err := cc.WriteToUDPAddrPort([]byte("to pool6"), pool6); err != nil {
		t.Fatal(err)
	}
	awaitRead(pool6)
	write(udp(pool6, client, []byte("from pool6")))
	expect(cc, pool6, []byte("from pool6"))
	icmp6 := netip.AddrPortFrom(d.ICMPSource6, 1)
	write(udp(icmp6, client, []byte("from the icmp source")))
	expect(cc, icmp6, []byte("from the icmp source"))
}

func sum16(sum uint32, b []byte) uint32 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// udp builds a checksummed IPv4 or IPv6 UDP datagram.
func udp(src, dst netip.AddrPort, payload []byte) []byte {
	l4 := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	copy(l4[8:], payload)
	s, dd := src.Addr().AsSlice(), dst.Addr().AsSlice()
	cs := fold(sum16(sum16(sum16(17+uint32(len(l4)), s), dd), l4))
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(l4[6:], cs)
	var ip []byte
	if src.Addr().Is4() {
		ip = make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		copy(ip[12:], s)
		copy(ip[16:], dd)
		binary.BigEndian.PutUint16(ip[10:], fold(sum16(0, ip)))
	} else {
		ip = make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, 17, 64
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		copy(ip[8:], s)
		copy(ip[24:], dd)
	}
	return append(ip, l4...)
}

// udpEnds returns a UDP datagram's source and destination.
func udpEnds(p []byte) (src, dst netip.AddrPort, ok bool) {
	switch {
	case len(p) >= 28 && p[0]>>4 == 4 && p[9] == 17:
		l4 := p[int(p[0]&0xf)*4:]
		if len(l4) < 8 {
			return src, dst, false
		}
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(l4))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), binary.BigEndian.Uint16(l4[2:]))
		return src, dst, true
	case len(p) >= 48 && p[0]>>4 == 6 && p[6] == 17:
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[8:24])), binary.BigEndian.Uint16(p[40:]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[24:40])), binary.BigEndian.Uint16(p[42:]))
		return src, dst, true
	}
	return src, dst, false
}
