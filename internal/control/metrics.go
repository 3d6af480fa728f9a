package control

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns one Stats snapshot per scrape into Prometheus metrics, so
// the packet path keeps plain counters and pays nothing for Prometheus.
type collector struct {
	b Backend

	packets, bytes, drops *prometheus.Desc
	icmpErrors, hairpins  *prometheus.Desc
	icmpSuppressed        *prometheus.Desc
	fragmentsHeld         *prometheus.Desc
	reassembled           *prometheus.Desc
	sessions, bib         *prometheus.Desc
	portsInUse, ports, up *prometheus.Desc
	batches               *prometheus.Desc

	fastActive, fastSessions         *prometheus.Desc
	fastPackets, fastBytes, fastPass *prometheus.Desc
	fastDropped                      *prometheus.Desc
}

const namespace = "nat64ctl"

func newCollector(b Backend) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &collector{
		b:              b,
		packets:        d("packets_translated_total", "Packets translated, by direction (6to4, 4to6) and protocol.", "direction", "proto"),
		bytes:          d("bytes_translated_total", "Bytes of translated packets as received, by direction and protocol.", "direction", "proto"),
		drops:          d("drops_total", "Packets dropped, by reason.", "reason"),
		icmpErrors:     d("icmp_errors_sent_total", "ICMP errors the translator originated (Time Exceeded, Packet Too Big, ...)."),
		hairpins:       d("hairpinned_total", "IPv6 packets to a pool4 address sent back to the IPv6 side."),
		icmpSuppressed: d("icmp_errors_suppressed_total", "ICMP errors the translator would have originated but its rate limit refused."),
		fragmentsHeld:  d("fragments_held_total", "ICMP fragments taken into reassembly."),
		reassembled:    d("reassembled_total", "Datagrams reassembled from the fragments held."),
		sessions:       d("sessions", "Sessions in the table, by protocol.", "proto"),
		bib:            d("bib_entries", "BIB entries, by protocol.", "proto"),
		portsInUse:     d("pool4_ports_in_use", "pool4 transport addresses bound by BIB entries."),
		ports:          d("pool4_ports", "pool4 transport addresses in all."),
		up:             d("healthy", "1 while the translator is translating."),
		batches:        d("tun_batch_size", "Packets per batch read from the TUN device."),
		fastActive:     d("fastpath_active", "1 while the kernel fast path is attached."),
		fastSessions:   d("fastpath_sessions", "Sessions the kernel fast path may carry."),
		fastPackets:    d("fastpath_packets_total", "Packets the kernel fast path translated (part of packets_translated_total), by direction and protocol.", "direction", "proto"),
		fastBytes:      d("fastpath_bytes_total", "Bytes the kernel fast path translated (part of bytes_translated_total), by direction and protocol.", "direction", "proto"),
		fastPass:       d("fastpath_passed_total", "Packets the kernel fast path left to the user-space translator, by reason.", "reason"),
		fastDropped:    d("fastpath_dropped_total", "Packets the kernel fast path lost because a rewrite failed half way."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.drops, c.icmpErrors, c.icmpSuppressed, c.fragmentsHeld, c.reassembled, c.hairpins, c.sessions, c.bib, c.portsInUse, c.ports, c.up, c.batches, c.fastActive, c.fastSessions, c.fastPackets, c.fastBytes, c.fastPass, c.fastDropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	for k, v := range s.Packets {
		dir, proto, _ := strings.Cut(k, "/")
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(v), dir, proto)
	}
	for k, v := range s.Bytes {
		dir, proto, _ := strings.Cut(k, "/")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(v), dir, proto)
	}
	for reason, v := range s.Drops {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.icmpErrors, prometheus.CounterValue, float64(s.ICMPErrors))
	ch <- prometheus.MustNewConstMetric(c.icmpSuppressed, prometheus.CounterValue, float64(s.ICMPErrorsSuppressed))
	ch <- prometheus.MustNewConstMetric(c.fragmentsHeld, prometheus.CounterValue, float64(s.FragmentsHeld))
	ch <- prometheus.MustNewConstMetric(c.reassembled, prometheus.CounterValue, float64(s.Reassembled))
	ch <- prometheus.MustNewConstMetric(c.hairpins, prometheus.CounterValue, float64(s.Hairpinned))
	for p, v := range s.Sessions {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(v), p)
	}
	for p, v := range s.BIBEntries {
		ch <- prometheus.MustNewConstMetric(c.bib, prometheus.GaugeValue, float64(v), p)
	}
	ch <- prometheus.MustNewConstMetric(c.portsInUse, prometheus.GaugeValue, float64(s.Pool4PortsInUse))
	ch <- prometheus.MustNewConstMetric(c.ports, prometheus.GaugeValue, float64(s.Pool4Ports))
	up := 0.0
	if s.Healthy {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	if f := s.FastPath; f != nil {
		active := 0.0
		if f.Active {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(c.fastActive, prometheus.GaugeValue, active)
		ch <- prometheus.MustNewConstMetric(c.fastSessions, prometheus.GaugeValue, float64(f.Sessions))
		for k, v := range f.Packets {
			dir, proto, _ := strings.Cut(k, "/")
			ch <- prometheus.MustNewConstMetric(c.fastPackets, prometheus.CounterValue, float64(v), dir, proto)
		}
		for k, v := range f.Bytes {
			dir, proto, _ := strings.Cut(k, "/")
			ch <- prometheus.MustNewConstMetric(c.fastBytes, prometheus.CounterValue, float64(v), dir, proto)
		}
		for reason, v := range f.Passed {
			ch <- prometheus.MustNewConstMetric(c.fastPass, prometheus.CounterValue, float64(v), reason)
		}
		ch <- prometheus.MustNewConstMetric(c.fastDropped, prometheus.CounterValue, float64(f.Dropped))
	}
	if len(s.BatchBounds) > 0 && len(s.BatchBounds) == len(s.TUNBatches) {
		// A histogram wants cumulative bucket counts.
		buckets := make(map[float64]uint64, len(s.BatchBounds))
		var cum, sum uint64
		for i, n := range s.TUNBatches {
			cum += n
			buckets[float64(s.BatchBounds[i])] = cum
			sum += n * uint64(s.BatchBounds[i]) // upper bound: the exact sum is not kept
		}
		ch <- prometheus.MustNewConstHistogram(c.batches, cum, float64(sum), buckets)
	}
}
