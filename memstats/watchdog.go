package memstats

import "time"

// WatchdogOptions configures the memory watchdog run by Sampler.Run (MEMORY_RESTART_THRESHOLD,
// MEMORY_RESTART_AFTER, MEMORY_CHECK_INTERVAL).
type WatchdogOptions struct {
	Threshold int64         // resident bytes; 0 disables the watchdog
	After     int           // consecutive checks over Threshold before acting; default 3
	Interval  time.Duration // between checks; default 5s
	// OnPressure is called, after After checks in a row found the process over Threshold, to
	// give memory back (empty caches); the runtime then collects and returns freed memory to the
	// OS, and RSS is measured again. It runs on the sampler's goroutine.
	OnPressure func()
	// OnRestart is called once, when RSS is still over Threshold after OnPressure: the process
	// should stop taking requests, drain, and exit with ExitRestart. It runs on the sampler's
	// goroutine, so it must start the shutdown and return, not wait for Run to end.
	OnRestart func()
}

func (o WatchdogOptions) withDefaults() WatchdogOptions {
	if o.After <= 0 {
		o.After = 3
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	return o
}

func (o WatchdogOptions) enabled() bool { return o.Threshold > 0 }

// check is one watchdog check; it reports whether it asked for a restart. Run's goroutine only.
func (s *Sampler) check() (restart bool) {
	w := s.opts.Watchdog
	if !w.enabled() || s.restartAsked {
		return false
	}
	rss, err := s.opts.ReadRSS()
	if err != nil {
		s.log.Warn("memory watchdog: cannot read RSS", "err", err)
		return false
	}
	if rss <= w.Threshold {
		s.over = 0
		return false
	}
	s.over++
	s.log.Warn("memory over the restart threshold",
		"rss_bytes", rss, "threshold_bytes", w.Threshold, "checks_over", s.over, "after", w.After)
	if s.over < w.After {
		return false
	}

	s.pressures.Add(1)
	if w.OnPressure != nil {
		w.OnPressure()
	}
	s.freeOSMemory() // a forced collection, then freed pages go back to the OS
	after, err := s.opts.ReadRSS()
	if err != nil {
		s.log.Warn("memory watchdog: cannot read RSS", "err", err)
		return false // unknown is not a reason to restart; the next checks will tell
	}
	if after <= w.Threshold {
		s.log.Info("memory back under the restart threshold after freeing memory",
			"rss_bytes", after, "was_bytes", rss, "threshold_bytes", w.Threshold)
		s.over = 0
		return false
	}
	s.log.Error("memory still over the restart threshold after freeing memory: asking for a restart",
		"rss_bytes", after, "threshold_bytes", w.Threshold, "checks_over", s.over, "exit_code", ExitRestart)
	s.restartAsked = true
	s.restarts.Add(1)
	if w.OnRestart != nil {
		w.OnRestart()
	}
	return true
}
