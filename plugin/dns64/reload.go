package dns64

import (
	"crypto/sha256"
	"os"
	"time"

	"github.com/nat64kit/nat64kit/nat64conf"
)

// fileStamp identifies a version of the instances file by content, so a
// rewrite within one mtime tick is still noticed.
type fileStamp [sha256.Size]byte

func statFile(path string) fileStamp {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileStamp{}
	}
	return sha256.Sum256(data)
}

func (d *DNS64) reloadLoop(stop <-chan struct{}) {
	defer d.wg.Done()
	ticker := time.NewTicker(d.reload)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			d.reloadIfChanged()
		}
	}
}

// reloadIfChanged loads the instances file when its content changed. A bad
// file is logged and ignored, the previous instances stay in use.
func (d *DNS64) reloadIfChanged() bool {
	data, err := os.ReadFile(d.instancesFile)
	if err != nil {
		log.Errorf("instances: %v; keeping the previous instances", err)
		reloads.WithLabelValues("error").Inc()
		return false
	}
	stamp := fileStamp(sha256.Sum256(data))
	if stamp == d.fileStamp {
		return false
	}
	d.fileStamp = stamp
	cfg, err := nat64conf.Parse(d.instancesFile, data)
	var set *instanceSet
	if err == nil {
		set, err = newInstanceSet(cfg)
	}
	if err != nil {
		log.Errorf("instances: %v; keeping the previous instances", err)
		reloads.WithLabelValues("error").Inc()
		return false
	}
	old := d.set.Load()
	set.inheritHealth(old)
	d.set.Store(set)
	d.invalidateReload(old, set)
	reloads.WithLabelValues("ok").Inc()
	log.Infof("instances: loaded %d from %s", len(set.all), d.instancesFile)
	select { // check the new instances now, not at the next tick
	case d.healthNow <- struct{}{}:
	default:
	}
	return true
}
