package cli

import (
	"context"
	"log/slog"

	"github.com/nat64kit/nat64kit/internal/daemon"
	"github.com/nat64kit/nat64kit/internal/sdnotify"
)

// runNotified is d.Run under systemd's notify protocol (deploy/systemd,
// Type=notify). It is called once daemon.Start has returned, that is once
// the TUN is open and the routes are installed, so READY=1 means
// "translating": a unit ordered After= this one can rely on the routes.
// When ctx ends (SIGTERM), STOPPING=1 goes out before the daemon starts
// tearing down. WATCHDOG=1 is sent while d.Healthy(). Outside systemd
// (no NOTIFY_SOCKET) it is just d.Run.
func runNotified(ctx context.Context, d *daemon.Daemon, reload <-chan struct{}, log *slog.Logger) error {
	sdnotify.Notify(log, sdnotify.Ready)
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	waitWatchdog := sdnotify.StartWatchdog(wdCtx, log, d.Healthy)
	defer func() {
		stopWatchdog()
		waitWatchdog()
	}()

	// The daemon sees ctx end only after STOPPING=1 is out.
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			sdnotify.Notify(log, sdnotify.Stopping)
			cancel()
		case <-runCtx.Done():
		}
	}()
	return d.Run(runCtx, reload)
}
