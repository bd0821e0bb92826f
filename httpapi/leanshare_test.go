package httpapi

import "testing"

type testOp struct{ name string }

func (*testOp) stop() {}

// leanOps keeps one operation inline and the rest in a map, and never two under one id.
func TestLeanOps(t *testing.T) {
	var o leanOps
	a, b, c, a2 := &testOp{"a"}, &testOp{"b"}, &testOp{"c"}, &testOp{"a2"}
	o.set("1", a)
	if o.more != nil || o.get("1") != a {
		t.Fatal("the first operation is not inline")
	}
	o.set("2", b)
	o.set("1", a2) // replaces
	if o.get("1") != a2 || o.get("2") != b || len(o.more) != 1 {
		t.Fatalf("after a replace: %v %v, %d in the map", o.get("1"), o.get("2"), len(o.more))
	}
	o.drop("1", a) // not what it holds: stays
	if o.get("1") != a2 {
		t.Fatal("drop removed another operation of the same id")
	}
	o.drop("1", a2)
	o.set("2", c) // in the map already: replaced there, not filed twice
	o.set("3", a)
	n := 0
	o.each(func(leanOp) { n++ })
	if n != 2 || o.get("1") != nil || o.get("2") != c || o.get("3") != a {
		t.Fatalf("%d operations; 1=%v 2=%v 3=%v", n, o.get("1"), o.get("2"), o.get("3"))
	}
	o.drop("2", c)
	o.drop("3", a)
	n = 0
	o.each(func(leanOp) { n++ })
	if n != 0 {
		t.Fatalf("%d operations after every drop", n)
	}
}
