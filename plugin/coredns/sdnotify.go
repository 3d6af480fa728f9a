package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/coredns/caddy"

	"github.com/nat64kit/nat64kit/internal/sdnotify"
)

// systemd's notify protocol for deploy/systemd/coredns-nat64kit.service
// (Type=notify): READY=1 once every server of the first Corefile listens,
// STOPPING=1 on SIGTERM or SIGINT before the servers shut down, and
// WATCHDOG=1 from the process while it runs. Outside systemd (no
// NOTIFY_SOCKET) nothing is sent.
//
// caddy purges the event hooks on every SIGUSR1 reload (plugins register
// theirs again while the new Corefile is set up), so the shutdown hook
// only covers a process that was never reloaded; OnProcessExit, which
// survives reloads but runs after the shutdown callbacks, covers the rest.
func init() {
	var ready, stopping sync.Once
	log := slog.Default()
	caddy.RegisterEventHook("nat64kit-sdnotify", func(ev caddy.EventName, _ any) error {
		switch ev {
		case caddy.InstanceStartupEvent:
			ready.Do(func() {
				sdnotify.Notify(log, sdnotify.Ready)
				// The watchdog is the process's own liveness: CoreDNS
				// has no single health state to consult here (the
				// health plugin is per Corefile and optional).
				sdnotify.StartWatchdog(context.Background(), log, func() bool { return true })
			})
		case caddy.ShutdownEvent:
			stopping.Do(func() { sdnotify.Notify(log, sdnotify.Stopping) })
		}
		return nil
	})
	caddy.OnProcessExit = append(caddy.OnProcessExit, func() {
		stopping.Do(func() { sdnotify.Notify(log, sdnotify.Stopping) })
	})
}
