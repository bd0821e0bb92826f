// Package testutil is what the tests of several packages share: one way to wait for a state.
package testutil

import (
	"testing"
	"time"
)

// maxPoll is the longest pause between two calls of a condition: short enough that a test
// waits little past the moment the state is reached, long enough that a condition that runs a
// command (redis-cli) is not run hundreds of times a second.
const maxPoll = 25 * time.Millisecond

// Within calls ok until it returns true or d has passed, and says whether it returned true. It
// calls ok at once, then after pauses that double from 1 ms up to maxPoll.
func Within(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
	return true
}

// Eventually waits (Within) for ok to hold and fails tb naming what if it does not within d.
func Eventually(tb testing.TB, d time.Duration, what string, ok func() bool) {
	tb.Helper()
	if !Within(d, ok) {
		tb.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
