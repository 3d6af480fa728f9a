package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/fastpath"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/state"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// What each fastpath setting does when the kernel refuses the program:
// auto goes on without it and says why in one log line, on fails start-up
// with the same reason, off never tries.
func TestFastPathModesWhenTheKernelRefuses(t *testing.T) {
	refusal := errors.New("loading a BPF program is not permitted (CAP_BPF and CAP_NET_ADMIN are needed): operation not permitted")
	tries := 0
	old := loadFast
	loadFast = func(*nat64conf.Instance) (*fastpath.FastPath, error) { tries++; return nil, refusal }
	t.Cleanup(func() { loadFast = old })
	in := &nat64conf.Instance{Name: "nat64-t"}

	for _, tc := range []struct {
		mode      nat64conf.FastPathMode
		wantErr   bool
		wantTries int
		wantLog   string
	}{
		{nat64conf.FastPathAuto, false, 1, refusal.Error()},
		{nat64conf.FastPathOn, true, 1, ""},
		{nat64conf.FastPathOff, false, 0, ""},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			tries = 0
			var logs bytes.Buffer
			tbl, err := state.New(&state.Config{
				Prefix:      nat64.MustPrefix("64:ff9b:1::/96"),
				Pool4:       []nat64.Pool4Range{{Prefix: netip.MustParsePrefix("203.0.113.1/32"), FirstPort: 1024, LastPort: 65535}},
				Timeouts:    nat64.Timeouts{UDP: nat64.DefaultUDPTimeout, TCPEstablished: nat64.DefaultTCPEstablishedTimeout, TCPTransitory: nat64.DefaultTCPTransitoryTimeout, ICMP: nat64.DefaultICMPTimeout},
				MaxSessions: 16, MaxSessionsPerSource: 16,
			}, state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := &Daemon{log: slog.New(slog.NewTextHandler(&logs, nil)), table: tbl}
			err = d.startFastPath(in, tc.mode)
			if tc.wantErr != (err != nil) || err != nil && !strings.Contains(err.Error(), refusal.Error()) {
				t.Fatalf("start: %v (want an error: %v, naming the reason)", err, tc.wantErr)
			}
			if tries != tc.wantTries {
				t.Errorf("%d loads tried, want %d", tries, tc.wantTries)
			}
			lines := strings.Count(logs.String(), "\n")
			if tc.wantLog != "" && (lines != 1 || !strings.Contains(logs.String(), tc.wantLog)) {
				t.Errorf("want one log line with the reason, got:\n%s", logs.String())
			}
			if tc.wantLog == "" && lines != 0 {
				t.Errorf("want no log, got:\n%s", logs.String())
			}
			if err == nil && (d.fast.fp != nil || d.fast.reason == "") {
				t.Errorf("not loaded, yet fast path %+v", d.fast)
			}
		})
	}
}
