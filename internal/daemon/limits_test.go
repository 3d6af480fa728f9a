package daemon

// The limits the flood tests of nat64ctl hit in namespaces, here with the
// daemon's injectable clock, so that "recovers once the sessions time out"
// can be checked without waiting RFC 6146's minutes.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/tunio"
	"github.com/nat64kit/nat64kit/internal/tunio/tuntest"
)

// waitStats polls the daemon's counters until cond holds.
func waitStats(t *testing.T, d *Daemon, what string, cond func(control.Stats) bool) control.Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := backend{d}.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDaemonLimitsRecoverAfterTimeouts(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nat64.toml")
	body := fmt.Sprintf("[[instance]]\nname = \"nat64-t\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32 2000-2003\"]\n"+
		"control = \"127.0.0.1:%d\"\nmax_sessions_per_source = 3\nfastpath = \"off\"\n", freePort(t))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(int64(time.Second))
	mem := tuntest.NewMemory("nat64-t", 1500, 16, 64)
	d, err := Start(Options{ConfigPath: cfg, Devices: []tunio.Device{mem}, Clock: clock.Load, ExpireEvery: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	a, b := netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("2001:db8::b")
	dns := netip.MustParseAddrPort("[64:ff9b:1::c633:6402]:53")
	flows := func(src netip.Addr, first, n int) {
		for i := 0; i < n; i++ {
			if err := mem.Inject(udp6(netip.AddrPortFrom(src, uint16(first+i)), dns, "q")); err != nil {
				t.Fatal(err)
			}
		}
	}
	drops := func(st control.Stats, r string) uint64 { return st.Drops[r] }

	// A opens 10 flows: 3 translated, 7 over its limit.
	flows(a, 5000, 10)
	for i := 0; i < 3; i++ {
		if p := next(t, mem); p[0]>>4 != 4 {
			t.Fatalf("flow %d of A: %x", i, p)
		}
	}
	waitStats(t, d, "A's 7 flows over the limit", func(st control.Stats) bool { return drops(st, "session_limit") == 7 })
	// B takes the last of the 4 ports; its next flow finds pool4 empty
	// and gets ICMPv6 Destination Unreachable, Address Unreachable.
	flows(b, 6000, 2)
	if p := next(t, mem); p[0]>>4 != 4 {
		t.Fatalf("B's first flow: %x", p)
	}
	if p := next(t, mem); p[0]>>4 != 6 || p[6] != 58 || p[40] != 1 || p[41] != 3 {
		t.Fatalf("B's second flow: want Address Unreachable, got %x", p)
	}
	st := waitStats(t, d, "pool4 exhausted", func(st control.Stats) bool { return drops(st, "pool4_exhausted") == 1 })
	if st.Sessions["udp"] != 4 || st.Pool4PortsInUse != 4 {
		t.Fatalf("sessions %v, ports in use %d", st.Sessions, st.Pool4PortsInUse)
	}

	// Past the UDP timeout (5 min) the sessions and their ports are gone,
	// and both sources are served again, within the same limits.
	clock.Add(int64(5*time.Minute + 2*time.Second))
	d.expire()
	if st := (backend{d}).Stats(); st.Sessions["udp"] != 0 || st.Pool4PortsInUse != 0 {
		t.Fatalf("after the timeout: sessions %v, ports in use %d", st.Sessions, st.Pool4PortsInUse)
	}
	flows(a, 7000, 4)
	for i := 0; i < 3; i++ {
		if p := next(t, mem); p[0]>>4 != 4 {
			t.Fatalf("A after the timeout, flow %d: %x", i, p)
		}
	}
	waitStats(t, d, "A's 4th flow over the limit again", func(st control.Stats) bool { return drops(st, "session_limit") == 8 })
	flows(b, 8000, 1)
	if p := next(t, mem); p[0]>>4 != 4 {
		t.Fatalf("B after the timeout: %x", p)
	}
	if st := (backend{d}).Stats(); drops(st, "pool4_exhausted") != 1 || st.Sessions["udp"] != 4 {
		t.Fatalf("after recovery: %+v", st)
	}
}
