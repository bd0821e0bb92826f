package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHashCostFigures measures, for BENCHMARKS.md ("Aliased signUp and aliased totalCount"), the
// CPU time the process spends on one request of 30 aliased signUps for a taken email at the
// production bcrypt cost, and on one of 30 aliased totalCounts. It uses only helpers that exist
// before the fix, so the same file runs on the old code. CPU time is the process's user + system
// time from getrusage around the request (the test's client is a small part of it); it is not
// wall time, so the other work on a shared machine changes it little.
//
//	EVENTIDE_FIGURES=1 go test -count=1 -run '^TestHashCostFigures$' -v .
func TestHashCostFigures(t *testing.T) {
	if os.Getenv("EVENTIDE_FIGURES") == "" {
		t.Skip("a measurement, not a test: set EVENTIDE_FIGURES=1")
	}
	cfg := testConfig(t)
	cfg.PasswordHashCost = 12 // production's
	cfg.ThrottleLimit = 1 << 20
	cfg.LoginThrottleLimit = 1 << 20
	ts := startServer(t, cfg)
	taken := fmt.Sprintf("figures-%d@example.com", time.Now().UnixNano())
	ts.newAccount(nil, taken, "password-123")

	var signUps strings.Builder
	signUps.WriteString("mutation {")
	for i := range 30 {
		fmt.Fprintf(&signUps, ` a%d: signUp(input: {email: %q, password: "password-123", name: "Someone"}) { token }`, i, taken)
	}
	signUps.WriteString(" }")
	t.Logf("signUp document: %d bytes", signUps.Len())
	for run := range 3 {
		var r *httpRes
		cpu, wall := cpuDuring(func() { r = ts.gql(nil, "", "", signUps.String(), nil) })
		t.Logf("30 aliased signUps, taken email, run %d: CPU %.3f s, wall %.3f s, status %d, first error %q, %d errors",
			run+1, cpu.Seconds(), wall.Seconds(), r.Status, r.code(), len(r.Errors))
	}

	// The counts, over a store of n published events.
	const n = 300
	org := ts.organizer("Figures Org")
	for i := range n {
		ts.publishedEvent(org, fmt.Sprintf("Figures %d", i), 10, time.Duration(24+i)*time.Hour)
	}
	var counts strings.Builder
	counts.WriteString("{")
	for i := range 30 {
		fmt.Fprintf(&counts, " c%d: events(first: 1) { totalCount }", i)
	}
	counts.WriteString(" }")
	for run := range 3 {
		var r *httpRes
		cpu, wall := cpuDuring(func() { r = ts.gql(nil, "", "", counts.String(), nil) })
		t.Logf("30 aliased totalCounts over %d events, run %d: CPU %.3f s, wall %.3f s, status %d, code %q, measured %v",
			n, run+1, cpu.Seconds(), wall.Seconds(), r.Status, r.code(), r.errExt("measured"))
	}
	// One of each store step, signed in so that no response cache answers: a count, a page of
	// one, a page of 100 with venue and organizer.
	for _, q := range []string{
		`{ events(first: 1) { totalCount } }`,
		`{ events(first: 1) { edges { cursor } } }`,
		`{ events(first: 100) { edges { node { id title venue { name } organizer { name } } } } }`,
	} {
		for run := range 3 {
			var r *httpRes
			cpu, wall := cpuDuring(func() { r = ts.gql(nil, org.Token, "", q, nil) })
			t.Logf("%s over %d events, run %d: CPU %.3f s, wall %.3f s, status %d, code %q",
				q, n, run+1, cpu.Seconds(), wall.Seconds(), r.Status, r.code())
		}
	}
}

// cpuDuring is the process's CPU time (user + system) and the wall time that fn took.
func cpuDuring(fn func()) (cpu, wall time.Duration) {
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			panic(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, t0 := used(), time.Now()
	fn()
	return used() - c0, time.Since(t0)
}
