package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/eventide/server/"

// depsOf lists what pkg depends on, itself and the standard library included.
func depsOf(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "./"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./%s: %v\n%s", pkg, err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != module+pkg {
		t.Fatalf("go list -deps ./%s does not end with the package itself: is this the list?\n%s", pkg, out)
	}
	return deps
}

// TestLayers keeps the import graph DESIGN.md draws: the domain (eventide) and the rules (app)
// carry no transport and depend on nothing of ours but the domain; the generated GraphQL code
// binds the domain's, relay's and its own model types, never an adapter's struct (cache,
// memstats, security, the stores...), so no adapter's change is an API change.
func TestLayers(t *testing.T) {
	for _, tc := range []struct {
		pkg     string
		ours    []string // the packages of ours it may depend on, besides itself
		noHTTP  bool
		comment string
	}{
		{"eventide", nil, true, "the domain imports nothing of ours and no transport"},
		{"app", []string{"eventide"}, true, "the rules work over eventide's interfaces only"},
		{"graph", []string{"eventide", "relay", "graph/model"}, false, "graph binds no adapter"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			allowed := map[string]bool{module + tc.pkg: true}
			for _, p := range tc.ours {
				allowed[module+p] = true
			}
			for _, d := range depsOf(t, tc.pkg) {
				if strings.HasPrefix(d, module) && !allowed[d] {
					t.Errorf("%s depends on %s: %s", tc.pkg, d, tc.comment)
				}
				if tc.noHTTP && d == "net/http" {
					t.Errorf("%s depends on net/http: %s", tc.pkg, tc.comment)
				}
			}
		})
	}
}
