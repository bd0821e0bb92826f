package pubsub

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
)

// TestFanout covers what the security log and the memory sampler take from a Fanout besides a
// Broker's topics: a subscriber's own choice of values, its conversion, its first values, its
// Leave, Close, and a fan-out that leaves the Notifier alone.
func TestFanout(t *testing.T) {
	t.Run("WantConvertFirst", func(t *testing.T) {
		f := NewFanout[struct{}, int](4, 10)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := SubscribeAs(f, ctx, struct{}{}, Sub[int, string]{
			Want:    func(v int) bool { return v%2 == 0 },
			Convert: strconv.Itoa,
			First:   []int{7},
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			f.Publish(struct{}{}, i)
		}
		var got []string
		for len(ch) > 0 { // Publish put every value in before it returned
			got = append(got, <-ch)
		}
		if want := []string{"7", "0", "2", "4"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v (the first value, then the even ones)", got, want)
		}
		if _, delivered, dropped := f.Stats(); delivered != 4 || dropped != 0 {
			t.Fatalf("delivered %d, dropped %d; want 4 and 0", delivered, dropped)
		}
	})
	t.Run("LeaveOnceWhenDropped", func(t *testing.T) {
		f := NewFanout[struct{}, int](1, 10)
		left := 0
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := SubscribeAs(f, ctx, struct{}{}, Sub[int, int]{Convert: func(v int) int { return v }, Leave: func() { left++ }})
		if err != nil {
			t.Fatal(err)
		}
		f.Publish(struct{}{}, 1)
		if dropped := f.Publish(struct{}{}, 2); dropped != 1 {
			t.Fatalf("Publish dropped %d, want the slow subscriber", dropped)
		}
		cancel() // after the drop: Leave must not run again
		if v, ok := <-ch; !ok || v != 1 {
			t.Fatalf("got %d, %v; want the buffered 1", v, ok)
		}
		if _, ok := <-waitClosed(t, ch); ok {
			t.Fatal("dropped subscriber's channel not closed")
		}
		f.mu.Lock()
		n := left
		f.mu.Unlock()
		if subs, _, _ := f.Stats(); n != 1 || subs != 0 {
			t.Fatalf("Leave ran %d times, %d subscribers; want 1 and 0", n, subs)
		}
	})
	t.Run("Close", func(t *testing.T) {
		errDone := errors.New("done")
		f := NewFanout[string, int](1, 10)
		a, _ := f.Subscribe(context.Background(), "a", nil)
		b, _ := f.Subscribe(context.Background(), "b", nil)
		f.Close(errDone)
		for _, ch := range []<-chan int{a, b} {
			if _, ok := <-ch; ok {
				t.Fatal("a channel stayed open after Close")
			}
		}
		if subs, _, _ := f.Stats(); subs != 0 {
			t.Fatalf("%d subscribers after Close", subs)
		}
		if _, err := f.Subscribe(context.Background(), "a", nil); err != errDone {
			t.Fatalf("Subscribe after Close: %v, want Close's error", err)
		}
		if _, err := f.Reserve(context.Background()); err != errDone {
			t.Fatalf("Reserve after Close: %v, want Close's error", err)
		}
	})
	t.Run("NoNotifier", func(t *testing.T) {
		f := NewFanout[struct{}, int](1, 1, NoNotifier())
		// Even a shared notifier: the subscription takes its place in the bound, and is not
		// the notifier's producer.
		ctx, n := WithSharedNotifier(context.Background(), func(bool) { t.Error("notified") })
		if _, err := f.Subscribe(ctx, struct{}{}, nil); err != nil {
			t.Fatal(err)
		}
		f.Publish(struct{}{}, 1)
		if n.Claimed() {
			t.Fatal("a NoNotifier fan-out claimed the notifier")
		}
		if _, err := f.Subscribe(context.Background(), struct{}{}, nil); !errors.Is(err, ErrTooManySubscribers) {
			t.Fatalf("a second subscriber of a fan-out of 1: %v, want ErrTooManySubscribers", err)
		}
	})
}
