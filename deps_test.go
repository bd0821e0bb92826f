package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestServerLinksNoFerretDB: the server binary must not link FerretDB (nor gRPC, nor nbio's HTTP
// engine, below). Only tests run it (to
// write the files of an earlier version's store that the start-up import reads without it,
// store/ferretfile); linked into the server it and what it pulls in (pgx, the MySQL driver, gRPC,
// OpenTelemetry's SDK, the v1 MongoDB driver) cost 14.5 MB of binary and 5–6 MiB of idle RSS.
func TestServerLinksNoFerretDB(t *testing.T) {
	deps := goListDeps(t, ".", "github.com/eventide/server/store/sqlite")
	var ferret, grpc, nbhttp []string
	for _, d := range deps {
		// nbio's HTTP and websocket packages (and llib's fork of crypto/tls that they link) build
		// a default engine at init and cost 1.2 MiB of idle RSS in every process; the lean
		// transport frames websockets with gobwas/ws (httpapi/wsframe.go) on nbio's event loop.
		if strings.HasPrefix(d, "github.com/lesismal/nbio/nbhttp") || strings.HasPrefix(d, "github.com/lesismal/llib") {
			nbhttp = append(nbhttp, d)
		}
		if strings.HasPrefix(d, "github.com/FerretDB/") || d == "github.com/eventide/server/store/embedded" {
			ferret = append(ferret, d)
		}
		// OpenTelemetry's otlptracehttp links the gRPC client (69 packages, +5 MB, +2.6 MiB
		// idle RSS); telemetry posts OTLP/HTTP itself instead (telemetry/otlphttp.go).
		if strings.HasPrefix(d, "google.golang.org/grpc") || strings.HasPrefix(d, "github.com/grpc-ecosystem/") {
			grpc = append(grpc, d)
		}
	}
	if len(ferret) > 0 {
		t.Errorf("the server links FerretDB (%d packages): %s", len(ferret), strings.Join(ferret, " "))
	}
	if len(grpc) > 0 {
		t.Errorf("the server links gRPC (%d packages): %s", len(grpc), strings.Join(grpc, " "))
	}
	if len(nbhttp) > 0 {
		t.Errorf("the server links nbio's HTTP engine (%d packages): %s", len(nbhttp), strings.Join(nbhttp, " "))
	}
	if !slices.Contains(deps, "github.com/lesismal/nbio") || !slices.Contains(deps, "github.com/gobwas/ws/wsutil") {
		t.Errorf("the server does not link nbio and gobwas/ws: the lean transport runs on them")
	}
}

// TestHTTPAPIImportsNoResolvers: the transport does not know the schema's resolvers. What it
// needs of them (the error presenter, the recover func, the schema's extensions) is passed in by
// internal/server, so that httpapi stays below resolvers in the dependency direction (DESIGN.md).
func TestHTTPAPIImportsNoResolvers(t *testing.T) {
	deps := goListDeps(t, "./httpapi", "github.com/eventide/server/security")
	for _, banned := range []string{"github.com/eventide/server/resolvers", "github.com/eventide/server/graph"} {
		if slices.Contains(deps, banned) {
			t.Errorf("httpapi depends on %s (directly or through another package)", banned)
		}
	}
}

// goListDeps lists the packages pkg depends on, directly or not, and fails the test unless known,
// which it must depend on, is among them (a check that the list is the one meant).
func goListDeps(t *testing.T, pkg, known string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, known) {
		t.Fatalf("the dependencies of %s do not include %s: is this the list?\n%s", pkg, known, out)
	}
	return deps
}
