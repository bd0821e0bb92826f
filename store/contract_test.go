package store_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store"
	"github.com/eventide/server/store/embedded"
	"github.com/eventide/server/store/storetest"
)

// TestContract runs the store contract against the MongoDB store over the in-process FerretDB,
// through a wire-protocol proxy that can cut the connection at a chosen write command: a store
// outage between two steps of a multi-step write.
func TestContract(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	var n atomic.Int64
	open := func(t *testing.T) storetest.Store {
		p := startFaultProxy(t, srv.Addr())
		u := (&url.URL{Scheme: "mongodb", Host: p.addr(), Path: "/"}).String()
		st, err := store.Open(context.Background(), store.Options{
			URI: u, Database: fmt.Sprintf("contract%d", n.Add(1)), PoolSize: 20, ConnectTimeout: 5 * time.Second,
			ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return &faultyMongo{Store: st, p: p}
	}
	// Issue 12, part 2: the MongoDB store's multi-step writes are separate commands; each one
	// marks the event first and a write stopped halfway is repaired (store/DESIGN.md), so the
	// crash cases pass here as on SQLite.
	storetest.Run(t, open)
}

type faultyMongo struct {
	*store.Store
	p *faultProxy
}

func (f *faultyMongo) FailWritesAfter(n int) { f.p.failWritesAfter(n) }
func (f *faultyMongo) Heal()                 { f.p.heal() }

// faultProxy forwards MongoDB wire messages to FerretDB. Armed, it lets a number of write
// commands through and then, at every later write command, closes the client's connection
// without forwarding it: the write is not applied and the driver sees a network error.
type faultProxy struct {
	ln       net.Listener
	upstream string
	armed    atomic.Bool
	left     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

func startFaultProxy(t *testing.T, upstream string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) failWritesAfter(n int) {
	p.left.Store(int64(n))
	p.armed.Store(true)
}

func (p *faultProxy) heal() { p.armed.Store(false) }

func (p *faultProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(c, true)
		p.track(up, true)
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, up)
			_ = c.Close()
		}()
		go func() {
			defer p.wg.Done()
			defer func() {
				_ = c.Close()
				_ = up.Close()
				p.track(c, false)
				p.track(up, false)
			}()
			p.forward(c, up)
		}()
	}
}

// writeCommands are the commands that change data.
var writeCommands = map[string]bool{"insert": true, "update": true, "delete": true, "findAndModify": true}

// forward copies whole messages from the client to the server, cutting the connection at a
// write command that the armed proxy must fail.
func (p *faultProxy) forward(c, up net.Conn) {
	var hdr [16]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint32(hdr[0:4]))
		if n < 16 || n > 48_000_000 {
			return
		}
		msg := make([]byte, n)
		copy(msg, hdr[:])
		if _, err := io.ReadFull(c, msg[16:]); err != nil {
			return
		}
		if p.armed.Load() && writeCommands[commandName(msg)] && p.left.Add(-1) < 0 {
			return // the deferred close cuts both sides
		}
		if _, err := up.Write(msg); err != nil {
			return
		}
	}
}

// commandName reads the command of an OP_MSG (its body section's first key); "" otherwise.
func commandName(msg []byte) string {
	const opMsg = 2013
	if binary.LittleEndian.Uint32(msg[12:16]) != opMsg || len(msg) < 21+5 {
		return ""
	}
	// header (16), flagBits (4), then sections; the body section is kind 0 followed by a document.
	if msg[20] != 0 {
		return ""
	}
	doc := bson.Raw(msg[21:])
	if l := int(binary.LittleEndian.Uint32(msg[21:25])); l <= len(doc) {
		doc = doc[:l]
	}
	e, err := doc.IndexErr(0)
	if err != nil {
		return ""
	}
	return e.Key()
}

// TestContractOutbox runs the webhook outbox contract on the MongoDB store over FerretDB.
func TestContractOutbox(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	var n atomic.Int64
	storetest.RunOutbox(t, func(t *testing.T, o eventide.OutboxOptions) storetest.OutboxStore {
		p := startFaultProxy(t, srv.Addr())
		u := (&url.URL{Scheme: "mongodb", Host: p.addr(), Path: "/"}).String()
		st, err := store.Open(context.Background(), store.Options{
			URI: u, Database: fmt.Sprintf("outbox%d", n.Add(1)), PoolSize: 20, ConnectTimeout: 5 * time.Second,
			ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute, Outbox: o,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return &faultyMongo{Store: st, p: p}
	})
}
