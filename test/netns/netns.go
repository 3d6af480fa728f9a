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
	"net"
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
	"golang.org/x/sys/unix"
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

// Process is a long-running program started inside a namespace.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu  sync.Mutex
	out bytes.Buffer
}

// Write collects the process's stdout and stderr.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns what the process printed so far (stdout and stderr).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// PID is the process's id (`ip netns exec` execs the program in place).
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit status once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process by PID, waits up to a grace period,
// then SIGKILLs it. It returns the exit error (nil or a signal exit).
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Start starts a long-running program inside the namespace and registers
// Stop with t.Cleanup. Its output is collected (Process.Output) and, if the
// test fails, logged.
func (ns *NS) Start(args ...string) *Process {
	ns.t.Helper()
	p := &Process{done: make(chan struct{})}
	p.Cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	p.Cmd.Stdout = p
	p.Cmd.Stderr = p
	if err := p.Cmd.Start(); err != nil {
		ns.t.Fatalf("start in %s: %s: %v", ns.Name, strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	ns.t.Cleanup(func() {
		_ = p.Stop()
		if ns.t.Failed() {
			ns.t.Logf("output of %q in %s:\n%s", strings.Join(args, " "), ns.Name, p.Output())
		}
	})
	return p
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

// Link returns the named link of the namespace.
func (ns *NS) Link(name string) netlink.Link {
	ns.t.Helper()
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		ns.t.Fatalf("link %s in %s: %v", name, ns.Name, err)
	}
	return l
}

// LinkUp sets a link up.
func (ns *NS) LinkUp(name string) {
	ns.t.Helper()
	if err := ns.nl.LinkSetUp(ns.Link(name)); err != nil {
		ns.t.Fatalf("link %s up in %s: %v", name, ns.Name, err)
	}
}

// AddAddr assigns an address ("2001:db8:1::2/64", "198.51.100.2/24") to a
// link. IPv6 addresses skip duplicate address detection so they are usable
// at once instead of after DAD's delay.
func (ns *NS) AddAddr(link, cidr string) {
	ns.t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		ns.t.Fatalf("address %q: %v", cidr, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(ns.Link(link), a); err != nil {
		ns.t.Fatalf("add %s to %s in %s: %v", cidr, link, ns.Name, err)
	}
	if p.Addr().Is6() {
		ns.awaitLocal(p.Addr())
	}
}

// awaitLocal waits until the kernel delivers packets for addr locally. An
// IPv6 address, even without DAD, gets its local route from addrconf's
// work queue some time after the netlink call returns; a packet in that
// window is treated as one to forward, and dropped.
func (ns *NS) awaitLocal(addr netip.Addr) {
	ns.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := ns.nl.RouteGet(addr.AsSlice())
		if err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return
		}
		if time.Now().After(deadline) {
			ns.t.Fatalf("address %v in %s never became local: %v %v", addr, ns.Name, rs, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AddRoute adds a route to dst ("default" or a prefix) via a gateway
// address, or, when via is empty, directly through link.
func (ns *NS) AddRoute(dst, via, link string) {
	ns.t.Helper()
	r := &netlink.Route{}
	var family int
	if via != "" {
		gw, err := netip.ParseAddr(via)
		if err != nil {
			ns.t.Fatalf("gateway %q: %v", via, err)
		}
		r.Gw = gw.AsSlice()
		family = netlink.FAMILY_V4
		if gw.Is6() {
			family = netlink.FAMILY_V6
		}
	}
	if dst != "default" {
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			ns.t.Fatalf("route destination %q: %v", dst, err)
		}
		p = p.Masked()
		r.Dst = &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		family = netlink.FAMILY_V4
		if p.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
	} else if family == 0 {
		ns.t.Fatalf("default route needs a gateway to know its family")
	}
	r.Family = family
	if link != "" {
		r.LinkIndex = ns.Link(link).Attrs().Index
	}
	if via == "" {
		r.Scope = netlink.SCOPE_LINK
		if family == netlink.FAMILY_V6 {
			r.Scope = netlink.SCOPE_UNIVERSE
		}
	}
	if err := ns.nl.RouteAdd(r); err != nil {
		ns.t.Fatalf("route %s via %q dev %q in %s: %v", dst, via, link, ns.Name, err)
	}
}

// Veth connects two namespaces with a veth pair: aName in a, bName in b,
// both up. The pair disappears with either namespace.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.handle)),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s between %s and %s: %v", aName, bName, a.Name, b.Name, err)
	}
	a.LinkUp(aName)
	b.LinkUp(bName)
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
