package netns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestNamespaceLifecycle(t *testing.T) {
	RequireRoot(t)
	var path string
	var proc *Process
	t.Run("create", func(t *testing.T) {
		ns := New(t, "life")
		path = ns.Path
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("namespace bind mount missing: %v", err)
		}
		// A command runs inside: it sees only the namespace's loopback.
		out := ns.MustExec("ip", "-o", "link", "show")
		if !strings.Contains(out, "lo:") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Fatalf("expected only lo in a fresh namespace, got:\n%s", out)
		}
		proc = ns.Start("sleep", "60")
		if proc.PID() <= 0 {
			t.Fatal("no pid")
		}
	})
	// The subtest's cleanup ran: process stopped, namespace gone.
	select {
	case <-proc.Done():
	default:
		t.Fatal("started process still running after cleanup")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("namespace %s survived cleanup: %v", path, err)
	}
}

func TestExecTimeoutAndFailure(t *testing.T) {
	ns := New(t, "exec")
	if _, err := ns.Exec(context.Background(), "false"); err == nil {
		t.Fatal("a failing command reported success")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := ns.Exec(ctx, "sleep", "20"); err == nil {
		t.Fatal("a command past its deadline reported success")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("context deadline did not stop the command")
	}
}

func TestDoEntersAndLeaves(t *testing.T) {
	ns := New(t, "do")
	ns.Sysctl("net.ipv4.ip_forward", "1")
	if got := ns.ReadSysctl("net.ipv4.ip_forward"); got != "1" {
		t.Fatalf("ip_forward in namespace = %q, want 1", got)
	}
	// A socket created inside binds to the namespace: port 1 on an address
	// only the namespace has.
	ns.AddAddr("lo", "192.0.2.77/32")
	var conn *net.UDPConn
	err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.77")})
		return err
	})
	if err != nil {
		t.Fatalf("socket inside namespace: %v", err)
	}
	conn.Close()
	// And the calling goroutine is back outside: the host has no such address.
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.77")}); err == nil {
		c.Close()
		t.Fatal("thread stayed in the test namespace after Do")
	}
}

func TestTopologyPingAcrossVeth(t *testing.T) {
	RequireCommand(t, "ping", "iputils-ping")
	tp := NewTopology(t)
	if err := tp.Client.Ping(tp.TranslatorClient, 2); err != nil {
		t.Fatalf("client -> translator: %v", err)
	}
	if err := tp.Client.Ping(tp.DNSAddr, 2); err != nil {
		t.Fatalf("client -> dns through the translator's IPv6 forwarding: %v", err)
	}
	if err := tp.Server.Ping(tp.TranslatorServer, 2); err != nil {
		t.Fatalf("server -> translator: %v", err)
	}
	// The shape's promises: no IPv4 on the client, no IPv6 on the server.
	if err := tp.Client.Ping(tp.ServerAddr, 1); err == nil {
		t.Fatal("IPv6-only client reached the IPv4 server without a translator")
	}
	if out := tp.Server.MustExec("ip", "-6", "addr", "show"); strings.Contains(out, "inet6") {
		t.Fatalf("server has IPv6 addresses:\n%s", out)
	}
}

func TestResolvConf(t *testing.T) {
	ns := New(t, "resolv")
	ns.SetResolvConf(netip.MustParseAddr("2001:db8:53::2"))
	out := ns.MustExec("cat", "/etc/resolv.conf")
	if !strings.Contains(out, "nameserver 2001:db8:53::2") {
		t.Fatalf("ip netns exec did not bind-mount our resolv.conf:\n%s", out)
	}
}

func TestSweepRemovesNamespacesOfDeadRuns(t *testing.T) {
	RequireRoot(t)
	// A pid that cannot be alive: above the kernel's pid_max ceiling.
	name := namePrefix + "4194305-Sweep-dead-00000000"
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	live := New(t, "live")
	sweepDead()
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Fatalf("namespace of a dead run survived the sweep: %v", err)
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Fatalf("sweep removed a live run's namespace: %v", err)
	}
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, 5*time.Second, "third call", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("%d calls", calls)
	}
}
