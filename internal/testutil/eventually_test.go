package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestWithin: a condition that holds at once is called once; one that holds on the fifth call
// is called five times; one that never holds is given up on, after being called more than once
// and at most d/1ms+1 times.
func TestWithin(t *testing.T) {
	var calls atomic.Int64
	if !Within(time.Second, func() bool { calls.Add(1); return true }) || calls.Load() != 1 {
		t.Fatalf("at once: %d calls", calls.Load())
	}
	calls.Store(0)
	if !Within(10*time.Second, func() bool { return calls.Add(1) == 5 }) || calls.Load() != 5 {
		t.Fatalf("on the fifth call: %d calls", calls.Load())
	}
	calls.Store(0)
	if Within(30*time.Millisecond, func() bool { calls.Add(1); return false }) {
		t.Fatal("a condition that never holds was reported as held")
	}
	if n := calls.Load(); n < 2 || n > 31 {
		t.Fatalf("never: %d calls in 30ms", n)
	}
}

// fatalRecorder is a testing.TB that records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	failed atomic.Bool
}

func (f *fatalRecorder) Helper()               {}
func (f *fatalRecorder) Fatalf(string, ...any) { f.failed.Store(true) }

func TestEventuallyFailsWhenNever(t *testing.T) {
	r := &fatalRecorder{TB: t}
	Eventually(r, 10*time.Millisecond, "nothing", func() bool { return false })
	if !r.failed.Load() {
		t.Fatal("Eventually did not fail on a condition that never holds")
	}
	r = &fatalRecorder{TB: t}
	Eventually(r, time.Second, "something", func() bool { return true })
	if r.failed.Load() {
		t.Fatal("Eventually failed on a condition that holds")
	}
}
