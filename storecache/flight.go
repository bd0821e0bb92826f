package storecache

import (
	"context"
	"sync"
)

// flights collapses concurrent loads of the same key (singleflight, per key, so that one batch can
// own some keys of a $in query and wait on others). A flight's key includes the token the loader
// observed, so a reader that started after a write (and so saw the new token) never joins a load
// that began before it.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done  chan struct{}
	val   any
	found bool
	err   error
}

// claim returns a flight for every key and whether the caller owns it: an owner must complete it;
// anyone else waits on it.
func (f *flights) claim(keys []string) (fl []*flight, owned []bool) {
	fl = make([]*flight, len(keys))
	owned = make([]bool, len(keys))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]*flight)
	}
	for i, k := range keys {
		if x, ok := f.m[k]; ok {
			fl[i] = x
			continue
		}
		x := &flight{done: make(chan struct{})}
		f.m[k] = x
		fl[i], owned[i] = x, true
	}
	return fl, owned
}

// complete publishes an owned flight's result and forgets the flight.
func (f *flights) complete(key string, x *flight, val any, found bool, err error) {
	x.val, x.found, x.err = val, found, err
	f.mu.Lock()
	if f.m[key] == x {
		delete(f.m, key)
	}
	f.mu.Unlock()
	close(x.done)
}

// wait blocks until x completes or ctx ends.
func (x *flight) wait(ctx context.Context) (any, bool, error) {
	select {
	case <-x.done:
		return x.val, x.found, x.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// inFlight is how many loads are running, for tests.
func (f *flights) inFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
