package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/httpapi"
)

// sumOf adds the series of metric name whose labels include every label="value" of want.
func sumOf(m map[string]float64, name string, want ...string) float64 {
	var sum float64
next:
	for series, v := range m {
		if !strings.HasPrefix(series, name+"{") {
			continue
		}
		for i := 0; i+1 < len(want); i += 2 {
			if !strings.Contains(series, want[i]+`="`+want[i+1]+`"`) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

// TestOperationMetrics: after known requests, /metrics counts each operation under its name, type
// and the code of its first error (answers of the response cache included), times it, times the
// store's commands, and counts open subscriptions by transport, back to 0 when they end.
func TestOperationMetrics(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Metrics Org")
	id := ts.publishedEvent(org, "Counted", 10, 3*time.Hour)

	page := `query EventsPage { events(first: 5){ edges { node { id organizer { name } } } } }`
	ts.mustData("", page, nil, nil)
	ts.mustData("", page, nil, nil) // the second from the response cache
	ts.mustCode("UNAUTHENTICATED", "", `mutation NewVenue { createVenue(input:{name:"x", address:"y", city:"z"}){ id } }`, nil)
	ts.mustCode("GRAPHQL_VALIDATION_FAILED", "", `query Broken { noSuchField }`, nil)
	ts.mustData("", `{ events(first: 1){ pageInfo { hasNextPage } } }`, nil, nil)

	m := ts.metrics()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"eventide_graphql_operations_total", []string{"operation", "EventsPage", "type", "query", "code", "OK"}, 2},
		{"eventide_graphql_operation_seconds_count", []string{"operation", "EventsPage", "type", "query"}, 2},
		{"eventide_graphql_operations_total", []string{"operation", "NewVenue", "type", "mutation", "code", "UNAUTHENTICATED"}, 1},
		// Refused before execution: its name is not trusted, so it counts as other.
		{"eventide_graphql_operations_total", []string{"operation", "other", "code", "GRAPHQL_VALIDATION_FAILED"}, 1},
		{"eventide_graphql_operations_total", []string{"operation", "Broken"}, 0},
		{"eventide_graphql_operations_total", []string{"operation", "anonymous", "type", "query", "code", "OK"}, 1},
		{"eventide_open_subscriptions", []string{"transport", "ws"}, 0},
		{"eventide_open_subscriptions", []string{"transport", "sse"}, 0},
		{"eventide_open_subscriptions", []string{"transport", "multipart"}, 0},
	} {
		if got := sumOf(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := sumOf(m, "eventide_store_command_seconds_count", "store", "sqlite", "command", "select"); n < 1 {
		t.Errorf("eventide_store_command_seconds_count{store=sqlite,command=select} = %v", n)
	}
	if n := sumOf(m, "eventide_store_command_seconds_count", "store", "sqlite", "command", "insert"); n < 1 {
		t.Errorf("eventide_store_command_seconds_count{store=sqlite,command=insert} = %v", n)
	}

	waitGauge := func(transport string, want float64) {
		t.Helper()
		var got float64
		for range 200 {
			if got = sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", transport); got == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("eventide_open_subscriptions{transport=%s} = %v, want %v", transport, got, want)
	}
	t.Run("WebsocketSubscriptionOpenThenClosed", func(t *testing.T) {
		c := ts.dialWS("graphql-transport-ws", nil)
		c.subscribe("1", eventUpdatedSub, map[string]any{"id": id})
		waitGauge(httpapi.TransportWebsocket, 1)
		c.send(map[string]any{"id": "1", "type": "complete"})
		waitGauge(httpapi.TransportWebsocket, 0)
		c.subscribe("2", eventUpdatedSub, map[string]any{"id": id})
		waitGauge(httpapi.TransportWebsocket, 1)
		_ = c.conn.CloseNow() // the connection gone: the subscription ends with it
		waitGauge(httpapi.TransportWebsocket, 0)
	})
	t.Run("SSESubscriptionOpenThenClosed", func(t *testing.T) {
		s, status, body := ts.sseOpen(t, nil, "", eventUpdatedSub, map[string]any{"id": id})
		if s == nil {
			t.Fatalf("SSE %d: %s", status, body)
		}
		waitGauge(httpapi.TransportSSE, 1)
		_ = s.res.Body.Close()
		waitGauge(httpapi.TransportSSE, 0)
	})
}

// TestOperationLabelBound: past DefaultMaxOperationNames distinct names, operations count as
// "other"; the label never takes more values than that (plus anonymous and other).
func TestOperationLabelBound(t *testing.T) {
	ts := startServer(t, nil)
	extra := 20
	for i := range httpapi.DefaultMaxOperationNames + extra {
		ts.mustData("", fmt.Sprintf(`query Q%03d { events(first: 1){ pageInfo { hasNextPage } } }`, i), nil, nil)
	}
	m := ts.metrics()
	names := map[string]bool{}
	for series := range m {
		rest, ok := strings.CutPrefix(series, "eventide_graphql_operations_total{")
		if !ok {
			continue
		}
		_, after, _ := strings.Cut(rest, `operation="`)
		name, _, _ := strings.Cut(after, `"`)
		names[name] = true
	}
	named := 0
	for n := range names {
		if n != "other" && n != "anonymous" {
			named++
		}
	}
	if named != httpapi.DefaultMaxOperationNames {
		t.Errorf("%d operation names labelled, want the first %d", named, httpapi.DefaultMaxOperationNames)
	}
	if got := sumOf(m, "eventide_graphql_operations_total", "operation", "other", "type", "query", "code", "OK"); got != float64(extra) {
		t.Errorf("other = %v, want %d", got, extra)
	}
	if got := sumOf(m, "eventide_graphql_operations_total", "operation", fmt.Sprintf("Q%03d", httpapi.DefaultMaxOperationNames+extra-1)); got != 0 {
		t.Errorf("the last name got a label of its own (%v)", got)
	}
}
