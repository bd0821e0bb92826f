package gql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/cmd/eventide-load/internal/load"
	"github.com/eventide/server/cmd/eventide-load/internal/loopback"
)

// Subscription is one operation every subscriber connection runs.
type Subscription struct {
	Name  string // for the report: "memoryStats", "securityEvents"
	Query string
	Vars  map[string]any
}

// SubConfig configures StartSubscribers.
type SubConfig struct {
	URL           string // the GraphQL endpoint, http(s) or ws(s)
	Token         string // sent in connection_init as {"Authorization": "Bearer <token>"}
	Subscriptions []Subscription
	Conns         int
	// DialConcurrency bounds the connections being opened at once; default 16.
	DialConcurrency int
	// HandshakeTimeout bounds a dial plus connection_init/ack; default 15s.
	HandshakeTimeout time.Duration
	// OpenTimeout bounds the opening of all of them; those not open by then are counted as
	// connect errors. Default 30s.
	OpenTimeout time.Duration
}

// Subscribers holds N graphql-transport-ws connections open, each running every Subscription,
// and counts what they receive.
type Subscribers struct {
	cfg    SubConfig
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connected, open atomic.Int64
	messages        atomic.Uint64
	readyAt         time.Time

	mu            sync.Mutex
	connectErrors map[string]int    // connections that never got connection_ack, by why
	refused       map[string]int    // subscriptions answered with "error", by code
	byName        map[string]uint64 // "next" messages per subscription
	payloadErrors map[string]uint64 // "next" payloads carrying errors, by code
	completed     map[string]int    // subscriptions the server completed early, by name
	dropped       map[string]int    // connections that ended before Stop, by why
}

// SubStats is what the subscribers saw.
type SubStats struct {
	Requested     int               `json:"requested"`
	Connected     int64             `json:"connected"`
	OpenAtEnd     int64             `json:"open_at_end"`
	ConnectErrors map[string]int    `json:"connect_errors"`
	Refused       map[string]int    `json:"subscriptions_refused"`
	Messages      uint64            `json:"messages"`
	ByName        map[string]uint64 `json:"messages_by_subscription"`
	PayloadErrors map[string]uint64 `json:"payload_errors"`
	Completed     map[string]int    `json:"completed_by_server"`
	Dropped       map[string]int    `json:"dropped"`
	HeldSeconds   float64           `json:"held_seconds"`
	MessagesPerS  float64           `json:"messages_per_second"`
}

// StartSubscribers opens cfg.Conns connections and returns once each of them is acknowledged
// (and its subscriptions sent) or has failed, or ctx ends. They stay open until Stop or ctx's
// end.
func StartSubscribers(ctx context.Context, cfg SubConfig) *Subscribers {
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 16
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	openCtx, cancelOpen := context.WithTimeout(ctx, cfg.OpenTimeout)
	defer cancelOpen()
	s := &Subscribers{
		cfg:    cfg,
		cancel: cancel,
		client: &http.Client{Transport: &http.Transport{
			Proxy:       nil,
			DialContext: loopback.Dialer(5 * time.Second).DialContext,
		}},
		connectErrors: map[string]int{}, refused: map[string]int{}, byName: map[string]uint64{},
		payloadErrors: map[string]uint64{}, completed: map[string]int{}, dropped: map[string]int{},
	}
	sem := make(chan struct{}, cfg.DialConcurrency)
	var ready sync.WaitGroup
	for range cfg.Conns {
		ready.Add(1)
		s.wg.Go(func() {
			once := sync.OnceFunc(ready.Done)
			defer once()
			select {
			case sem <- struct{}{}:
			case <-openCtx.Done():
				s.count(s.connectErrors, "not opened in time")
				return
			}
			c := s.handshake(openCtx)
			<-sem
			once()
			if c != nil {
				s.hold(ctx, c)
			}
		})
	}
	ready.Wait()
	s.readyAt = time.Now()
	return s
}

func (s *Subscribers) count(m map[string]int, k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := m[k]; !ok && len(m) >= 64 {
		k = "other"
	}
	m[k]++
}

type message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func write(ctx context.Context, c *websocket.Conn, m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}

// handshake dials, sends connection_init, waits for connection_ack and sends the
// subscriptions. It returns nil, having counted why, when any of it fails.
func (s *Subscribers) handshake(ctx context.Context) *websocket.Conn {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(hctx, s.cfg.URL, &websocket.DialOptions{
		HTTPClient:   s.client,
		Subprotocols: []string{"graphql-transport-ws"},
	})
	if err != nil {
		if errors.Is(err, loopback.ErrNotLoopback) {
			s.count(s.connectErrors, "dial: not a loopback address")
		} else if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			s.count(s.connectErrors, fmt.Sprintf("http %d", resp.StatusCode))
		} else {
			s.count(s.connectErrors, "dial: "+load.ClassifyError(err))
		}
		return nil
	}
	fail := func(why string) *websocket.Conn {
		s.count(s.connectErrors, why)
		_ = c.CloseNow()
		return nil
	}
	if c.Subprotocol() != "graphql-transport-ws" {
		return fail("subprotocol graphql-transport-ws not accepted")
	}
	c.SetReadLimit(4 << 20)
	init := map[string]any{"type": "connection_init"}
	if s.cfg.Token != "" {
		init["payload"] = map[string]string{"Authorization": "Bearer " + s.cfg.Token}
	}
	if err := write(hctx, c, init); err != nil {
		return fail("connection_init: " + load.ClassifyError(err))
	}
	for {
		_, b, err := c.Read(hctx)
		if err != nil {
			return fail("waiting for connection_ack: " + closeReason(err))
		}
		var m message
		if json.Unmarshal(b, &m) != nil {
			return fail("waiting for connection_ack: not JSON")
		}
		if m.Type == "ping" {
			_ = write(hctx, c, message{Type: "pong"})
			continue
		}
		if m.Type != "connection_ack" {
			return fail("waiting for connection_ack: got " + m.Type)
		}
		break
	}
	for i, sub := range s.cfg.Subscriptions {
		payload, _ := json.Marshal(map[string]any{"query": sub.Query, "variables": sub.Vars})
		if err := write(hctx, c, message{Type: "subscribe", ID: strconv.Itoa(i + 1), Payload: payload}); err != nil {
			return fail("subscribe: " + load.ClassifyError(err))
		}
	}
	s.connected.Add(1)
	s.open.Add(1)
	return c
}

// closeReason names why a read ended: the close frame's status, or the transport error.
func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Reason != "" {
			return fmt.Sprintf("closed %d %s", int(ce.Code), ce.Reason)
		}
		return fmt.Sprintf("closed %d", int(ce.Code))
	}
	return load.ClassifyError(err)
}

// hold reads c until ctx ends (then completes the subscriptions and closes it properly) or the
// server ends it (counted as dropped).
func (s *Subscribers) hold(ctx context.Context, c *websocket.Conn) {
	var closing atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		closing.Store(true)
		wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for i := range s.cfg.Subscriptions {
			_ = write(wctx, c, message{Type: "complete", ID: strconv.Itoa(i + 1)})
		}
		_ = c.Close(websocket.StatusNormalClosure, "load run over")
	})
	defer func() {
		stop()
		_ = c.CloseNow()
	}()
	// live holds the ids still running: an "error" or "complete" ends one (gqlgen sends both
	// for a refused subscription, and the second must not count twice).
	live := map[string]bool{}
	for i := range s.cfg.Subscriptions {
		live[strconv.Itoa(i+1)] = true
	}
	for {
		_, b, err := c.Read(context.Background()) // ends when the AfterFunc closes c
		if err != nil {
			if !closing.Load() {
				s.open.Add(-1)
				s.count(s.dropped, closeReason(err))
			}
			return
		}
		var m message
		if json.Unmarshal(b, &m) != nil {
			s.count(s.dropped, "message not JSON")
			continue
		}
		switch m.Type {
		case "next":
			s.messages.Add(1)
			s.next(m)
		case "error":
			var errs []gqlError
			_ = json.Unmarshal(m.Payload, &errs)
			code := "NO_CODE"
			if len(errs) > 0 {
				code = errs[0].code()
			}
			if live[m.ID] {
				s.count(s.refused, s.name(m.ID)+": "+code)
			}
			delete(live, m.ID)
		case "complete":
			if live[m.ID] && !closing.Load() {
				s.count(s.completed, s.name(m.ID))
			}
			delete(live, m.ID)
		case "ping":
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = write(wctx, c, message{Type: "pong"})
			cancel()
		}
		if len(live) == 0 && !closing.Load() {
			// Nothing left to receive: a connection with no live subscription is not a subscriber.
			s.open.Add(-1)
			s.count(s.dropped, "no subscription left")
			_ = c.Close(websocket.StatusNormalClosure, "nothing subscribed")
			return
		}
	}
}

func (s *Subscribers) name(id string) string {
	i, err := strconv.Atoi(id)
	if err != nil || i < 1 || i > len(s.cfg.Subscriptions) {
		return "id " + id
	}
	return s.cfg.Subscriptions[i-1].Name
}

func (s *Subscribers) next(m message) {
	name := s.name(m.ID)
	var p struct {
		Errors []gqlError `json:"errors"`
	}
	_ = json.Unmarshal(m.Payload, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byName[name]++
	for _, e := range p.Errors {
		if len(s.payloadErrors) < 64 {
			s.payloadErrors[e.code()]++
		}
	}
}

// Connected returns how many connections were acknowledged so far.
func (s *Subscribers) Connected() int64 { return s.connected.Load() }

// Progress returns the connections open now and the messages received so far.
func (s *Subscribers) Progress() (open int64, messages uint64) {
	return s.open.Load(), s.messages.Load()
}

// Stop closes every connection properly and returns what they saw.
func (s *Subscribers) Stop() SubStats {
	openAtEnd := s.open.Load()
	stopped := time.Now()
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SubStats{
		Requested: s.cfg.Conns, Connected: s.connected.Load(), OpenAtEnd: openAtEnd,
		ConnectErrors: s.connectErrors, Refused: s.refused, Messages: s.messages.Load(),
		ByName: s.byName, PayloadErrors: s.payloadErrors, Completed: s.completed, Dropped: s.dropped,
		HeldSeconds: stopped.Sub(s.readyAt).Seconds(),
	}
	if st.HeldSeconds > 0 {
		st.MessagesPerS = float64(st.Messages) / st.HeldSeconds
	}
	return st
}
