package memstats

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// watched is a sampler whose RSS the test sets, with counted hooks.
type watched struct {
	*Sampler
	rss                               atomic.Int64
	reads, pressures, restarts, frees atomic.Int32
}

func newWatched(w WatchdogOptions, onPressure func(*watched)) *watched {
	x := &watched{}
	w.OnPressure = func() {
		x.pressures.Add(1)
		if onPressure != nil {
			onPressure(x)
		}
	}
	w.OnRestart = func() { x.restarts.Add(1) }
	x.Sampler = New(Options{Watchdog: w, ReadRSS: func() (int64, error) {
		x.reads.Add(1)
		return x.rss.Load(), nil
	}})
	x.freeOSMemory = func() { x.frees.Add(1) }
	return x
}

func TestWatchdog(t *testing.T) {
	t.Run("PressureThenRestartOnce", func(t *testing.T) {
		w := newWatched(WatchdogOptions{Threshold: 100, After: 3}, nil)
		w.rss.Store(200)
		for i := 1; i <= 2; i++ {
			if w.check() || w.pressures.Load() != 0 {
				t.Fatalf("acted after %d checks over, want 3", i)
			}
		}
		if !w.check() {
			t.Fatal("third check over did not ask for a restart")
		}
		if w.pressures.Load() != 1 || w.frees.Load() != 1 || w.restarts.Load() != 1 {
			t.Fatalf("pressure %d, frees %d, restarts %d; want 1 each",
				w.pressures.Load(), w.frees.Load(), w.restarts.Load())
		}
		for range 5 {
			w.check()
		}
		if w.restarts.Load() != 1 || w.Sampler.restarts.Load() != 1 {
			t.Fatalf("restart hook called %d times, want exactly once", w.restarts.Load())
		}
	})
	t.Run("UnderAfterPressureNoRestart", func(t *testing.T) {
		w := newWatched(WatchdogOptions{Threshold: 100, After: 2},
			func(w *watched) { w.rss.Store(50) }) // emptying the cache helps
		w.rss.Store(200)
		w.check()
		if w.check() {
			t.Fatal("asked for a restart although memory fell under the threshold")
		}
		if w.pressures.Load() != 1 || w.restarts.Load() != 0 {
			t.Fatalf("pressure %d, restarts %d", w.pressures.Load(), w.restarts.Load())
		}
		// The count starts again: it takes After more checks over to act again.
		w.rss.Store(200)
		w.check()
		if w.pressures.Load() != 1 {
			t.Fatal("acted on the first check over after relief")
		}
		w.check()
		if w.pressures.Load() != 2 {
			t.Fatal("did not act after After checks over again")
		}
	})
	t.Run("ChecksMustBeConsecutive", func(t *testing.T) {
		w := newWatched(WatchdogOptions{Threshold: 100, After: 3}, nil)
		for _, rss := range []int64{200, 200, 100, 200, 200} { // equal to the threshold is not over
			w.rss.Store(rss)
			w.check()
		}
		if w.pressures.Load() != 0 {
			t.Fatal("acted without After consecutive checks over")
		}
	})
	t.Run("ThresholdZeroDisables", func(t *testing.T) {
		w := newWatched(WatchdogOptions{Threshold: 0, After: 1, Interval: time.Millisecond}, nil)
		w.rss.Store(1 << 50)
		ctx, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer stop()
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if w.pressures.Load() != 0 || w.restarts.Load() != 0 || w.check() {
			t.Fatal("a disabled watchdog acted")
		}
	})
	t.Run("RunAsksOnce", func(t *testing.T) {
		w := newWatched(WatchdogOptions{Threshold: 100, After: 2, Interval: 2 * time.Millisecond}, nil)
		w.rss.Store(200)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		waitFor(t, "a restart request", func() bool { return w.restarts.Load() > 0 })
		time.Sleep(50 * time.Millisecond) // 25 more check intervals
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if w.restarts.Load() != 1 || w.pressures.Load() != 1 {
			t.Fatalf("restarts %d, pressure %d; want 1 each", w.restarts.Load(), w.pressures.Load())
		}
	})
}

func TestExitRestart(t *testing.T) {
	if ExitRestart != 75 {
		t.Fatal("ExitRestart must stay EX_TEMPFAIL, 75: supervisors and systemd units name it")
	}
}
