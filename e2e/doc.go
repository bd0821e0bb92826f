// Package e2e holds Eventide's end-to-end tests: each starts real servers (helpers_test.go:
// startServer, startStore, buildServer) and speaks to them over HTTP and websockets only, or runs
// the built binary. Files are named by subject. Run them as part of `go test -race ./...`, or
// alone with `go test -race -run TestName ./e2e`.
package e2e
