package respcache

import (
	"fmt"
	"testing"
)

func TestDepsBound(t *testing.T) {
	d := &Deps{}
	for i := range MaxDeps - 1 {
		d.Add(fmt.Sprintf("te:%d", i), []byte{1})
		d.Add("tl:e", []byte{1}) // repeats count once
	}
	if keys, _, _, ok := d.Result(); !ok || len(keys) != MaxDeps {
		t.Fatalf("%d distinct tokens: ok %v, %d kept", MaxDeps, ok, len(keys))
	}
	d.Add("one-more", []byte{1})
	if _, _, _, ok := d.Result(); ok {
		t.Fatal("a response depending on more than MaxDeps tokens may still be kept")
	}
}
