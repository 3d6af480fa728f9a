package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The setup rate, in the spirit of RFC 9693's connection-establishment
// tests: how fast new flows get through the translator. New flows always
// take the slow path (the Go translator creates the session; the fast path
// only ever carries sessions it was handed), so the figure is the same
// machine's user-space rate in both modes, less what the fast path frees.

// udpSetupRate sends one datagram from each of n new source ports, as fast
// as the kernel takes them, and returns the new UDP sessions per second the
// translator set up: the sessions held once the count stops growing, over
// the time from the first packet to the last growth.
func udpSetupRate(t *testing.T, p *path, n int) float64 {
	p.client.AddAddr("c0", "2001:db8:1::4/64")
	sessions := func() int { return nat64ctlStats(t, p).Sessions["udp"] }
	base := sessions()
	start := time.Now()
	if err := p.client.Do(func() error { return sendFlowsFrom("2001:db8:1::4", n) }); err != nil {
		t.Errorf("udp setup: %v", err)
		return 0
	}
	held, last := base, time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if s := sessions(); s > held {
			held, last = s, time.Now()
		} else if time.Since(last) > 300*time.Millisecond {
			break
		}
	}
	return float64(held-base) / last.Sub(start).Seconds()
}

// sendFlowsFrom sends one UDP datagram from each of n ports of src to the
// server's synthesized address, unpaced but for the kernel's ENOBUFS.
func sendFlowsFrom(src string, n int) error {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_UDP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_CHECKSUM, 6); err != nil {
		return err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet6{Addr: netip.MustParseAddr(src).As16()}); err != nil {
		return err
	}
	dst := &syscall.SockaddrInet6{Addr: netip.MustParseAddr(target6).As16()}
	pkt := make([]byte, 12)
	for i := range n {
		port := uint16(1024 + i)
		pkt[0], pkt[1] = byte(port>>8), byte(port)
		pkt[2], pkt[3] = 0x1b, 0x5f // 7007
		pkt[4], pkt[5] = 0, 12
		for syscall.Sendto(fd, pkt, 0, dst) == syscall.ENOBUFS {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// tcpSetupRate opens and closes TCP connections to a listener on the
// server for d, from 4 goroutines, and returns the completed connects per
// second. Each connection is a new session (a new source port).
func tcpSetupRate(t *testing.T, p *path, d time.Duration) float64 {
	var ln net.Listener
	if err := p.server.Do(func() (err error) { ln, err = net.Listen("tcp4", server4+":7100"); return err }); err != nil {
		t.Errorf("tcp setup: %v", err)
		return 0
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range 4 {
		wg.Add(1)
		// Each goroutine enters the client namespace itself: Do holds
		// only its own OS thread there.
		go func() {
			defer wg.Done()
			p.client.Do(func() error {
				for time.Now().Before(end) {
					c, err := net.DialTimeout("tcp6", "["+target6+"]:7100", time.Second)
					if err != nil {
						failed.Add(1)
						continue
					}
					// RST rather than FIN: no TIME_WAIT on the client, so
					// 4 goroutines do not run out of ports.
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					done.Add(1)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Logf("tcp setup: %d connects failed, %d completed", failed.Load(), done.Load())
	}
	return float64(done.Load()) / d.Seconds()
}

// machineBusy is the CPU time all CPUs spent outside idle and iowait so
// far, in seconds (/proc/stat): the fast path runs in softirq context, which
// no process's CPU time shows.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var total, idle float64
	for i, v := range f[1:] {
		var x float64
		fmt.Sscan(v, &x)
		total += x
		if i == 3 || i == 4 { // idle, iowait
			idle += x
		}
	}
	return (total - idle) / 100 // USER_HZ
}
