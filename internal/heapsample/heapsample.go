// Package heapsample keeps Go's heap profiler off in a process that cannot be asked for a heap
// profile, from its first package initialisation on.
//
// The runtime samples one allocation per runtime.MemProfileRate bytes (512 KiB) from its start,
// and records each sample's stack: an unwind that reads the function tables (.gopclntab) of
// every frame on it. Start-up allocates tens of MiB through package initialisation, the schema's
// parse, SQLite's open and migrations, so the samples' unwinds leave about 0.5 MiB of the
// binary's pages resident for good (BENCHMARKS.md "Idle RSS, part by part"), for a profile that
// only PPROF_ADDR serves. This package imports nothing but runtime, so Go initialises it before
// nearly every other package (the spec's order: by import path, among packages whose imports are
// done); its init turns sampling off, and Resume turns it back on once the configuration asks
// for the profiler. An operator's GODEBUG=memprofilerate=N is left alone.
package heapsample

import "runtime"

// defaultRate is the runtime's own default (runtime.MemProfileRate's documentation).
const defaultRate = 512 * 1024

// rate is the rate the process started with.
var rate = runtime.MemProfileRate

// off is whether init turned sampling off (it does not when GODEBUG set a rate).
var off bool

func init() {
	if rate == defaultRate {
		runtime.MemProfileRate = 0
		off = true
	}
}

// Resume turns sampling back on at the rate the process started with: call it before anything
// can serve a heap profile (PPROF_ADDR). Allocations made before it are not in the profile.
func Resume() {
	if off {
		runtime.MemProfileRate = rate
		off = false
	}
}

// Off reports whether sampling is off because of this package.
func Off() bool { return off }
