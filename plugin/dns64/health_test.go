package dns64

import (
	"cmp"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// healthz is a /healthz endpoint whose answer the test switches.
type healthz struct {
	srv  *httptest.Server
	up   atomic.Bool
	hits atomic.Int32
}

func newHealthz(t *testing.T) *healthz {
	h := &healthz{}
	h.up.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		if r.URL.Path != "/healthz" || !h.up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *healthz) addr() string { return strings.TrimPrefix(h.srv.URL, "http://") }

func instancesTOML(controls ...string) string {
	var b strings.Builder
	for i, c := range controls {
		b.WriteString("[[instance]]\nname = \"nat64-" + string(rune('a'+i)) + "\"\n")
		b.WriteString("prefix = \"2001:db8:6" + string(rune('4'+i)) + "::/96\"\n")
		b.WriteString("pool4 = [\"203.0.113." + string(rune('1'+i)) + "/32\"]\n")
		if c != "" {
			b.WriteString("control = \"" + c + "\"\n")
		}
	}
	return b.String()
}

// waitFor polls cond for at most 10 s: the health loop runs on its own
// clock, so the test waits for the state, not for a duration.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealthFailover(t *testing.T) {
	a, b := newHealthz(t), newHealthz(t)
	file := writeFile(t, t.TempDir(), "nat64.toml", instancesTOML(a.addr(), b.addr()))
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 {\ninstances "+file+"\nhealth_interval 50ms\nhealth_timeout 40ms\n}", z)
	if d.Ready() {
		t.Fatal("ready before the first health round")
	}
	if err := d.OnStartup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.OnShutdown() })
	waitFor(t, "ready", d.Ready)

	prefixFor := func(client string) string {
		got := aaaaStrings(ask(t, d, client, "v4.example.org", dns.TypeAAAA))
		if len(got) == 0 {
			t.Fatalf("no synthesis for %s", client)
		}
		return got[0][:14]
	}
	clients := []string{}
	before := map[string]string{}
	for i := 0; i < 64; i++ {
		c := "2001:db8:1::" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		clients = append(clients, c)
		before[c] = prefixFor(c)
	}

	a.up.Store(false)
	waitFor(t, "nat64-a unhealthy", func() bool { return !d.set.Load().all[0].healthy.Load() })
	for _, c := range clients {
		got := prefixFor(c)
		if got != "2001:db8:65::c" {
			t.Fatalf("client %s still on the dead instance: %s", c, got)
		}
		if before[c] == "2001:db8:65::c" && got != before[c] {
			t.Fatalf("client %s of the healthy instance moved", c)
		}
	}

	b.up.Store(false)
	waitFor(t, "nat64-b unhealthy", func() bool { return !d.set.Load().all[1].healthy.Load() })
	fb := counterValue(fallbacks.WithLabelValues(""))
	prefixFor(clients[0])
	if got := counterValue(fallbacks.WithLabelValues("")); got != fb+1 {
		t.Errorf("fallback counter %v -> %v", fb, got)
	}

	a.up.Store(true)
	b.up.Store(true)
	waitFor(t, "both healthy", func() bool { return d.set.Load().anyHealthy() && d.set.Load().all[0].healthy.Load() })
	for _, c := range clients {
		if got := prefixFor(c); got != before[c] {
			t.Fatalf("client %s did not return to its instance: %s, was %s", c, got, before[c])
		}
	}

	if err := d.OnShutdown(); err != nil {
		t.Fatal(err)
	}
	hits := a.hits.Load()
	time.Sleep(150 * time.Millisecond)
	if a.hits.Load() != hits {
		t.Error("health checks continue after OnShutdown")
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "nat64.toml", instancesTOML(""))
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 {\ninstances "+file+"\nreload 20ms\n}", z)
	if err := d.OnStartup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.OnShutdown() })
	first := func() string { return aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA))[0] }
	if got := first(); got != "2001:db8:64::c633:6402" {
		t.Fatalf("before reload: %s", got)
	}

	// A bad file is ignored and the old instances kept.
	writeFile(t, dir, "nat64.toml", "[[instance]]\nname = \"broken\"\nprefix = \"2001:db8:64::/95\"\n")
	errs := counterValue(reloads.WithLabelValues("error"))
	waitFor(t, "bad file noticed", func() bool { return counterValue(reloads.WithLabelValues("error")) > errs })
	if got := first(); got != "2001:db8:64::c633:6402" {
		t.Fatalf("after a bad file: %s", got)
	}

	// A good new file replaces them, without restart.
	tmp := filepath.Join(dir, "next.toml")
	os.WriteFile(tmp, []byte(strings.ReplaceAll(instancesTOML(""), "2001:db8:64::", "2001:db8:99::")), 0o644)
	os.Rename(tmp, file)
	waitFor(t, "reload", func() bool { return d.set.Load().all[0].prefixS == "2001:db8:99::/96" })
	if got := first(); got != "2001:db8:99::c633:6402" {
		t.Fatalf("after reload: %s", got)
	}
}

func TestReadyWithoutControl(t *testing.T) {
	d, err := parse(caddy.NewTestController("dns", "dns64 2001:db8:64::/96"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Ready() {
		t.Fatal("ready before OnStartup")
	}
	d.OnStartup()
	defer d.OnShutdown()
	waitFor(t, "ready", d.Ready)
}

// counterValue reads a counter without the testutil package (whose
// dependencies are not in go.sum).
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// scriptedProber answers probes with the result the test set for each
// control address.
type scriptedProber struct {
	mu sync.Mutex
	up map[string]bool
}

func (p *scriptedProber) set(control string, up bool) {
	p.mu.Lock()
	p.up[control] = up
	p.mu.Unlock()
}

func (p *scriptedProber) probe(_ context.Context, control string) bool {
	p.mu.Lock()
	up := p.up[control]
	p.mu.Unlock()
	return up
}

// TestHealthMaxFails: an instance leaves the rotation only after max_fails
// consecutive failed probes, and comes back after one success; max_fails 0
// never takes it out. Rounds are run directly, with an injected prober.
func TestHealthMaxFails(t *testing.T) {
	for _, tc := range []struct {
		opt      string
		maxFails int // 0: never out
	}{
		{"", 2}, {"max_fails 1", 1}, {"max_fails 3", 3}, {"max_fails 0", 0},
	} {
		t.Run(cmp.Or(tc.opt, "default"), func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "nat64.toml", instancesTOML("192.0.2.1:8080", "192.0.2.2:8080"))
			d := newPlugin(t, "dns64 {\ninstances "+file+"\n"+tc.opt+"\n}", newFakeZone(t, zoneRecords...))
			p := &scriptedProber{up: map[string]bool{"192.0.2.1:8080": true, "192.0.2.2:8080": true}}
			ctx := t.Context()
			a := d.set.Load().all[0]
			failed := counterValue(healthChecksFailed.WithLabelValues(a.name))

			d.healthRound(ctx, p.probe)
			if !a.healthy.Load() {
				t.Fatal("healthy instance out of rotation")
			}
			p.set("192.0.2.1:8080", false)
			rounds := tc.maxFails
			if rounds == 0 {
				rounds = 10
			}
			for i := 1; i <= rounds; i++ {
				d.healthRound(ctx, p.probe)
				wantHealthy := tc.maxFails == 0 || i < tc.maxFails
				if a.healthy.Load() != wantHealthy {
					t.Fatalf("after %d failed probes: healthy %v, want %v", i, a.healthy.Load(), wantHealthy)
				}
				if !d.set.Load().all[1].healthy.Load() {
					t.Fatal("the other instance left the rotation")
				}
			}
			if got := counterValue(healthChecksFailed.WithLabelValues(a.name)) - failed; got != float64(rounds) {
				t.Errorf("health_checks_failed_total grew by %v, want %d", got, rounds)
			}
			// One success brings it back, and resets the count: a single
			// later failure does not eject it again (unless max_fails 1).
			p.set("192.0.2.1:8080", true)
			d.healthRound(ctx, p.probe)
			if !a.healthy.Load() {
				t.Fatal("not back after one successful probe")
			}
			p.set("192.0.2.1:8080", false)
			d.healthRound(ctx, p.probe)
			if want := tc.maxFails != 1; a.healthy.Load() != want {
				t.Fatalf("one failure after a success: healthy %v, want %v", a.healthy.Load(), want)
			}
		})
	}
}

// TestHealthLoopMaxFails drives the real health loop with the injected
// prober: rounds are triggered through healthNow (the ticker is an hour
// away) and followed through the loop's round hook, no clock involved.
func TestHealthLoopMaxFails(t *testing.T) {
	file := writeFile(t, t.TempDir(), "nat64.toml", instancesTOML("192.0.2.1:8080"))
	d := newPlugin(t, "dns64 {\ninstances "+file+"\nhealth_interval 1h\nmax_fails 2\n}", newFakeZone(t, zoneRecords...))
	p := &scriptedProber{up: map[string]bool{"192.0.2.1:8080": true}}
	d.prober = p.probe
	rounds := make(chan struct{})
	d.roundDone = func() { rounds <- struct{}{} }
	if err := d.OnStartup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		go func() { // let a round that ends now report
			for range rounds {
			}
		}()
		d.OnShutdown()
		close(rounds)
	})
	a := d.set.Load().all[0]
	waitRound := func() {
		t.Helper()
		select {
		case <-rounds:
		case <-time.After(10 * time.Second):
			t.Fatal("no health round")
		}
	}
	waitRound() // round 0, at start-up
	if !d.Ready() || !a.healthy.Load() {
		t.Fatal("not ready and healthy after the first round")
	}
	for i, tc := range []struct {
		up, want bool
	}{{false, true}, {false, false}, {false, false}, {true, true}, {false, true}, {true, true}} {
		p.set("192.0.2.1:8080", tc.up)
		d.healthNow <- struct{}{}
		waitRound()
		if a.healthy.Load() != tc.want {
			t.Fatalf("round %d (probe up %v): healthy %v, want %v", i+1, tc.up, a.healthy.Load(), tc.want)
		}
	}
}

// TestMaxFailsAcrossReload: a reload keeps an unchanged instance's count
// of failed probes, so reloading does not reset the hysteresis.
func TestMaxFailsAcrossReload(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "nat64.toml", instancesTOML("192.0.2.1:8080"))
	d := newPlugin(t, "dns64 {\ninstances "+file+"\nmax_fails 2\n}", newFakeZone(t, zoneRecords...))
	p := &scriptedProber{up: map[string]bool{"192.0.2.1:8080": false}}
	d.healthRound(t.Context(), p.probe)
	if !d.set.Load().all[0].healthy.Load() {
		t.Fatal("out after one failed probe")
	}
	writeFile(t, dir, "nat64.toml", instancesTOML("192.0.2.1:8080")+"\n# touched\n")
	if !d.reloadIfChanged() {
		t.Fatal("no reload")
	}
	d.healthRound(t.Context(), p.probe)
	if d.set.Load().all[0].healthy.Load() {
		t.Fatal("still in rotation after two failed probes, one before the reload")
	}
}
