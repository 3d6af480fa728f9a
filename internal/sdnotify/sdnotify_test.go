package sdnotify

import (
	"context"
	"testing"
	"time"
)

// The loop pings on each tick while healthy and withholds the ping while
// not. The tick channel is unbuffered, so each send returns only once the
// loop took the tick, and the previous one is fully handled.
func TestLoopPingsOnlyWhileHealthy(t *testing.T) {
	health := []bool{true, false, false, true}
	i := 0
	var sent []string
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop(ctx, tick, func() bool { h := health[i]; i++; return h }, func(s string) { sent = append(sent, s) }, nil)
	}()
	for range health {
		tick <- time.Time{}
	}
	cancel()
	<-done
	if i != len(health) || len(sent) != 2 || sent[0] != Watchdog || sent[1] != Watchdog {
		t.Errorf("health %v over %d ticks: sent %q, want two WATCHDOG=1", health, i, sent)
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"30000000", "", 15 * time.Second},
		{"garbage", "", 0},
		{"30000000", "1", 0}, // meant for another process (pid 1 is never the test)
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		if got := WatchdogInterval(); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}

// Without a watchdog, StartWatchdog starts nothing and its wait returns.
func TestStartWatchdogOff(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	called := false
	StartWatchdog(context.Background(), nil, func() bool { called = true; return true })()
	if called {
		t.Error("health consulted without a watchdog")
	}
}

// Outside systemd Notify does nothing, and an unreachable socket is only
// logged: the service must not stop because its manager went away.
func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	Notify(nil, Ready)
	t.Setenv("NOTIFY_SOCKET", "/nonexistent/notify")
	Notify(nil, Ready)
}
