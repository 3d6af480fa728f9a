package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/internal/sdnotify/sdnotifytest"
)

// Our CoreDNS under systemd's notify protocol
// (deploy/systemd/coredns-nat64kit.service, Type=notify): READY=1 once it
// answers, WATCHDOG=1 with WATCHDOG_USEC set, STOPPING=1 after SIGTERM.
func TestCoreDNSNotifiesSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds CoreDNS")
	}
	bin := binary(t)
	dir := t.TempDir()
	port := freePort(t)
	os.WriteFile(filepath.Join(dir, "db.example.org"), []byte(zoneExample), 0o644)
	corefile := fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    dns64 {
        prefix 64:ff9b:1::/96
        allow_ipv4
    }
    file db.example.org
}
`, port)
	os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o644)
	sock := sdnotifytest.Listen(t)
	cmd := exec.Command(bin, "-conf", "Corefile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), sock.Env(400*time.Millisecond)...)
	out := &lockedWriter{b: new(bytes.Buffer)}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // by PID; a no-op once it exited
		<-exited
		if t.Failed() {
			t.Logf("coredns output:\n%s", out.String())
		}
	})

	if before, err := sock.Await("READY=1", 60*time.Second, exited); err != nil || len(before) != 0 {
		t.Fatalf("READY=1: %v (before it: %q)", err, before)
	}
	// Ready means answering: one query, no retries.
	m := new(dns.Msg)
	m.SetQuestion("v4.example.org.", dns.TypeAAAA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("query at READY=1: %v %v", err, r)
	}
	for i := 0; i < 2; i++ {
		if before, err := sock.Await("WATCHDOG=1", 10*time.Second, exited); err != nil || len(before) != 0 {
			t.Fatalf("watchdog ping %d: %v (before it: %q)", i, err, before)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	before, err := sock.Await("STOPPING=1", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range before {
		if m != "WATCHDOG=1" {
			t.Errorf("between READY and STOPPING: %q", m)
		}
	}
	<-exited
	if waitErr != nil {
		t.Errorf("exit after SIGTERM: %v", waitErr)
	}
}
