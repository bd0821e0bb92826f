// Command eventide-wsbench measures what idle eventUpdated websocket subscribers cost a running
// Eventide server, and how long one change takes to reach all of them.
//
//	eventide-wsbench -url http://127.0.0.1:18080/graphql -subscribers 10000
//
// It signs in as the admin (ADMIN_EMAIL / ADMIN_PASSWORD of the server), creates and publishes
// one event, reads the server's RSS (the memoryStats query), opens the subscribers (one
// graphql-transport-ws connection and one eventUpdated subscription each), waits -settle, reads
// RSS again (three samples, the median kept), then updates the event -changes times and records,
// per change, the time from the mutation's start until each subscriber has the update. It prints
// one JSON report.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:18080/graphql", "the server's /graphql")
	n := flag.Int("subscribers", 1000, "idle eventUpdated subscribers to open")
	email := flag.String("admin-email", "admin@eventide.local", "admin email")
	password := flag.String("admin-password", "eventide-admin", "admin password")
	settle := flag.Duration("settle", 20*time.Second, "wait after the last subscriber before reading RSS")
	changes := flag.Int("changes", 5, "changes fanned out (one at a time)")
	parallel := flag.Int("dial-parallel", 32, "subscribers opened at once")
	flag.Parse()
	if err := run(*url, *n, *email, *password, *settle, *changes, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "eventide-wsbench:", err)
		os.Exit(1)
	}
}

type report struct {
	Subscribers     int       `json:"subscribers"`
	Connected       int       `json:"connected"`
	RSSBeforeMiB    float64   `json:"rssBeforeMiB"`
	RSSHeldMiB      float64   `json:"rssHeldMiB"`
	PerSubKiB       float64   `json:"perSubscriberKiB"`
	GoroutinesPrior int64     `json:"goroutinesBefore"`
	GoroutinesHeld  int64     `json:"goroutinesHeld"`
	OpenSeconds     float64   `json:"openSeconds"`
	FanOutP50ms     []float64 `json:"fanOutP50ms"`
	FanOutP99ms     []float64 `json:"fanOutP99ms"`
	FanOutMaxMs     []float64 `json:"fanOutMaxMs"`
	Missing         []int     `json:"missing"`
}

func run(url string, n int, email, password string, settle time.Duration, changes, parallel int) error {
	ctx := context.Background()
	var login struct {
		Login struct{ Token string } `json:"login"`
	}
	if err := gql(ctx, url, "", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`,
		map[string]any{"e": email, "p": password}, &login); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	tok := login.Login.Token
	var created struct {
		CreateEvent struct{ ID string } `json:"createEvent"`
	}
	start := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	end := time.Now().Add(50 * time.Hour).UTC().Format(time.RFC3339)
	if err := gql(ctx, url, tok, `mutation($s: Time!, $e: Time!){ createEvent(input: {title: "Fan-out", startsAt: $s, endsAt: $e, capacity: 100}){ id } }`,
		map[string]any{"s": start, "e": end}, &created); err != nil {
		return fmt.Errorf("createEvent: %w", err)
	}
	id := created.CreateEvent.ID
	if err := gql(ctx, url, tok, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": id}, nil); err != nil {
		return fmt.Errorf("publishEvent: %w", err)
	}
	rep := report{Subscribers: n}
	before, gBefore, err := rssMedian(ctx, url, tok)
	if err != nil {
		return err
	}
	rep.RSSBeforeMiB, rep.GoroutinesPrior = before/(1<<20), gBefore

	wsURL := "ws" + strings.TrimPrefix(url, "http")
	subs := make([]*sub, n)
	began := time.Now()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var connected atomic.Int64
	for i := range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s, err := openSub(ctx, wsURL, id, fmt.Sprintf("10.%d.%d.1", i/50/256, i/50%256))
			if err != nil {
				fmt.Fprintf(os.Stderr, "subscriber %d: %v\n", i, err)
				return
			}
			subs[i] = s
			connected.Add(1)
		})
	}
	wg.Wait()
	rep.Connected = int(connected.Load())
	rep.OpenSeconds = time.Since(began).Seconds()
	time.Sleep(settle)
	held, gHeld, err := rssMedian(ctx, url, tok)
	if err != nil {
		return err
	}
	rep.RSSHeldMiB, rep.GoroutinesHeld = held/(1<<20), gHeld
	rep.PerSubKiB = (held - before) / float64(max(1, rep.Connected)) / 1024

	for c := range changes {
		title := fmt.Sprintf("Fan-out %d", c)
		for _, s := range subs {
			if s != nil {
				s.want(title)
			}
		}
		t0 := time.Now()
		if err := gql(ctx, url, tok, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil); err != nil {
			return fmt.Errorf("updateEvent: %w", err)
		}
		var lat []float64
		missing := 0
		deadline := time.After(30 * time.Second)
		for _, s := range subs {
			if s == nil {
				continue
			}
			select {
			case at := <-s.got:
				lat = append(lat, float64(at.Sub(t0).Microseconds())/1000)
			case <-deadline:
				missing++
			}
		}
		slices.Sort(lat)
		rep.FanOutP50ms = append(rep.FanOutP50ms, pct(lat, 0.50))
		rep.FanOutP99ms = append(rep.FanOutP99ms, pct(lat, 0.99))
		rep.FanOutMaxMs = append(rep.FanOutMaxMs, pct(lat, 1))
		rep.Missing = append(rep.Missing, missing)
		time.Sleep(time.Second)
	}
	for _, s := range subs {
		if s != nil {
			_ = s.conn.CloseNow()
		}
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
	return nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

type sub struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	wanted string
	got    chan time.Time
}

func (s *sub) want(title string) {
	s.mu.Lock()
	s.wanted = title
	s.mu.Unlock()
}

// openSub opens one subscriber as client addr (X-Forwarded-For: the server must trust the
// loopback, TRUSTED_PROXIES=127.0.0.1/32): one address may hold 1% of the eventUpdated
// subscribers, so 50 subscribers share an address.
func openSub(ctx context.Context, wsURL, id, addr string) (*sub, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader: http.Header{"X-Forwarded-For": {addr}}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return conn.Write(dctx, websocket.MessageText, b)
	}
	if err := send(map[string]any{"type": "connection_init"}); err != nil {
		return nil, err
	}
	if _, b, err := conn.Read(dctx); err != nil || !bytes.Contains(b, []byte("connection_ack")) {
		return nil, fmt.Errorf("init: %s %v", b, err)
	}
	if err := send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!){ eventUpdated(id: $id){ id title attendeeCount } }`, "variables": map[string]any{"id": id}}}); err != nil {
		return nil, err
	}
	s := &sub{conn: conn, got: make(chan time.Time, 16)}
	go func() {
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			switch {
			case bytes.Contains(b, []byte(`"type":"ping"`)):
				_ = conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`))
			case bytes.Contains(b, []byte(`"type":"next"`)):
				now := time.Now()
				s.mu.Lock()
				w := s.wanted
				s.mu.Unlock()
				if w != "" && bytes.Contains(b, []byte(`"title":"`+w+`"`)) {
					select {
					case s.got <- now:
					default:
					}
				}
			}
		}
	}()
	return s, nil
}

// rssMedian is the median of three memoryStats samples a second apart (RSS bytes, goroutines).
func rssMedian(ctx context.Context, url, tok string) (float64, int64, error) {
	var rss []float64
	var g int64
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		var out struct {
			MemoryStats struct {
				RSSBytes   float64 `json:"rssBytes"`
				Goroutines int64   `json:"goroutines"`
			} `json:"memoryStats"`
		}
		if err := gql(ctx, url, tok, `{ memoryStats { rssBytes goroutines } }`, nil, &out); err != nil {
			return 0, 0, fmt.Errorf("memoryStats: %w", err)
		}
		rss = append(rss, out.MemoryStats.RSSBytes)
		g = out.MemoryStats.Goroutines
	}
	slices.Sort(rss)
	return rss[1], g, nil
}

func gql(ctx context.Context, url, tok, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		return errors.New(r.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}
