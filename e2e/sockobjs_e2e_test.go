package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/internal/testutil"
)

// The child process of TestLeanSocketHeapObjects: the websocket clients, so that the test
// process's heap holds only the server's side of each socket.
const sockObjsChildEnv = "EVENTIDE_SOCKOBJS_CLIENT" // "<ws url> <event id>"

// sockObjsWarm sockets are opened before the "before" figure: the event loop, the workers, the
// keep-alive wheel and the shared operation start with the first ones and are not per socket.
const (
	sockObjsWarm = 10
	sockObjsN    = 500
)

// Per held socket, the bounds just above what the server reaches (with and without -race; see
// BENCHMARKS.md "Heap objects per held lean websocket").
const (
	maxObjectsPerSocket = 43
	maxBytesPerSocket   = 3100
)

// TestLeanSocketHeapObjects counts what a held lean graphql-transport-ws socket, subscribed
// anonymously to eventUpdated as cmd/eventide-wsbench subscribes, keeps on the server's heap:
// runtime.MemStats' HeapObjects and HeapAlloc after two GCs, before and with sockObjsN sockets
// held, over sockObjsN. Every object is one more for each GC cycle to mark (BENCHMARKS.md, the
// events page beside 10 000 subscribers). EVENTIDE_SOCKOBJS_PROFILE=<file> writes the heap
// profile (every allocation sampled) with the sockets held.
func TestLeanSocketHeapObjects(t *testing.T) {
	if env := os.Getenv(sockObjsChildEnv); env != "" {
		sockObjsClient(t, env)
		return
	}
	if testing.Short() {
		t.Skip("opens 510 websockets from a child process")
	}
	profile := os.Getenv("EVENTIDE_SOCKOBJS_PROFILE")
	if profile != "" {
		runtime.MemProfileRate = 1
	}
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.WSMaxConnectionsPerClient = 2000
	cfg.HTTPMaxConnectionsPerClient = 2000
	cfg.ThrottleLimit = 1_000_000
	ts := startServer(t, cfg)
	lean := ts.app.LeanSockets()
	if lean == nil || cfg.WSTransport == "gqlgen" {
		t.Skip("WS_TRANSPORT=gqlgen: counts the lean transport's sockets")
	}
	org := ts.organizer("Heap Objects Org")
	id := ts.publishedEvent(org, "Held", 10, 24*time.Hour)

	cmd := exec.Command(os.Args[0], "-test.run=^TestLeanSocketHeapObjects$", "-test.v")
	cmd.Env = append(os.Environ(), sockObjsChildEnv+"=ws"+strings.TrimPrefix(ts.base, "http")+"/graphql "+id)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	var out bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the child closes its sockets and exits
		_ = cmd.Wait()
	})
	await := func(word string) {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the client process ended before %s:\n%s\n%s", word, out.String(), stderr.String())
				}
				out.WriteString(l + "\n")
				if l == word {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from the client process:\n%s\n%s", word, out.String(), stderr.String())
			}
		}
	}
	heap := func() (objects, bytes uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapObjects, ms.HeapAlloc
	}

	await("WARM")
	subscribed := func(n int) func() bool {
		return func() bool {
			return lean.Open() == int64(n) &&
				sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", httpapi.TransportWebsocket) == float64(n)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the warm subscriptions in place", subscribed(sockObjsWarm))
	objBefore, bytesBefore := heap()
	if _, err := io.WriteString(stdin, "GO\n"); err != nil {
		t.Fatal(err)
	}
	await("READY")
	testutil.Eventually(t, 20*time.Second, "every subscription in place", subscribed(sockObjsWarm+sockObjsN))
	objHeld, bytesHeld := heap()
	if got := lean.SharedOperations(); got != 1 {
		t.Fatalf("%d shared operations, want the one every subscriber joined", got)
	}
	perObj := (float64(objHeld) - float64(objBefore)) / sockObjsN
	perByte := (float64(bytesHeld) - float64(bytesBefore)) / sockObjsN
	t.Logf("per held socket: %.1f heap objects, %.0f bytes (HeapObjects %d -> %d, HeapAlloc %d -> %d, %d sockets)",
		perObj, perByte, objBefore, objHeld, bytesBefore, bytesHeld, sockObjsN)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	maxObj, maxBytes := float64(maxObjectsPerSocket), float64(maxBytesPerSocket)
	if perObj > maxObj || perByte > maxBytes {
		t.Errorf("a held socket keeps %.1f heap objects and %.0f bytes; the bound is %.0f and %.0f", perObj, perByte, maxObj, maxBytes)
	}
}

// sockObjsClient is the child: it opens sockObjsWarm subscribers, says WARM, waits for GO, opens
// sockObjsN more, says READY once every socket has its subscribe sent, and holds them (answering
// pings) until its stdin closes.
func sockObjsClient(t *testing.T, env string) {
	url, id, _ := strings.Cut(env, " ")
	var mu sync.Mutex
	var conns []*websocket.Conn
	open := func(from, n int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := from; i < from+n; i++ {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				c, err := sockObjsSubscribe(url, id, "10.0."+strconv.Itoa(i/50)+".1")
				if err != nil {
					t.Errorf("subscriber %d: %v", i, err)
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	in := bufio.NewScanner(os.Stdin)
	open(0, sockObjsWarm)
	fmt.Println("WARM")
	if !in.Scan() || in.Text() != "GO" {
		t.Fatal("no GO")
	}
	open(sockObjsWarm, sockObjsN)
	fmt.Println("READY")
	for in.Scan() {
	}
	for _, c := range conns {
		_ = c.CloseNow()
	}
}

// sockObjsSubscribe opens one graphql-transport-ws socket as addr (X-Forwarded-For) and
// subscribes to the event as cmd/eventide-wsbench does (init, ack, subscribe, nothing else: a
// query on the socket would leave maps of its own behind); the parent sees the subscriptions
// in place in eventide_open_subscriptions.
func sockObjsSubscribe(url, id, addr string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader: http.Header{"X-Forwarded-For": {addr}}})
	if err != nil {
		return nil, err
	}
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return c.Write(ctx, websocket.MessageText, b)
	}
	const doc = `subscription($id: ID!){ eventUpdated(id: $id){ id title attendeeCount } }`
	if err := send(map[string]any{"type": "connection_init"}); err != nil {
		return nil, err
	}
	if _, b, err := c.Read(ctx); err != nil || !bytes.Contains(b, []byte("connection_ack")) {
		return nil, fmt.Errorf("init: %s %v", b, err)
	}
	if err := send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": doc, "variables": map[string]any{"id": id}}}); err != nil {
		return nil, err
	}
	go func() { // answer pings while held
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if bytes.Contains(b, []byte(`"type":"ping"`)) {
				_ = c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`))
			}
		}
	}()
	return c, nil
}
