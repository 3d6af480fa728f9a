package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/nat64kit/nat64kit/internal/daemon"
)

func runCmd() *command {
	fs := newFlags("run")
	config := fs.String("c", defaultConfig, "nat64.toml")
	instance := fs.String("instance", "", "the instance to run (default: the only one in the file)")
	keep := fs.Bool("keep-routes", false, "leave routes in place on exit")
	queues := fs.Int("queues", 0, "TUN queues, one reader each (default: one per CPU)")
	pipeline := fs.Bool("pipeline", false, "per queue, one goroutine reads and translates while another writes")
	mapping := fs.Bool("mapping-log", false, "log every BIB entry and session created and removed (RFC 6888)")
	verbose := fs.Bool("v", false, "debug logging")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until exit (for performance work)")
	c := &command{
		name:  "run",
		usage: "nat64ctl run [-c nat64.toml] [--instance NAME] [--keep-routes] [--queues N] [--pipeline] [--mapping-log]",
		short: "run the translator daemon: TUN device, netlink routes, translation",
		long: `run creates (or adopts) the instance's TUN device, installs its routes through
netlink (route protocol 64; leftovers of an earlier run are repaired, routes of
other owners never touched) and translates between the IPv6 and IPv4 sides
(RFC 6146 + RFC 7915) until SIGTERM or SIGINT, when it removes what it
installed. SIGHUP, or "nat64ctl reload", re-reads nat64.toml: pool4 and static
BIB changes apply without dropping sessions that stay valid; an invalid file is
refused and the running configuration kept. The instance's control address
serves /healthz, /metrics and the JSON API.`,
		flags:   fs,
		maxArgs: 0,
	}
	c.exec = func(e *env, _ []string) error {
		level := slog.LevelInfo
		if *verbose {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return problem("%v", err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return problem("%v", err)
			}
			defer pprof.StopCPUProfile()
		}
		d, err := daemon.Start(daemon.Options{
			ConfigPath: *config,
			Instance:   *instance,
			KeepRoutes: *keep,
			Queues:     *queues,
			Pipeline:   *pipeline,
			MappingLog: *mapping,
			Log:        log,
		})
		if err != nil {
			return problem("%v", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		reload := make(chan struct{}, 1)
		go func() {
			for range hup {
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}()
		if err := runNotified(ctx, d, reload, log); err != nil {
			return problem("%v", err)
		}
		return nil
	}
	return c
}
