// Package netns is the test kit for every network-namespace test of the
// project (e2e, daemon, routes, TUN): it creates uniquely named namespaces
// the way `ip netns add` does (a bind mount under /run/netns, so real
// clients run inside with `ip netns exec NAME dig ...`), wires them with
// veth pairs, sets addresses, routes and sysctls, runs commands and
// long-running processes inside them, and tears everything down through
// t.Cleanup even when the test fails.
//
// All configuration goes through a netlink.Handle bound to the namespace,
// so a test never changes the host's namespace; code that must run inside
// (opening a TUN, creating a socket, writing /proc/sys) uses NS.Do, which
// enters the namespace on a locked OS thread and always leaves it.
//
// Needs root and iproute2 (`ip`); ping-based helpers need iputils-ping.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// DefaultTimeout bounds every command run through Exec unless the caller's
// context is shorter.
const DefaultTimeout = 30 * time.Second

// stopGrace is how long a started process gets after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// RequireRoot skips the test unless it runs as root with the `ip` tool.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs root: iproute2's `ip` is not installed (apt-get install iproute2)")
	}
}

// RequireCommand skips the test when a program it runs is not installed,
// naming the Debian package that provides it.
func RequireCommand(t testing.TB, program, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		t.Skipf("needs %s (apt-get install %s)", program, debianPackage)
	}
}

// NS is one network namespace created for a test.
type NS struct {
	Name string // as `ip netns` knows it
	Path string // /run/netns/Name

	t      testing.TB
	handle vnetns.NsHandle
	nl     *netlink.Handle
}

// New creates a namespace named after the test and role ("client",
// "translator", ...) plus a random suffix, brings its loopback up, and
// registers its deletion with t.Cleanup. Deleting the namespace deletes the
// veths in it; processes started with Start are stopped before that.
func New(t testing.TB, role string) *NS {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(sweepDead)
	name := uniqueName(t.Name(), role)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, Path: filepath.Join("/run/netns", name), t: t, handle: -1}
	t.Cleanup(ns.destroy)

	h, err := vnetns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	ns.handle = h
	ns.nl, err = netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	ns.LinkUp("lo")
	// Duplicate address detection would leave every new address, link-local
	// ones included, tentative for about a second, and a test's first
	// packets would vanish in neighbour discovery. A test network has no
	// duplicates to detect.
	ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
	return ns
}

// namePrefix starts every namespace name this kit makes.
const namePrefix = "n64-"

// uniqueName builds "n64-<pid>-<test>-<role>-<random>", readable in `ip
// netns list` and unique across parallel and repeated runs; the pid lets a
// later run remove what a killed run could not.
func uniqueName(testName, role string) string {
	clean := func(s string, max int) string {
		var b strings.Builder
		for _, r := range s {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			}
			if b.Len() == max {
				break
			}
		}
		return b.String()
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s%d-%s-%s-%s", namePrefix, os.Getpid(),
		clean(strings.TrimPrefix(testName, "Test"), 20), clean(role, 12), hex.EncodeToString(rnd[:]))
}

var sweepOnce sync.Once

// sweepDead deletes the namespaces this kit made in test processes that
// have died without their cleanup (killed by a timeout): a name whose pid
// no longer exists. Processes still inside are not touched; the namespace
// then lives on until they exit.
func sweepDead() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		var pid int
		if _, err := fmt.Sscan(pidText, &pid); !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
		}
	}
}

func (ns *NS) destroy() {
	if ns.nl != nil {
		ns.nl.Close()
	}
	if ns.handle >= 0 {
		_ = ns.handle.Close()
	}
	// Anything still running inside (a child a test forgot, a daemon's
	// helper) would keep the namespace alive after the bind mount is gone.
	ns.killRemaining()
	if out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
		ns.t.Errorf("ip netns delete %s: %v: %s", ns.Name, err, out)
	}
	_ = os.RemoveAll(filepath.Join("/etc/netns", ns.Name))
}

// killRemaining kills the processes still in the namespace. They can only
// be processes this test started (the namespace is the test's own).
func (ns *NS) killRemaining() {
	out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Handle is a netlink handle bound to the namespace; it is closed at
// cleanup.
func (ns *NS) Handle() *netlink.Handle { return ns.nl }

// NsHandle is the namespace's file descriptor handle (valid until cleanup).
func (ns *NS) NsHandle() vnetns.NsHandle { return ns.handle }

// Do runs fn with the calling goroutine's OS thread inside the namespace.
// Sockets and TUN devices created in fn belong to the namespace and keep
// working from any goroutine afterwards. Goroutines started by fn run in
// the original namespace.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	if err := vnetns.Set(ns.handle); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := vnetns.Set(orig); err != nil {
		// The thread is left locked so the runtime retires it with the
		// goroutine instead of reusing a thread in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave %s: %w", ns.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Exec runs a command inside the namespace (`ip netns exec NAME args...`),
// bounded by ctx and DefaultTimeout, and returns its combined output.
func (ns *NS) Exec(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", ns.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (ns *NS) MustExec(args ...string) string {
	ns.t.Helper()
	out, err := ns.Exec(context.Background(), args...)
	if err != nil {
		ns.t.Fatal(err)
	}
	return out
}

// Sysctl writes a sysctl of the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (ns *NS) Sysctl(key, value string) {
	ns.t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		ns.t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns.Name, err)
	}
}

// ReadSysctl reads a sysctl of the namespace.
func (ns *NS) ReadSysctl(key string) string {
	ns.t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	var b []byte
	if err := ns.Do(func() (err error) { b, err = os.ReadFile(path); return err }); err != nil {
		ns.t.Fatalf("read sysctl %s in %s: %v", key, ns.Name, err)
	}
	return strings.TrimSpace(string(b))
}

// SetResolvConf writes /etc/netns/NAME/resolv.conf, which `ip netns exec`
// bind-mounts over /etc/resolv.conf: unmodified clients (getaddrinfo, curl,
// dig) in the namespace then ask these servers. Removed at cleanup.
func (ns *NS) SetResolvConf(nameservers ...netip.Addr) {
	ns.t.Helper()
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		ns.t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(b.String()), 0o644); err != nil {
		ns.t.Fatal(err)
	}
}

// WaitFor polls check every 50 ms until it succeeds or timeout passes,
// then fails the test with its last error: for a server started with Start
// to begin listening, a route to appear.
func WaitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ping sends a bounded number of pings from the namespace to dst and
// reports whether any reply came back (`ping -c count -W 1`).
func (ns *NS) Ping(dst netip.Addr, count int) error {
	ns.t.Helper()
	RequireCommand(ns.t, "ping", "iputils-ping")
	args := []string{"ping", "-n", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", dst.String()}
	if dst.Is6() {
		args = append(args[:1], append([]string{"-6"}, args[1:]...)...)
	}
	_, err := ns.Exec(context.Background(), args...)
	return err
}
