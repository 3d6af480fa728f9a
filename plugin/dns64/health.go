package dns64

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// OnStartup starts the health checker and, with an instances file, the
// reloader. Readiness waits for the first health round.
func (d *DNS64) OnStartup() error {
	if d.stop != nil {
		return nil
	}
	d.stop = make(chan struct{})
	d.healthNow = make(chan struct{}, 1)
	d.wg.Add(1)
	go d.healthLoop(d.stop)
	if d.instancesFile != "" && d.reload > 0 {
		d.wg.Add(1)
		go d.reloadLoop(d.stop)
	}
	return nil
}

// OnShutdown stops the goroutines OnStartup started and waits for them.
func (d *DNS64) OnShutdown() error {
	if d.stop == nil {
		return nil
	}
	close(d.stop)
	d.wg.Wait()
	d.stop = nil
	return nil
}

// healthLoop gets stop as an argument: OnShutdown clears d.stop.
func (d *DNS64) healthLoop(stop <-chan struct{}) {
	defer d.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a shutdown interrupts a round in progress
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	probe := d.prober
	if probe == nil {
		client := &http.Client{
			Timeout: d.healthTimeout,
			// No proxy from the environment: control addresses are local.
			Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * d.healthInterval},
		}
		defer client.CloseIdleConnections()
		probe = httpProber(client)
	}

	ticker := time.NewTicker(d.healthInterval)
	defer ticker.Stop()
	for {
		d.healthRound(ctx, probe)
		d.ready.Store(true)
		if d.roundDone != nil {
			d.roundDone()
		}
		select {
		case <-stop:
			return
		case <-ticker.C:
		case <-d.healthNow:
		}
	}
}

// prober asks one instance's control address whether it is alive.
type prober func(ctx context.Context, control string) bool

// healthRound polls every instance that has a control address, in
// parallel, and updates its health: an instance leaves the rotation after
// maxFails consecutive failed probes (never when maxFails is 0) and comes
// back after one success.
func (d *DNS64) healthRound(ctx context.Context, probe prober) {
	set := d.set.Load()
	var wg sync.WaitGroup
	for i, in := range set.all {
		if in.control == "" {
			instanceHealthy.WithLabelValues(in.name, in.prefixS).Set(1)
			continue
		}
		wg.Add(1)
		go func(i int, in *instance) {
			defer wg.Done()
			ok := probe(ctx, in.control)
			if ctx.Err() != nil {
				return // shutting down: not the instance's fault
			}
			healthy := true
			if ok {
				in.fails.Store(0)
			} else {
				healthChecksFailed.WithLabelValues(in.name).Inc()
				n := int(in.fails.Add(1))
				healthy = d.maxFails == 0 || n < d.maxFails
				if healthy {
					log.Warningf("NAT64 instance %s (%s) failed health check %d at http://%s/healthz (out of rotation after %d)", in.name, in.prefixS, n, in.control, d.maxFails)
				}
			}
			if was := in.healthy.Swap(healthy); was != healthy {
				if healthy {
					log.Infof("NAT64 instance %s (%s) is healthy again", in.name, in.prefixS)
				} else {
					log.Warningf("NAT64 instance %s (%s) failed %d health checks in a row at http://%s/healthz; leaving rotation", in.name, in.prefixS, d.maxFails, in.control)
				}
				d.healthChanged(i)
			}
			v := 0.0
			if healthy {
				v = 1
			}
			instanceHealthy.WithLabelValues(in.name, in.prefixS).Set(v)
		}(i, in)
	}
	wg.Wait()
}

// healthChanged is called when instance i of the set entered or left the
// rotation. Were set replaced meanwhile, the reload has purged already and
// this purge only costs some entries.
func (d *DNS64) healthChanged(i int) { d.invalidateInstance(i) }

// httpProber probes GET http://CONTROL/healthz: alive when it answers 200.
func httpProber(client *http.Client) prober {
	return func(ctx context.Context, control string) bool { return probeHTTP(ctx, client, control) }
}

func probeHTTP(ctx context.Context, client *http.Client, control string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+control+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
