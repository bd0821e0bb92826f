package pubsub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBroker(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		b := New[int](4, 10)
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := b.Subscribe(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		b.Publish("a", 1)
		b.Publish("b", 2) // other topic: not delivered
		if v := <-ch; v != 1 {
			t.Fatalf("got %d", v)
		}
		cancel()
		if _, ok := <-waitClosed(t, ch); ok {
			t.Fatal("channel not closed after cancel")
		}
		if n, _, _ := b.Stats(); n != 0 {
			t.Fatalf("subscribers = %d after cancel", n)
		}
	})
	t.Run("SlowSubscriberDropped", func(t *testing.T) {
		b := New[int](2, 10)
		slow, _ := b.Subscribe(context.Background(), "a")
		fastCtx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fast, _ := b.Subscribe(fastCtx, "a")
		var wg sync.WaitGroup
		got := 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range fast {
				got++
				if got == 1000 {
					return
				}
			}
		}()
		for i := range 1000 {
			b.Publish("a", i)
			if i%2 == 1 {
				time.Sleep(time.Microsecond) // let the fast reader keep up
			}
		}
		// The slow one never read: it was dropped after its buffer filled, without blocking.
		n := 0
		for range slow {
			n++
		}
		if n != 2 {
			t.Fatalf("slow subscriber got %d buffered values, want 2", n)
		}
		if _, _, dropped := b.Stats(); dropped < 1 {
			t.Fatal("drop not counted")
		}
		cancel()
		wg.Wait()
	})
	t.Run("ErrTooManySubscribers", func(t *testing.T) {
		b := New[int](1, 2)
		for range 2 {
			if _, err := b.Subscribe(context.Background(), "a"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Subscribe(context.Background(), "b"); err != ErrTooManySubscribers {
			t.Fatalf("err = %v", err)
		}
	})
}

func waitClosed[T any](t *testing.T, ch <-chan T) <-chan T {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				c := make(chan T)
				close(c)
				return c
			}
		case <-deadline:
			t.Fatal("channel not closed")
		}
	}
}

// BenchmarkFanOut1000 publishes one value to 1 000 subscribers, each draining its channel in a
// goroutine of its own as a subscription does, and waits until every one has it: one op is one
// eventUpdated reaching 1 000 listeners.
func BenchmarkFanOut1000(b *testing.B) {
	const n = 1000
	br := New[int](16, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	done := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range n {
		ch, err := br.Subscribe(ctx, "event:1")
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ch {
				if left.Add(-1) == 0 {
					done <- struct{}{}
				}
			}
		}()
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		left.Store(n)
		br.Publish("event:1", i)
		<-done
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if _, _, dropped := br.Stats(); dropped != 0 {
		b.Fatalf("%d subscribers dropped", dropped)
	}
}

type ownerKey struct{}

func ownedBy(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, ownerKey{}, owner)
}

func TestPerOwner(t *testing.T) {
	owner := func(ctx context.Context) string { s, _ := ctx.Value(ownerKey{}).(string); return s }
	b := New[int](1, 10, PerOwner(3, owner))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Run("ErrOwnerShare", func(t *testing.T) {
		for i := range 3 {
			if _, err := b.Subscribe(ownedBy(ctx, "a"), "t"+string(rune('0'+i))); err != nil {
				t.Fatalf("subscription %d within the share: %v", i, err)
			}
		}
		_, err := b.Subscribe(ownedBy(ctx, "a"), "t9")
		if !errors.Is(err, ErrOwnerShare) || !errors.Is(err, ErrTooManySubscribers) {
			t.Fatalf("a fourth subscription of one owner: %v, want ErrOwnerShare", err)
		}
	})
	t.Run("OtherOwnersAndUnowned", func(t *testing.T) {
		if _, err := b.Subscribe(ownedBy(ctx, "b"), "t"); err != nil {
			t.Fatalf("another owner: %v", err)
		}
		for range 4 { // no owner: not limited but by the broker's own maximum
			if _, err := b.Subscribe(ctx, "t"); err != nil {
				t.Fatalf("an unowned subscriber: %v", err)
			}
		}
		if n, _, _ := b.Stats(); n != 8 {
			t.Fatalf("subscribers = %d, want 8", n)
		}
	})
	t.Run("Bound", func(t *testing.T) {
		// The owners map holds only owners with a subscriber: ending them empties it, and the
		// share is free again.
		if got := b.owned(); got != 2 {
			t.Fatalf("owners = %d, want 2", got)
		}
		cancel()
		deadline := time.Now().Add(5 * time.Second)
		for b.owned() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("owners = %d after every subscriber ended", b.owned())
			}
			time.Sleep(time.Millisecond)
		}
		for range 3 {
			if _, err := b.Subscribe(ownedBy(context.Background(), "a"), "t"); err != nil {
				t.Fatalf("the share after the owner's subscribers ended: %v", err)
			}
		}
	})
	t.Run("DroppedFreesShare", func(t *testing.T) {
		b := New[int](1, 10, PerOwner(1, owner))
		if _, err := b.Subscribe(ownedBy(context.Background(), "slow"), "t"); err != nil {
			t.Fatal(err)
		}
		b.Publish("t", 1)
		b.Publish("t", 2) // the buffer of one is full: the subscriber is dropped
		if got := b.owned(); got != 0 {
			t.Fatalf("owners = %d after the only subscriber was dropped", got)
		}
		if _, err := b.Subscribe(ownedBy(context.Background(), "slow"), "t"); err != nil {
			t.Fatalf("after a drop: %v", err)
		}
	})
}

// TestNotifier: a subscriber whose context carries a Notifier is told of every value after it is
// in the channel and of the channel's close (cancel, or dropped for being slow), so a consumer
// that reads only when told never waits; the notifier goes to one producer only.
func TestNotifier(t *testing.T) {
	type call struct {
		closed   bool
		buffered int // values in the channel when the call came
	}
	var mu sync.Mutex
	subscribe := func(b *Broker[int], ctx context.Context) (<-chan int, func() []call, *Notifier) {
		var calls []call
		var ch <-chan int
		ctx, n := WithNotifier(ctx, func(closed bool) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{closed, len(ch)})
		})
		c, err := b.Subscribe(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		ch = c
		mu.Unlock()
		return c, func() []call { mu.Lock(); defer mu.Unlock(); return append([]call(nil), calls...) }, n
	}
	t.Run("ValuesThenCancel", func(t *testing.T) {
		b := New[int](4, 10)
		ctx, cancel := context.WithCancel(context.Background())
		ch, get, n := subscribe(b, ctx)
		if !n.Claimed() {
			t.Fatal("Subscribe did not claim the notifier")
		}
		b.Publish("a", 1)
		b.Publish("a", 2)
		if calls := get(); len(calls) != 2 || calls[0] != (call{false, 1}) || calls[1] != (call{false, 2}) {
			t.Fatalf("calls %v, want one per value, each after it was in", calls)
		}
		<-ch
		<-ch
		cancel()
		waitClosed(t, ch)
		// The producer closes the channel, then calls the notifier: the close can be seen first.
		for deadline := time.Now().Add(2 * time.Second); len(get()) < 3 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if calls := get(); len(calls) != 3 || !calls[2].closed {
			t.Fatalf("calls %v, want a closing one last", calls)
		}
	})
	t.Run("DroppedWhenSlow", func(t *testing.T) {
		b := New[int](1, 10)
		_, get, _ := subscribe(b, context.Background())
		b.Publish("a", 1)
		b.Publish("a", 2) // the buffer is full: dropped
		if calls := get(); len(calls) != 2 || calls[0].closed || !calls[1].closed {
			t.Fatalf("calls %v, want a value then the close", calls)
		}
	})
	t.Run("ClaimedOnce", func(t *testing.T) {
		ctx, n := WithNotifier(context.Background(), func(bool) {})
		if Claim(ctx) == nil || Claim(ctx) != nil || !n.Claimed() {
			t.Fatal("the notifier went to more than one producer, or to none")
		}
		if Claim(context.Background()) != nil {
			t.Fatal("a context without a notifier gave one")
		}
	})
}

// TestShared: a shared consumer's subscription (WithSharedNotifier) takes no place of its own;
// each consumer it serves takes one with Reserve, in the broker's bound and its owner's share,
// and gives it back on release, once. Share's admit reaches the consumer only from the producer
// that claimed the notifier.
func TestShared(t *testing.T) {
	owner := func(ctx context.Context) string { s, _ := ctx.Value(ownerKey{}).(string); return s }
	b := New[int](4, 3, PerOwner(2, owner))

	ctx, n := WithSharedNotifier(ownedBy(context.Background(), "a"), func(bool) {})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := b.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if subs, _, _ := b.Stats(); subs != 0 || b.owned() != 0 {
		t.Fatalf("a shared subscription took %d places, %d owners; want none", subs, b.owned())
	}
	if n.Shared() != nil {
		t.Fatal("an admit before any Share")
	}
	Share(ctx, b.Reserve)
	admit := n.Shared()
	if admit == nil {
		t.Fatal("no admit after the claiming producer's Share")
	}

	var releases []func()
	for i, o := range []string{"a", "a", "b"} {
		r, err := admit(ownedBy(context.Background(), o))
		if err != nil {
			t.Fatalf("consumer %d: %v", i, err)
		}
		releases = append(releases, r)
	}
	if _, err := admit(ownedBy(context.Background(), "c")); !errors.Is(err, ErrTooManySubscribers) || errors.Is(err, ErrOwnerShare) {
		t.Fatalf("a fourth consumer of a broker of 3: %v, want ErrTooManySubscribers", err)
	}
	releases[2]()
	releases[2]() // once
	if _, err := admit(ownedBy(context.Background(), "a")); !errors.Is(err, ErrOwnerShare) {
		t.Fatalf("a third consumer of owner a (share 2): %v, want ErrOwnerShare", err)
	}
	if subs, _, _ := b.Stats(); subs != 2 || b.owned() != 1 {
		t.Fatalf("after one release: %d places, %d owners; want 2 and 1", subs, b.owned())
	}
	releases[0]()
	releases[1]()
	if subs, _, _ := b.Stats(); subs != 0 || b.owned() != 0 {
		t.Fatalf("after every release: %d places, %d owners; want none", subs, b.owned())
	}

	// The one shared subscription still delivers, with sharedBuffer times the broker's buffer
	// before it is dropped, and ends with its context without a count.
	for i := range 4 * sharedBuffer {
		b.Publish("t", i)
	}
	if _, _, dropped := b.Stats(); dropped != 0 || len(ch) != 4*sharedBuffer {
		t.Fatalf("%d values waiting, %d dropped; want %d and none", len(ch), dropped, 4*sharedBuffer)
	}
	if v := <-ch; v != 0 {
		t.Fatalf("got %d", v)
	}
	cancel()
	for range ch {
	}
	if subs, _, _ := b.Stats(); subs != 0 {
		t.Fatalf("%d places after the shared subscription ended", subs)
	}

	// Share with a notifier nobody claimed does nothing.
	ctx2, n2 := WithNotifier(context.Background(), func(bool) {})
	Share(ctx2, b.Reserve)
	if n2.Shared() != nil {
		t.Fatal("Share took effect on an unclaimed notifier")
	}
}
