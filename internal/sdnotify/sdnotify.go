// Package sdnotify is the systemd notify protocol (sd_notify(3)) as both
// nat64ctl and our CoreDNS build speak it under Type=notify units: READY=1
// once the service does its job, STOPPING=1 when it begins to shut down,
// and WATCHDOG=1 at half the WatchdogSec interval while it is healthy.
// Without NOTIFY_SOCKET (not under systemd) every call does nothing.
package sdnotify

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The states sent.
const (
	Ready    = daemon.SdNotifyReady
	Stopping = daemon.SdNotifyStopping
	Watchdog = daemon.SdNotifyWatchdog
)

// Notify sends one state to the service manager. Sending is best effort:
// a manager that went away must not stop the service, so errors are only
// logged.
func Notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil && log != nil {
		log.Warn("sd_notify", "state", state, "err", err)
	}
}

// WatchdogInterval is how often to send WATCHDOG=1: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises, or 0 when the unit has no watchdog
// (or WATCHDOG_PID names another process).
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

// StartWatchdog sends WATCHDOG=1 every WatchdogInterval while healthy says
// so, until ctx ends; the function it returns waits for that. Without a
// watchdog it starts nothing.
func StartWatchdog(ctx context.Context, log *slog.Logger, healthy func() bool) (wait func()) {
	every := WatchdogInterval()
	if every <= 0 {
		return func() {}
	}
	t := time.NewTicker(every)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.Stop()
		Loop(ctx, t.C, healthy, func(s string) { Notify(log, s) }, log)
	}()
	return func() { <-done }
}

// Loop is the watchdog's body, with the ticks and the sender given so a
// test drives it tick by tick: on each tick it sends WATCHDOG=1 if healthy
// reports true. An unhealthy service sends nothing, and systemd restarts
// it once WatchdogSec passes without a ping.
func Loop(ctx context.Context, tick <-chan time.Time, healthy func() bool, send func(string), log *slog.Logger) {
	wasHealthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			ok := healthy()
			if ok {
				send(Watchdog)
			} else if wasHealthy && log != nil {
				log.Warn("unhealthy: watchdog pings withheld, systemd will restart the service")
			}
			wasHealthy = ok
		}
	}
}
