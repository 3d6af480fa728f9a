package dns64

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
