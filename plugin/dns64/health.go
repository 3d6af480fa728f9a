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
	client := &http.Client{
		Timeout: d.healthTimeout,
		// No proxy from the environment: control addresses are local.
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * d.healthInterval},
	}
	defer client.CloseIdleConnections()

	ticker := time.NewTicker(d.healthInterval)
	defer ticker.Stop()
	for {
		d.healthRound(ctx, client)
		d.ready.Store(true)
		select {
		case <-stop:
			return
		case <-ticker.C:
		case <-d.healthNow:
		}
	}
}

// healthRound polls every instance that has a control address, in
// parallel, and updates its health.
func (d *DNS64) healthRound(ctx context.Context, client *http.Client) {
	set := d.set.Load()
	var wg sync.WaitGroup
	for _, in := range set.all {
		if in.control == "" {
			instanceHealthy.WithLabelValues(in.name, in.prefixS).Set(1)
			continue
		}
		wg.Add(1)
		go func(in *instance) {
			defer wg.Done()
			ok := probe(ctx, client, in.control)
			if ctx.Err() != nil {
				return // shutting down: not the instance's fault
			}
			if !ok {
				healthChecksFailed.WithLabelValues(in.name).Inc()
			}
			if was := in.healthy.Swap(ok); was != ok {
				if ok {
					log.Infof("NAT64 instance %s (%s) is healthy again", in.name, in.prefixS)
				} else {
					log.Warningf("NAT64 instance %s (%s) failed its health check at http://%s/healthz; leaving rotation", in.name, in.prefixS, in.control)
				}
			}
			v := 0.0
			if ok {
				v = 1
			}
			instanceHealthy.WithLabelValues(in.name, in.prefixS).Set(v)
		}(in)
	}
	wg.Wait()
}

func probe(ctx context.Context, client *http.Client, control string) bool {
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
