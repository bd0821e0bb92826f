// Command eventide-load drives load at an Eventide server on this machine and reports what it
// took: throughput, latency percentiles, errors by GraphQL code, HTTP status and transport
// error, and the server's memory and goroutines before, during and after. It seeds its own data
// through the public API, holds websocket subscribers open alongside, soaks the server to judge
// its memory slope, and measures a plain net/http ceiling to compare with. It only ever targets
// loopback addresses. -help prints the flags and what each scenario does (usageText in options.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// Exit statuses: 1 for a failed run or a soak over its slope, 2 for a bad command line.
const (
	exitFailed = 1
	exitUsage  = 2
)

func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "eventide-load:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "eventide-load:", err)
		return exitFailed
	}
}
