// Package startpages gives the kernel back the pages of the program's own file that start-up
// read, once start-up is over.
//
// Before main runs, Go's runtime and the initialisation of every linked package (~210 of them:
// the Mongo driver, go-redis, OpenTelemetry, Prometheus and protobuf whether or not the
// configuration uses them) read code, type descriptors and function tables scattered over the
// whole binary; opening the store parses its schema with SQLite's compiler. The kernel maps a
// fault's neighbours too (fault-around, 64 KiB), so those reads leave ~21 MiB of the binary
// mapped, much of it code that never runs again. Go has no way to not initialise a linked
// package, and its linker no way to gather what start-up touches: Release does for the binary
// what debug.FreeOSMemory does for start-up's garbage. Measured (BENCHMARKS.md "Idle RSS, part
// by part"), the server maps 13 MiB of its binary once its readiness probes ran (23 without the
// release), 18.7 MiB after its first events page (24.6), and 23 MiB after a mixed load (27.4):
// what start-up alone read stays out.
//
// Release unmaps the executable's read-only mappings (madvise MADV_DONTNEED). Nothing is lost: a
// read-only private mapping of a file holds nothing but the file, so a page comes back from the
// page cache the first time it is touched again, and what runs after start-up (timers, the
// sampler, each request's path) faults its own pages back in. The pages themselves stay in the
// page cache, where they were before the process mapped them: clean, shared with every process
// of the same binary, and no longer in this one's RSS, so the kernel can drop them first under
// memory pressure (it keeps mapped code longest). Asking it to drop them now (MADV_PAGEOUT) was
// measured too: it evicted 1.4 MiB of 21, and only for a process that may write its binary.
// Writable mappings (.data, the heap) are never touched.
package startpages

import "errors"

// Result is what a release did.
type Result struct {
	// Ranges is how many of the executable's read-only mappings were advised; Bytes, their
	// length.
	Ranges int
	Bytes  int64
	// FileBefore and FileAfter are the process's file-backed resident memory (RssFile, plus
	// RssShmem for a binary on tmpfs) before and just after (other goroutines may have faulted
	// pages back in between), in bytes.
	FileBefore, FileAfter int64
}

// ErrTraced is returned, with nothing done, when a debugger is attached: its breakpoints are
// private copies of code pages, which an unmapping would drop.
var ErrTraced = errors.New("startpages: a tracer is attached; nothing released")

// ErrUnsupported is returned where there is nothing to release this way (not Linux).
var ErrUnsupported = errors.New("startpages: not supported on this system")
