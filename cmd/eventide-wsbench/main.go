// Command eventide-wsbench measures what idle eventUpdated subscribers cost a running Eventide
// server, and how long one change takes to reach all of them.
//
//	eventide-wsbench -url http://127.0.0.1:18080/graphql -subscribers 10000 [-transport sse]
//
// It signs in as the admin (ADMIN_EMAIL / ADMIN_PASSWORD of the server), creates and publishes
// one event, reads the server's RSS (the memoryStats query), opens the subscribers (one
// connection and one eventUpdated subscription each: a graphql-transport-ws websocket, or with
// -transport sse or multipart a POST answered as a Server-Sent Events stream or a multipart
// subscription, each on its own HTTP/1.1 connection), waits -settle, reads
// RSS again (three samples, the median kept), then updates the event -changes times and records,
// per change, the time from the mutation's start until each subscriber has the update. It prints
// one JSON report.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	kind := flag.String("transport", "ws", "the subscribers' transport: ws (graphql-transport-ws), sse or multipart")
	flag.Parse()
	open, ok := openers[*kind]
	if !ok {
		fmt.Fprintf(os.Stderr, "eventide-wsbench: -transport %q: want ws, sse or multipart\n", *kind)
		os.Exit(2)
	}
	if err := run(*url, *n, *email, *password, *settle, *changes, *parallel, open); err != nil {
		fmt.Fprintln(os.Stderr, "eventide-wsbench:", err)
		os.Exit(1)
	}
}

type report struct {
	Transport       string    `json:"transport"`
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

// openers open one subscriber on event id as client addr (X-Forwarded-For: the server must trust
// the loopback, TRUSTED_PROXIES=127.0.0.1/32): one address may hold 1% of the eventUpdated
// subscribers, so 50 subscribers share an address.
var openers = map[string]func(ctx context.Context, url, id, addr string) (*sub, error){
	"ws": openSub,
	"sse": func(ctx context.Context, url, id, addr string) (*sub, error) {
		return openStream(ctx, url, id, addr, "text/event-stream")
	},
	"multipart": func(ctx context.Context, url, id, addr string) (*sub, error) {
		return openStream(ctx, url, id, addr, multipartAccept)
	},
}

func run(url string, n int, email, password string, settle time.Duration, changes, parallel int,
	open func(ctx context.Context, url, id, addr string) (*sub, error)) error {
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
	rep := report{Transport: flag.Lookup("transport").Value.String(), Subscribers: n}
	before, gBefore, err := rssMedian(ctx, url, tok)
	if err != nil {
		return err
	}
	rep.RSSBeforeMiB, rep.GoroutinesPrior = before/(1<<20), gBefore

	subs := make([]*sub, n)
	began := time.Now()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var connected atomic.Int64
	for i := range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s, err := open(ctx, url, id, fmt.Sprintf("10.%d.%d.1", i/50/256, i/50%256))
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
			s.close()
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
	close  func()
	mu     sync.Mutex
	wanted string
	got    chan time.Time
}

func (s *sub) want(title string) {
	s.mu.Lock()
	s.wanted = title
	s.mu.Unlock()
}

// saw records when b carries the title s waits for.
func (s *sub) saw(b []byte) {
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

const subscription = `subscription($id: ID!){ eventUpdated(id: $id){ id title attendeeCount } }`

// openSub opens one graphql-transport-ws subscriber.
func openSub(ctx context.Context, url, id, addr string) (*sub, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"},
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
		"query": subscription, "variables": map[string]any{"id": id}}}); err != nil {
		return nil, err
	}
	s := &sub{close: func() { _ = conn.CloseNow() }, got: make(chan time.Time, 16)}
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
				s.saw(b)
			}
		}
	}()
	return s, nil
}

// multipartAccept is Apollo Client's Accept for a subscription over multipart HTTP.
const multipartAccept = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json;q=0.9"

// streams is the HTTP client of the SSE and multipart subscribers: one connection each.
var streams = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}}

// openStream opens one subscriber as a POST whose answer is a stream of type accept (SSE or
// multipart); it reads the stream line by line.
func openStream(ctx context.Context, url, id, addr, accept string) (*sub, error) {
	body, _ := json.Marshal(map[string]any{"query": subscription, "variables": map[string]any{"id": id}})
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	req.Header.Set("X-Forwarded-For", addr)
	res, err := streams.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		cancel()
		return nil, fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	s := &sub{close: func() { cancel(); res.Body.Close() }, got: make(chan time.Time, 16)}
	go func() {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			s.saw(sc.Bytes())
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
