package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/sdnotify/sdnotifytest"
	"github.com/nat64kit/nat64kit/test/netns"
)

// These run the real `nat64ctl run` in a namespace with NOTIFY_SOCKET
// pointing at a socket the test reads, as systemd does for a Type=notify
// unit (deploy/systemd/nat64ctl@.service).

// startNotified starts nat64ctl run in ns with systemd's environment.
func startNotified(t *testing.T, ns *netns.NS, sock *sdnotifytest.Socket, watchdog time.Duration, cfg string) *netns.Process {
	t.Helper()
	args := append([]string{"env"}, sock.Env(watchdog)...)
	return ns.Start(append(args, nat64ctlBinary(t), "run", "-c", cfg, "--queues", "1")...)
}

// ourRoutes is what `ip route show proto 64` lists, both families.
func ourRoutes(t *testing.T, ns *netns.NS) string {
	return strings.TrimSpace(ns.MustExec("ip", "-6", "route", "show", "proto", "64") + ns.MustExec("ip", "-4", "route", "show", "proto", "64"))
}

func TestRunNotifiesSystemd(t *testing.T) {
	netns.RequireRoot(t)
	ns := netns.New(t, "xlat")
	cfg := writeRunConfig(t, "")
	sock := sdnotifytest.Listen(t)
	proc := startNotified(t, ns, sock, 400*time.Millisecond, cfg)

	before, err := sock.Await("READY=1", 30*time.Second, proc.Done())
	if err != nil {
		t.Fatalf("%v\n%s", err, proc.Output())
	}
	// At the moment READY=1 arrives the routes must already be there:
	// a unit ordered after this one may route through the translator.
	routes := ourRoutes(t, ns)
	if len(before) != 0 || !strings.Contains(routes, testPrefix+" dev nat64-t") || !strings.Contains(routes, testPool4+" dev nat64-t") {
		t.Fatalf("at READY=1 (after %q) the routes of proto 64 are:\n%s", before, routes)
	}
	if out, err := ns.Exec(context.Background(), nat64ctlBinary(t), "stats", "-c", cfg); err != nil {
		t.Errorf("control API not serving at READY=1: %v\n%s", err, out)
	}

	// WATCHDOG_USEC=400ms: a ping every 200 ms while healthy.
	for i := 0; i < 2; i++ {
		if before, err := sock.Await("WATCHDOG=1", 10*time.Second, proc.Done()); err != nil || len(before) != 0 {
			t.Fatalf("watchdog ping %d: %v (before it: %q)", i, err, before)
		}
	}

	if err := proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	before, err = sock.Await("STOPPING=1", 10*time.Second, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, proc.Output())
	}
	for _, m := range before {
		if m != "WATCHDOG=1" {
			t.Errorf("between READY and STOPPING: %q", m)
		}
	}
	if err := proc.Err(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, proc.Output())
	}
	if r := ourRoutes(t, ns); r != "" {
		t.Errorf("routes left after SIGTERM:\n%s", r)
	}
}

// A route that cannot be installed (another owner holds the pool4 prefix
// at the same metric) stops the start: no READY=1 is ever sent, the
// process fails, and systemd sees a failed start rather than a service
// that routes nothing.
func TestRunNoReadyWhenRoutesFail(t *testing.T) {
	netns.RequireRoot(t)
	ns := netns.New(t, "xlat")
	ns.MustExec("ip", "route", "add", "blackhole", testPool4+"/32", "proto", "static")
	sock := sdnotifytest.Listen(t)
	proc := startNotified(t, ns, sock, 400*time.Millisecond, writeRunConfig(t, ""))

	before, err := sock.Await("READY=1", 30*time.Second, proc.Done())
	if err == nil {
		t.Fatalf("READY=1 sent although a route could not be installed:\n%s", proc.Output())
	}
	if len(before) != 0 {
		t.Errorf("notifications from a failed start: %q", before)
	}
	if proc.Err() == nil {
		t.Errorf("nat64ctl run exited 0 after failing to install its routes:\n%s", proc.Output())
	}
	if out := proc.Output(); !strings.Contains(out, "another owner") {
		t.Errorf("the error should say why the route failed:\n%s", out)
	}
	if r := ourRoutes(t, ns); r != "" {
		t.Errorf("a failed start left routes:\n%s", r)
	}
}
