package memstats

import "github.com/prometheus/client_golang/prometheus"

// Collectors returns the sampler's Prometheus metrics, for the caller to register:
// eventide_memory_rss_bytes, eventide_memory_limit_bytes, eventide_memory_samples_total,
// eventide_memory_subscribers, eventide_memory_subscribers_dropped_total,
// eventide_memory_watchdog_pressure_total and eventide_memory_watchdog_restarts_requested_total.
// The Go runtime's own figures are the standard Go collector's business.
func (s *Sampler) Collectors() []prometheus.Collector {
	counter := func(name, help string, v func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v()) })
	}
	gauge := func(name, help string, v func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
	}
	return []prometheus.Collector{
		gauge("eventide_memory_rss_bytes", "Resident set size of the process.",
			func() float64 { return float64(s.Current().RSSBytes) }),
		gauge("eventide_memory_limit_bytes", "Memory limit in force (0: none).",
			func() float64 { return float64(s.opts.LimitBytes) }),
		counter("eventide_memory_samples_total", "Memory samples taken.", s.samples.Load),
		gauge("eventide_memory_subscribers", "Current memory stats subscribers.",
			func() float64 { return float64(s.Subscribers()) }),
		counter("eventide_memory_subscribers_dropped_total",
			"Memory stats subscribers dropped for falling behind.", s.dropped),
		counter("eventide_memory_watchdog_pressure_total",
			"Times the watchdog freed memory after the restart threshold was exceeded.", s.pressures.Load),
		counter("eventide_memory_watchdog_restarts_requested_total",
			"Restarts asked for by the memory watchdog.", s.restarts.Load),
	}
}
