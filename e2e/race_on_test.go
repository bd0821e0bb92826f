//go:build race

package e2e

// raceEnabled says the tests run under the race detector, which caps live goroutines at 8128.
const raceEnabled = true
