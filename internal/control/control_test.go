package control_test

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/control/controltest"
)

func start(t *testing.T, b control.Backend) *control.Client {
	t.Helper()
	s, err := control.NewServer("127.0.0.1:0", b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return control.NewClient(s.Addr())
}

func TestHealthz(t *testing.T) {
	b := &controltest.Backend{}
	c := start(t, b)
	ctx := context.Background()
	if err := c.Healthy(ctx); err != nil {
		t.Errorf("healthy: %v", err)
	}
	b.SetHealthy(false)
	if err := c.Healthy(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("unhealthy: %v", err)
	}
}

func TestSessionsAndFilter(t *testing.T) {
	c := start(t, &controltest.Backend{})
	ctx := context.Background()
	all, err := c.Sessions(ctx, "")
	if err != nil || len(all) != 2 || all[0].IPv4Src != netip.MustParseAddrPort("203.0.113.1:40000") || all[0].ExpiresIn != 7440 {
		t.Fatalf("%v %+v", err, all)
	}
	udp, err := c.Sessions(ctx, "udp")
	if err != nil || len(udp) != 1 || udp[0].Proto != "udp" {
		t.Errorf("%v %+v", err, udp)
	}
	if _, err := c.Sessions(ctx, "sctp"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("bad proto: %v", err)
	}
	bib, err := c.BIB(ctx, "")
	if err != nil || bib == nil || len(bib) != 0 {
		t.Errorf("empty BIB must decode as an empty list: %v %#v", err, bib)
	}
}

func TestStaticAddRemove(t *testing.T) {
	b := &controltest.Backend{}
	c := start(t, b)
	ctx := context.Background()
	e := control.StaticEntry{Proto: "tcp", IPv6: netip.MustParseAddrPort("[2001:db8:10::80]:80"), IPv4: netip.MustParseAddrPort("203.0.113.1:8080")}
	if err := c.AddStatic(ctx, e); err != nil {
		t.Fatal(err)
	}
	if bib, _ := c.BIB(ctx, ""); len(bib) != 1 || !bib[0].Static || bib[0].IPv4 != e.IPv4 {
		t.Errorf("after add: %+v", bib)
	}
	if err := c.AddStatic(ctx, control.StaticEntry{Proto: "gre"}); err == nil || !strings.Contains(err.Error(), "bad proto") {
		t.Errorf("backend error not passed on: %v", err)
	}
	if err := c.RemoveStatic(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveStatic(ctx, e); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("second remove: %v", err)
	}
}

// Reads never change state: the state-changing paths refuse GET, and the
// read paths refuse POST.
func TestMethods(t *testing.T) {
	b := &controltest.Backend{}
	c := start(t, b)
	for _, tc := range []struct{ method, path string }{
		{"GET", control.PathReload}, {"GET", control.PathStatic}, {"POST", control.PathSessions}, {"DELETE", control.PathBIB}, {"POST", control.PathHealthz}, {"PUT", control.PathStatic},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+c.Addr+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %s", tc.method, tc.path, resp.Status)
		}
	}
	if b.Reloads() != 0 {
		t.Error("a GET reloaded")
	}
	// A body with an unknown field is refused, not half-read.
	resp, err := http.Post("http://"+c.Addr+control.PathStatic, "application/json", strings.NewReader(`{"proto":"tcp","colour":"red"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || b.StaticCount() != 0 {
		t.Errorf("unknown field: %s, %d entries", resp.Status, b.StaticCount())
	}
}

func TestReload(t *testing.T) {
	b := &controltest.Backend{}
	c := start(t, b)
	if err := c.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "nat64.toml:3") {
		t.Errorf("a failed reload must say why: %v", err)
	}
	b.SetReloadOK(true)
	if err := c.Reload(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestMetrics(t *testing.T) {
	c := start(t, &controltest.Backend{})
	resp, err := http.Get("http://" + c.Addr + control.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`nat64ctl_packets_translated_total{direction="6to4",proto="tcp"} 10`,
		`nat64ctl_bytes_translated_total{direction="4to6",proto="tcp"} 900`,
		`nat64ctl_drops_total{reason="no_binding"} 3`,
		`nat64ctl_sessions{proto="udp"} 1`,
		`nat64ctl_bib_entries{proto="tcp"} 1`,
		`nat64ctl_pool4_ports 64512`,
		`nat64ctl_healthy 1`,
		`nat64ctl_tun_batch_size_bucket{le="8"} 7`,
		`nat64ctl_tun_batch_size_count 8`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestMetricsICMPErrorsAndFragments(t *testing.T) {
	c := start(t, &controltest.Backend{})
	resp, err := http.Get("http://" + c.Addr + control.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"nat64ctl_icmp_errors_sent_total 4", "nat64ctl_icmp_errors_suppressed_total 2",
		"nat64ctl_fragments_held_total 3", "nat64ctl_reassembled_total 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
