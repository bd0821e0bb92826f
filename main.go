// Command eventide is the Eventide GraphQL server. `go run .` serves it on an embedded store with
// demo data; see README.md. The wiring is internal/server's.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventide/server/internal/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(server.Main(ctx, version, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
