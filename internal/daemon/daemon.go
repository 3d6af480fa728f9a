// Package daemon is `nat64ctl run`: one NAT64 instance translating between
// its TUN device and the kernel, with netlink-managed routes, the control
// API, expiry, reload and mapping logs. It joins the packages beside it:
// tunio (packet I/O), routes (netlink), state (RFC 6146), xlat (RFC 7915)
// and control (HTTP).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/routes"
	"github.com/nat64kit/nat64kit/internal/state"
	"github.com/nat64kit/nat64kit/internal/tunio"
	"github.com/nat64kit/nat64kit/internal/xlat"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// Options say which instance to run and how.
type Options struct {
	ConfigPath string
	Instance   string // "" when the file has one instance
	// KeepRoutes leaves routes in place on exit (the TUN device too, when
	// it was adopted rather than created).
	KeepRoutes bool
	// Queues is the number of TUN queues, one reader goroutine each;
	// 0 means one per CPU.
	Queues int
	// Pipeline splits each queue's work over two goroutines: one reads and
	// translates, one writes (see worker).
	Pipeline bool
	// MappingLog logs every BIB entry and session created and removed
	// (RFC 6888 section 4), for abuse tracing.
	MappingLog bool
	// FastPath overrides the instance's fastpath setting ("" keeps it).
	FastPath nat64conf.FastPathMode
	// ExpireEvery is how often expiry runs (default 1 s).
	ExpireEvery time.Duration
	Log         *slog.Logger
	// Devices replaces the kernel TUN (tests); routes are then not touched.
	Devices []tunio.Device
	// Clock replaces the monotonic clock, in nanoseconds (tests).
	Clock func() int64
}

// Daemon is a running instance.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	inst    atomic.Pointer[nat64conf.Instance]
	table   *state.Table
	workers []*worker
	routes  *routes.Manager
	desired routes.Desired
	control *control.Server
	fast    *fastPath
	started time.Time
	healthy atomic.Bool
	// running counts the workers still reading; lastTick is when Run's
	// loop last turned (wall-clock nanoseconds since clockT0, 0 before
	// Run). Healthy reads both.
	running  atomic.Int32
	lastTick atomic.Int64

	// expirer builds the ICMP errors for held SYNs that time out; expireMu
	// guards its counters, which Stats reads from another goroutine.
	expirer   *xlat.Translator
	expireOut *xlat.Output
	expireMu  sync.Mutex

	stopOnce sync.Once
	stopErr  error
	reloadMu sync.Mutex
	wg       sync.WaitGroup
	clockT0  time.Time
}

// Load reads the config and picks the instance; it touches nothing, so a
// bad file stops the daemon before it installs anything.
func Load(path, name string) (*nat64conf.Instance, error) {
	cfg, err := nat64conf.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg.Pick(name)
}

// Start brings the instance up: state, TUN queues, routes, control API,
// workers and expiry. On error everything it did is undone.
func Start(opts Options) (d *Daemon, err error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.ExpireEvery == 0 {
		opts.ExpireEvery = time.Second
	}
	in, err := Load(opts.ConfigPath, opts.Instance)
	if err != nil {
		return nil, err
	}
	d = &Daemon{opts: opts, log: opts.Log.With("instance", in.Name), started: time.Now(), clockT0: time.Now()}
	d.inst.Store(in)

	sopts := state.Options{}
	if opts.MappingLog {
		sopts.OnMapping = d.logMapping
	}
	if d.table, err = state.New(stateConfig(in), sopts); err != nil {
		return nil, err
	}

	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	devs := opts.Devices
	if devs == nil {
		queues := opts.Queues
		if queues <= 0 {
			queues = runtime.NumCPU()
		}
		if devs, err = tunio.Open(in.Name, in.MTU, queues); err != nil {
			return nil, err
		}
		if d.desired, err = routes.ForTranslator(in); err != nil {
			closeAll(devs)
			return nil, err
		}
		d.routes = routes.NewManager(nil)
		diff, rerr := d.routes.Reconcile(d.desired)
		// The cleanups run after a `return nil, err` has set d to nil, so
		// they capture what they need rather than d.
		m, dev := d.routes, d.desired.Device
		cleanups = append(cleanups, func() { m.Flush(dev) })
		if !diff.Empty() {
			d.log.Info("routes reconciled", "changes", diff.String())
		}
		if rerr != nil {
			closeAll(devs)
			return nil, fmt.Errorf("routes: %w", rerr)
		}
	}
	cleanups = append(cleanups, func() { closeAll(devs) })
	if opts.Devices == nil {
		mode := in.FastPath
		if opts.FastPath != "" {
			mode = opts.FastPath
		}
		if err = d.startFastPath(in, mode); err != nil {
			return nil, err
		}
		fast, table := d.fast, d.table
		cleanups = append(cleanups, func() { fast.stop(table) })
	} else {
		d.fast = &fastPath{mode: nat64conf.FastPathOff, reason: "test devices"}
	}

	xc := xlatConfig(in) // for the workers and the expiry
	d.expirer, d.expireOut = xlat.New(xc, d.table), xlat.NewOutput()
	spare := max(in.MTU, nat64.MinIPv6MTU) + tunio.WriteOffset + 64
	for _, dev := range devs {
		d.workers = append(d.workers, newWorker(dev, xlat.New(xc, d.table), spare, d.now, d.log, opts.Pipeline))
	}

	if in.Control != "" {
		d.control, err = control.NewServer(in.Control, backend{d}, prometheus.NewRegistry(), d.log)
		if err != nil {
			return nil, err
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.control.Serve(); err != nil {
				d.log.Error("control API", "err", err)
			}
		}()
		d.log.Info("control API", "addr", d.control.Addr())
	}

	for _, w := range d.workers {
		d.wg.Add(1)
		d.running.Add(1)
		go func() {
			defer d.wg.Done()
			defer d.running.Add(-1)
			w.run()
		}()
	}
	d.healthy.Store(true)
	d.log.Info("translating", "prefix", in.Prefix.String(), "pool4", pool4String(in), "queues", len(d.workers), "mtu", in.MTU, "fastpath", d.fast.fp != nil)
	return d, nil
}

// now is the monotonic clock the state table runs on.
func (d *Daemon) now() int64 {
	if d.opts.Clock != nil {
		return d.opts.Clock()
	}
	return int64(time.Since(d.clockT0))
}

// Run serves until ctx ends, expiring state every ExpireEvery and
// reloading on every value from reload.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	tick := time.NewTicker(d.opts.ExpireEvery)
	defer tick.Stop()
	d.markTick()
	for {
		select {
		case <-ctx.Done():
			return d.Stop()
		case <-tick.C:
			d.expire()
			d.markTick()
		case <-reload:
			if err := d.Reload(); err != nil {
				d.log.Error("reload refused; the running configuration stays", "err", err)
			}
		}
	}
}

func (d *Daemon) markTick() { d.lastTick.Store(max(int64(time.Since(d.clockT0)), 1)) }

// stallAfter is how many missed expiry rounds make Run's loop count as
// stuck (a deadlock on the state table stops expiry first).
const stallAfter = 10

// Healthy reports whether the instance is translating: started and not
// stopping, every TUN worker still reading, and, once Run is serving, its
// expiry loop turning. It backs /healthz (what dns64 polls) and the
// systemd watchdog, so a wedged translator is both taken out of DNS64 and
// restarted.
func (d *Daemon) Healthy() bool {
	if !d.healthy.Load() || int(d.running.Load()) != len(d.workers) {
		return false
	}
	last := d.lastTick.Load()
	if last == 0 {
		return true // Run has not started: nothing to measure yet
	}
	stall := max(stallAfter*d.opts.ExpireEvery, 10*time.Second)
	return time.Duration(int64(time.Since(d.clockT0))-last) < stall
}

// expire runs the state table's timers; held SYNs whose 6 s ran out are
// answered with ICMP Port Unreachable (RFC 6146 section 3.5.2.2) through
// the first worker's device.
func (d *Daemon) expire() {
	d.expireMu.Lock()
	defer d.expireMu.Unlock()
	w := d.workers[0]
	now := d.now()
	d.expirer.ExpireFragments(now) // shares the workers' reassembly
	d.table.Expire(now, func(pkt []byte) {
		if d.expirer.PortUnreachable(pkt, now, d.expireOut) {
			for _, p := range d.expireOut.List() {
				w.writeOne(p)
			}
		}
	})
}

// Stop closes the TUN queues, waits for the workers and the control API,
// and removes the routes unless KeepRoutes.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() { d.stopErr = d.stop() })
	return d.stopErr
}

func (d *Daemon) stop() error {
	d.healthy.Store(false)
	var errs []error
	if d.control != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		errs = append(errs, d.control.Shutdown(ctx))
		cancel()
	}
	// The program goes first: no packet is translated in the kernel for a
	// session the stopping table no longer answers for.
	errs = append(errs, d.fast.stop(d.table))
	for _, w := range d.workers {
		errs = append(errs, w.dev.Close())
	}
	d.wg.Wait()
	if d.routes != nil && !d.opts.KeepRoutes {
		if _, err := d.routes.Flush(d.desired.Device); err != nil {
			errs = append(errs, err)
		}
	}
	d.log.Info("stopped")
	return errors.Join(errs...)
}

// Reload re-reads the config: pool4 and static BIB changes apply to the
// running table, keeping sessions whose addresses stay valid. An invalid
// file, or a change that needs a restart, is refused whole.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	old := d.inst.Load()
	in, err := Load(d.opts.ConfigPath, old.Name)
	if err != nil {
		return err
	}
	if in.Prefix != old.Prefix || in.MTU != old.MTU || in.Control != old.Control {
		return fmt.Errorf("%s: prefix, mtu and control of instance %q change only with a restart", d.opts.ConfigPath, in.Name)
	}
	// The translators hold these from Start; a reload that would silently
	// keep the old values is refused instead.
	// (the fast path's program too).
	if in.LowestIPv6MTU != old.LowestIPv6MTU || in.IPv4MTU != old.IPv4MTU || in.ICMPErrorRate != old.ICMPErrorRate || in.ICMPErrorBurst != old.ICMPErrorBurst || in.FragmentTimeout != old.FragmentTimeout {
		return fmt.Errorf("%s: lowest_ipv6_mtu, ipv4_mtu, icmp_error_rate, icmp_error_burst and timeouts.fragment of instance %q change only with a restart", d.opts.ConfigPath, in.Name)
	}
	if in.FastPath != old.FastPath {
		return fmt.Errorf("%s: fastpath of instance %q changes only with a restart", d.opts.ConfigPath, in.Name)
	}
	if in.MaxSessions > old.MaxSessions && d.fast.fp != nil {
		return fmt.Errorf("%s: max_sessions of instance %q rises only with a restart while the fast path is attached (it sizes the fast path's maps)", d.opts.ConfigPath, in.Name)
	}
	if err := d.table.Reconfigure(stateConfig(in)); err != nil {
		return err
	}
	if d.routes != nil {
		desired, err := routes.ForTranslator(in)
		if err != nil {
			return err
		}
		if _, err := d.routes.Reconcile(desired); err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		d.desired = desired
	}
	d.inst.Store(in)
	d.log.Info("reloaded", "pool4", pool4String(in), "static", len(in.Static))
	return nil
}

func (d *Daemon) logMapping(e *state.MappingEvent) {
	attrs := []any{"event", e.Kind.String(), "proto", e.Proto.String(), "ipv6", e.IPv6.String(), "ipv4", e.IPv4.String()}
	if e.Remote.IsValid() {
		attrs = append(attrs, "remote", e.Remote.String())
	}
	if e.Static {
		attrs = append(attrs, "static", true)
	}
	d.log.Info("mapping", attrs...)
}

func closeAll(devs []tunio.Device) {
	for _, dev := range devs {
		dev.Close()
	}
}

func pool4String(in *nat64conf.Instance) string {
	s := ""
	for i, r := range in.Pool4 {
		if i > 0 {
			s += ", "
		}
		s += r.String()
	}
	return s
}
