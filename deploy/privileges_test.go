package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/internal/sdnotify/sdnotifytest"
	"github.com/nat64kit/nat64kit/test/netns"
)

// nat64ctl@.service runs the translator as a transient non-root user
// (DynamicUser=yes) holding only the capabilities of AmbientCapabilities=.
// This runs nat64ctl the same way, with setpriv, in a fresh namespace
// (whose forwarding sysctls are off, so it must turn them on): it must get
// to READY=1 with its routes installed and forwarding on. No systemd runs
// here, so the rest of the sandbox (ProtectSystem=, DevicePolicy=, the
// system call filter) is checked by systemd-analyze verify only.
//
// A non-root user opens /dev/net/tun only because Debian's udev makes it
// mode 0666; a container may have it 0600 (this test machine does). The
// test gives the process such a 0666 node, bind-mounted over
// /dev/net/tun in a mount namespace of its own, and leaves the machine's
// device alone.
func TestUnitPrivilegesSuffice(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireCommand(t, "setpriv", "util-linux")
	u := loadUnit(t, nat64ctlUnit)
	caps := values(u.es, "Service", "AmbientCapabilities")
	if len(caps) != 1 {
		t.Fatalf("want one AmbientCapabilities= line, have %q", caps)
	}
	// setpriv's list: +net_admin,+bpf
	var capList []string
	for _, c := range strings.Fields(caps[0]) {
		capList = append(capList, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	capName := strings.Join(capList, ",")
	ctl := binary(t, "nat64ctl")

	// The transient user can read the config (0644, as under
	// /etc/nat64kit) and reach the notify socket, as it can systemd's.
	dir, err := os.MkdirTemp("", "n64priv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	cfg := filepath.Join(dir, "nat64.toml")
	os.WriteFile(cfg, []byte("[[instance]]\nname = \"nat64-a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\ncontrol = \"127.0.0.1:9164\"\n"), 0o644)
	sock := sdnotifytest.Listen(t)
	os.Chmod(filepath.Dir(sock.Path), 0o755)
	os.Chmod(sock.Path, 0o777)

	ns := netns.New(t, "priv")
	if v := ns.ReadSysctl("net.ipv6.conf.all.forwarding"); v != "0" {
		t.Logf("IPv6 forwarding already %s in a new namespace; the sysctl write is not exercised", v)
	}
	tun := filepath.Join(dir, "tun")
	if out, err := exec.Command("mknod", "-m", "0666", tun, "c", "10", "200").CombinedOutput(); err != nil {
		t.Skipf("cannot make a TUN device node to stand for Debian's 0666 /dev/net/tun: %v: %s", err, out)
	}
	script := fmt.Sprintf("mount --bind %s /dev/net/tun && exec env %s setpriv --reuid=65534 --regid=65534 --clear-groups "+
		"--inh-caps=-all,%[3]s --ambient-caps=-all,%[3]s --bounding-set=-all,%[3]s --no-new-privs "+
		"%s run -c %s --instance nat64-a --queues 1", tun, strings.Join(sock.Env(0), " "), capName, ctl, cfg)
	p := ns.Start("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	if _, err := sock.Await("READY=1", 30*time.Second, p.Done()); err != nil {
		t.Fatalf("as uid 65534 with only %s: %v\n%s", caps[0], err, p.Output())
	}
	routes := ns.MustExec("ip", "-6", "route", "show", "proto", "64") + ns.MustExec("ip", "-4", "route", "show", "proto", "64")
	if !strings.Contains(routes, "64:ff9b:1::/96 dev nat64-a") || !strings.Contains(routes, "203.0.113.1 dev nat64-a") {
		t.Errorf("routes:\n%s", routes)
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if v := ns.ReadSysctl(k); v != "1" {
			t.Errorf("%s = %s", k, v)
		}
	}
	// The capabilities suffice for the kernel fast path too (fastpath =
	// "auto" would run without it otherwise, saying why).
	if out, err := ns.Exec(context.Background(), ctl, "stats", "--json", "--control", "127.0.0.1:9164"); err != nil || !strings.Contains(out, `"active": true`) {
		t.Errorf("the fast path is not attached with only %s: %v\n%s\n%s", caps[0], err, out, p.Output())
	}
	// Every exec in the chain replaced the process in place, so the PID
	// started is nat64ctl's.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil || !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") || !strings.Contains(string(status), "Name:\tnat64ctl") {
		t.Errorf("want nat64ctl running as uid 65534 (%v):\n%s", err, status)
	}
}

// coredns-nat64kit.service likewise: a transient user holding only
// CAP_NET_BIND_SERVICE serves port 53, in WorkingDirectory where the
// Corefile's relative "instances nat64.toml" resolves.
func TestCoreDNSUnitPrivilegesSuffice(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireCommand(t, "setpriv", "util-linux")
	u := loadUnit(t, corednsUnit)
	caps := values(u.es, "Service", "AmbientCapabilities")
	if len(caps) != 1 || strings.Contains(caps[0], " ") {
		t.Fatalf("want one capability in AmbientCapabilities, have %q", caps)
	}
	capName := strings.ToLower(strings.TrimPrefix(caps[0], "CAP_"))
	bin := binary(t, "plugin/coredns")
	dir, err := os.MkdirTemp("", "n64priv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "nat64.toml"), []byte("[[instance]]\nname = \"nat64-a\"\nprefix = \"64:ff9b:1::/96\"\npool4 = [\"203.0.113.1/32\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "db.example"), []byte(statsZone), 0o644)
	os.WriteFile(filepath.Join(dir, "Corefile"), []byte(". {\n    bind ::1\n    dns64 {\n        instances nat64.toml\n    }\n    file db.example example.\n}\n"), 0o644)
	sock := sdnotifytest.Listen(t)
	os.Chmod(filepath.Dir(sock.Path), 0o755)
	os.Chmod(sock.Path, 0o777)

	ns := netns.New(t, "priv")
	args := append([]string{"env", "-C", dir}, sock.Env(0)...)
	args = append(args, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all,+"+capName, "--ambient-caps=-all,+"+capName, "--bounding-set=-all,+"+capName, "--no-new-privs",
		bin, "-conf", filepath.Join(dir, "Corefile"))
	p := ns.Start(args...)
	if _, err := sock.Await("READY=1", 60*time.Second, p.Done()); err != nil {
		t.Fatalf("as uid 65534 with only %s: %v\n%s", caps[0], err, p.Output())
	}
	m := new(dns.Msg)
	m.SetQuestion("v4.example.", dns.TypeAAAA)
	var r *dns.Msg
	if err := ns.Do(func() (err error) {
		r, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, "[::1]:53")
		return err
	}); err != nil || !hasRR(r, "64:ff9b:1::c633:6402") {
		t.Errorf("AAAA v4.example. on port 53: %v %v", err, r)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil || !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Errorf("want coredns running as uid 65534 (%v):\n%s", err, status)
	}
}
