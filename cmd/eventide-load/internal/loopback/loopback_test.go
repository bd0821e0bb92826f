package loopback

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{
		"http://127.0.0.1:8080/graphql",
		"http://127.8.9.10/graphql",
		"http://localhost:8080/graphql",
		"http://LOCALHOST./graphql",
		"https://[::1]:8443/graphql",
		"http://[::ffff:127.0.0.1]:8080/graphql",
		"ws://127.0.0.1:8080/graphql",
	} {
		if _, err := CheckURL(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"http://10.0.0.1:8080/graphql",
		"http://192.168.1.20/graphql",
		"http://172.16.0.1/graphql",
		"http://8.8.8.8/graphql",
		"http://[::ffff:10.0.0.1]/graphql",
		"http://[2001:db8::1]/graphql",
		"http://0.0.0.0:8080/graphql",
		"http://example.com/graphql",
		"http://localhost.example.com/graphql",
		"http://127.0.0.1.nip.io/graphql",
		"http:///graphql",
	} {
		if _, err := CheckURL(bad); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: %v, want ErrNotLoopback", bad, err)
		}
	}
	for _, bad := range []string{"ftp://127.0.0.1/x", "127.0.0.1:8080", "://"} {
		if _, err := CheckURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestDialer(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ts.Close()
	d := Dialer(time.Second)
	c, err := d.DialContext(context.Background(), "tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	c.Close()
	// The check runs before any packet is sent, so this never reaches the network.
	if _, err := d.DialContext(context.Background(), "tcp", "192.0.2.1:80"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("TEST-NET dial: %v, want ErrNotLoopback", err)
	}
	// A redirect off the machine is refused by the dialer too.
	redirect := httptest.NewServer(http.RedirectHandler("http://192.0.2.1/graphql", http.StatusFound))
	defer redirect.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	if _, err := client.Get(redirect.URL); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("redirect: %v, want ErrNotLoopback", err)
	}
}
