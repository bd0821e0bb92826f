package gql

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsServer answers graphql-transport-ws: it refuses a connection_init without the right token
// with 4403, pings once and expects a pong, and answers each subscription with one "next", or
// with "error" then "complete" (as gqlgen does) for a query named Refused. dropAfter closes the
// connection with 1011 after that many subscriptions.
func wsServer(t *testing.T, dropAfter int) (*httptest.Server, *atomic.Int64) {
	var pongs atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		send := func(v map[string]any) { b, _ := json.Marshal(v); _ = c.Write(ctx, websocket.MessageText, b) }
		var m struct {
			Type    string `json:"type"`
			ID      string `json:"id"`
			Payload struct {
				Authorization string `json:"Authorization"`
				Query         string `json:"query"`
			} `json:"payload"`
		}
		_, b, err := c.Read(ctx)
		if err != nil || json.Unmarshal(b, &m) != nil || m.Payload.Authorization != "Bearer ok" {
			_ = c.Close(4403, "Forbidden")
			return
		}
		send(map[string]any{"type": "connection_ack"})
		send(map[string]any{"type": "ping"})
		subs := 0
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			m.Type, m.ID, m.Payload.Query = "", "", ""
			_ = json.Unmarshal(b, &m)
			switch m.Type {
			case "pong":
				pongs.Add(1)
			case "subscribe":
				if m.Payload.Query == "subscription Refused { x }" {
					send(map[string]any{"type": "error", "id": m.ID, "payload": []any{map[string]any{"message": "no", "extensions": map[string]any{"code": "FORBIDDEN"}}}})
					send(map[string]any{"type": "complete", "id": m.ID})
				} else {
					send(map[string]any{"type": "next", "id": m.ID, "payload": map[string]any{"data": map[string]any{"x": 1}, "errors": []any{map[string]any{"message": "partial", "extensions": map[string]any{"code": "INTERNAL_SERVER_ERROR"}}}}})
				}
				if subs++; subs == dropAfter {
					_ = c.Close(websocket.StatusInternalError, "going away")
					return
				}
			}
		}
	}))
	t.Cleanup(ts.Close)
	return ts, &pongs
}

func TestSubscribers(t *testing.T) {
	live := Subscription{Name: "live", Query: "subscription Live { x }"}
	refused := Subscription{Name: "refused", Query: "subscription Refused { x }"}
	t.Run("OK", func(t *testing.T) {
		ts, pongs := wsServer(t, 0)
		s := StartSubscribers(context.Background(), SubConfig{URL: ts.URL, Token: "ok", Conns: 4, Subscriptions: []Subscription{live, refused}})
		if s.Connected() != 4 {
			t.Fatalf("%d connected", s.Connected())
		}
		time.Sleep(200 * time.Millisecond)
		st := s.Stop()
		if st.OpenAtEnd != 4 || st.Messages != 4 || st.ByName["live"] != 4 || st.Refused["refused: FORBIDDEN"] != 4 ||
			len(st.Completed) != 0 || len(st.Dropped) != 0 || st.PayloadErrors["INTERNAL_SERVER_ERROR"] != 4 {
			t.Errorf("%+v", st)
		}
		if pongs.Load() != 4 {
			t.Errorf("%d pongs to 4 pings", pongs.Load())
		}
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		ts, _ := wsServer(t, 0)
		st := StartSubscribers(context.Background(), SubConfig{URL: ts.URL, Token: "bad", Conns: 3, Subscriptions: []Subscription{live}}).Stop()
		if st.Connected != 0 || st.ConnectErrors["waiting for connection_ack: closed 4403 Forbidden"] != 3 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("ErrDropped", func(t *testing.T) {
		ts, _ := wsServer(t, 1)
		s := StartSubscribers(context.Background(), SubConfig{URL: ts.URL, Token: "ok", Conns: 2, Subscriptions: []Subscription{live}})
		time.Sleep(200 * time.Millisecond)
		st := s.Stop()
		if st.Connected != 2 || st.OpenAtEnd != 0 || st.Dropped["closed 1011 going away"] != 2 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("ErrNothingSubscribed", func(t *testing.T) {
		ts, _ := wsServer(t, 0)
		s := StartSubscribers(context.Background(), SubConfig{URL: ts.URL, Token: "ok", Conns: 2, Subscriptions: []Subscription{refused}})
		time.Sleep(200 * time.Millisecond)
		st := s.Stop()
		if st.OpenAtEnd != 0 || st.Dropped["no subscription left"] != 2 || st.Refused["refused: FORBIDDEN"] != 2 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("ErrNotLoopback", func(t *testing.T) {
		st := StartSubscribers(context.Background(), SubConfig{URL: "http://192.0.2.1/graphql", Token: "ok", Conns: 1, Subscriptions: []Subscription{live}}).Stop()
		if st.Connected != 0 || st.ConnectErrors["dial: not a loopback address"] != 1 {
			t.Errorf("%+v", st)
		}
	})
}
