package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/daemon"
	"github.com/nat64kit/nat64kit/nat64conf"
)

func runCmd() *cobra.Command {
	var opts daemon.Options
	var verbose bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "run the translator daemon: TUN device, netlink routes, translation",
		Long: `run creates (or adopts) the instance's TUN device, installs its routes through
netlink (route protocol 64; leftovers of an earlier run are repaired, routes of
other owners never touched) and translates between the IPv6 and IPv4 sides
(RFC 6146 + RFC 7915) until SIGTERM or SIGINT, when it removes what it
installed. SIGHUP, or "nat64ctl reload", re-reads nat64.toml: pool4 and static
BIB changes apply without dropping sessions that stay valid; an invalid file is
refused and the running configuration kept. The instance's control address
serves /healthz, /metrics and the JSON API.`,
		Example: `  nat64ctl run -c /etc/nat64kit/nat64.toml --instance nat64-a
  nat64ctl run --instance nat64-a --queues 2 --mapping-log`,
		Args: noArgs,
	}
	sel := addInstanceFlags(cmd, false)
	fl := cmd.Flags()
	fl.BoolVar(&opts.KeepRoutes, "keep-routes", false, "leave routes in place on exit")
	fl.IntVar(&opts.Queues, "queues", 0, "TUN queues, one reader each (default: one per CPU)")
	fl.BoolVar(&opts.Pipeline, "pipeline", false, "per queue, one goroutine reads and translates while another writes")
	fl.BoolVar(&opts.MappingLog, "mapping-log", false, "log every BIB entry and session created and removed (RFC 6888)")
	var fastMode string
	fl.StringVar(&fastMode, "fastpath", "", `kernel fast path: "auto", "on" or "off" (default: the instance's fastpath setting, itself auto by default)`)
	fl.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until exit (for performance work)")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		level := slog.LevelInfo
		if verbose {
			level = slog.LevelDebug
		}
		opts.Log = slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		opts.ConfigPath, opts.Instance = sel.config, sel.instance
		if fastMode != "" {
			m, err := nat64conf.ParseFastPathMode(fastMode)
			if err != nil {
				return usageErr("--fastpath %v", err)
			}
			opts.FastPath = m
		}
		if cpuProfile != "" {
			f, err := os.Create(cpuProfile)
			if err != nil {
				return problem("%v", err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return problem("%v", err)
			}
			defer pprof.StopCPUProfile()
		}
		d, err := daemon.Start(opts)
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
		if err := runNotified(ctx, d, reload, opts.Log); err != nil {
			return problem("%v", err)
		}
		return nil
	}
	return cmd
}
