package tunio

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// senderLimit bounds every benchmark sender loop in time, whatever b.N is.
const senderLimit = 60 * time.Second

// startSender floods UDP from the namespace's kernel towards the TUN until
// stop is closed or senderLimit passes: batches of 64 datagrams per
// sendmmsg, spread over 64 destination ports.
func startSender(b *testing.B, c *net.UDPConn, size int, segment int, stop <-chan struct{}) *atomic.Int64 {
	b.Helper()
	if segment > 0 {
		raw, _ := c.SyscallConn()
		var serr error
		raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, segment) })
		if serr != nil {
			b.Skipf("UDP_SEGMENT: %v", serr)
		}
	}
	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, 64)
	payload := make([]byte, size)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{payload}
		msgs[i].Addr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerAddr4, uint16(20000+i)))
	}
	var sent atomic.Int64
	go func() {
		deadline := time.Now().Add(senderLimit)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			n, err := pc.WriteBatch(msgs, 0)
			if err != nil {
				// ENOBUFS when the TUN queue is full: back off a little.
				time.Sleep(10 * time.Microsecond)
				continue
			}
			sent.Add(int64(n))
		}
	}()
	return &sent
}

func benchmarkRead(b *testing.B, size, segment int) {
	ns, devs := openTUN(b, 1)
	c := udpSocket(b, ns, netip.AddrPortFrom(tunAddr4, 5300))
	stop := make(chan struct{})
	defer close(stop)
	d := devs[0]
	batch := NewBatch(d.BatchSize())
	sent := startSender(b, c, size, segment, stop)
	// Warm up until packets flow.
	if _, err := batch.Read(d); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	sent0 := sent.Load()
	packets, reads, bytes := 0, 0, 0
	for packets < b.N {
		n, err := batch.Read(d)
		if err != nil {
			b.Fatal(err)
		}
		reads++
		packets += n
		for i := 0; i < n; i++ {
			bytes += batch.Sizes[i]
		}
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(packets)/el, "pkts/s")
	b.ReportMetric(float64(bytes)*8/el/1e9, "Gbit/s")
	b.ReportMetric(float64(packets)/float64(reads), "pkts/read")
	// Sends the kernel accepted; more than read means the reader, not the
	// sender, was the bottleneck (the excess was dropped at the TUN queue).
	b.ReportMetric(float64(sent.Load()-sent0)/el, "sends/s")
}

// BenchmarkKernelReadUDP64: 64-byte UDP payloads, one packet per read.
func BenchmarkKernelReadUDP64(b *testing.B) { benchmarkRead(b, 64, 0) }

// BenchmarkKernelReadUDP1400: full-size datagrams, one per read.
func BenchmarkKernelReadUDP1400(b *testing.B) { benchmarkRead(b, 1400, 0) }

// BenchmarkKernelReadUDPGSO: 44 x 1400-byte segments per send (UDP_SEGMENT),
// handed over as one super-packet and split by Read into a batch.
func BenchmarkKernelReadUDPGSO(b *testing.B) { benchmarkRead(b, 44*1400, 1400) }

// BenchmarkKernelReadUDP64TwoQueues: as BenchmarkKernelReadUDP64 with the
// device's two queues read by one goroutine each (the daemon's shape); the
// kernel spreads the 64 flows over the queues.
func BenchmarkKernelReadUDP64TwoQueues(b *testing.B) {
	ns, devs := openTUN(b, 2)
	c := udpSocket(b, ns, netip.AddrPortFrom(tunAddr4, 5301))
	stop := make(chan struct{})
	defer close(stop)
	startSender(b, c, 64, 0, stop)
	var total atomic.Int64
	done := make(chan struct{})
	for _, d := range devs {
		go func() {
			batch := NewBatch(d.BatchSize())
			for {
				n, err := batch.Read(d)
				if err != nil {
					return
				}
				if total.Add(int64(n)) >= int64(b.N) {
					select {
					case done <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	total.Store(0)
	select {
	case <-done:
	case <-time.After(senderLimit):
		b.Fatalf("read %d of %d packets in %v", total.Load(), b.N, senderLimit)
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(total.Load())/el, "pkts/s")
	for _, d := range devs {
		d.Close()
	}
}

func benchmarkWrite(b *testing.B, size int, flows int) {
	ns, devs := openTUN(b, 1)
	dst := netip.AddrPortFrom(tunAddr4, 6300)
	c := udpSocket(b, ns, dst) // bound, never read: the kernel drops at its buffer
	_ = c
	d := devs[0]
	batch := NewBatch(d.BatchSize())
	pkts := make([][]byte, d.BatchSize())
	for i := range pkts {
		pkts[i] = udpPacket(netip.AddrPortFrom(peerAddr4, uint16(30000+i%flows)), dst, make([]byte, size))
	}
	b.ResetTimer()
	start := time.Now()
	written := 0
	for written < b.N {
		for i, p := range pkts {
			// Rewrite each packet, as a translator would after its in-place
			// translation (coalescing on the previous Write changed them).
			copy(batch.Bufs[i][Offset:], p)
			batch.Queue(batch.Bufs[i], Offset, Offset+len(p))
		}
		if _, err := batch.Flush(d); err != nil {
			b.Fatal(err)
		}
		written += len(pkts)
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(written)/el, "pkts/s")
	b.ReportMetric(float64(written*(28+size))*8/el/1e9, "Gbit/s")
}

// BenchmarkKernelWriteUDP64Flows: 128 small datagrams of 128 flows per
// Write: nothing to coalesce, one write(2) each.
func BenchmarkKernelWriteUDP64Flows(b *testing.B) { benchmarkWrite(b, 64, 128) }

// BenchmarkKernelWriteUDP1400OneFlow: one flow, so Write coalesces (UDP GRO)
// into super-packets and makes few write(2) calls.
func BenchmarkKernelWriteUDP1400OneFlow(b *testing.B) { benchmarkWrite(b, 1400, 1) }
