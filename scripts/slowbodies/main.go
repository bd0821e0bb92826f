// Command slowbodies is the slow-body attack of issue 11 (finding 4), for BENCHMARKS.md: n POSTs
// from one loopback address, each declaring a body of -size bytes and sending all but -short of
// them, then holding the connection. It reports when the server cut each one, the server's RSS
// (from /proc, by -pid) before and at its peak, and the latency of a normal client on another
// loopback address meanwhile.
//
//	go run ./scripts/slowbodies -addr 127.0.0.1:18080 -pid $(pgrep -n eventide-new)
//
// Loopback only: -from and -normal-from must be 127.0.0.0/8 addresses (all local on Linux).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server host:port (loopback)")
	n := flag.Int("n", 100, "held bodies")
	size := flag.Int("size", 900_000, "declared body size in bytes")
	short := flag.Int("short", 2, "bytes of the body never sent")
	from := flag.String("from", "127.0.0.2", "the attacker's loopback address")
	normalFrom := flag.String("normal-from", "127.0.0.3", "the normal client's loopback address")
	pid := flag.Int("pid", 0, "server pid, for its RSS (0: not measured)")
	hold := flag.Duration("hold", 60*time.Second, "how long to hold and watch")
	flag.Parse()
	for _, a := range []string{*from, *normalFrom, strings.Split(*addr, ":")[0]} {
		if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(os.Stderr, "slowbodies: %s is not a loopback address\n", a)
			os.Exit(2)
		}
	}

	rssBefore := rss(*pid)
	var peak atomic.Int64
	peak.Store(rssBefore)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { // RSS sampler
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if r := rss(*pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	})
	var lat []time.Duration
	var normalErrs int
	bg.Go(func() { // the normal client, one request every 100 ms
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*normalFrom)}}).DialContext}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			began := time.Now()
			res, err := c.Post("http://"+*addr+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if err != nil || res.StatusCode != http.StatusOK {
				normalErrs++
				continue
			}
			lat = append(lat, time.Since(began))
		}
	})

	type outcome struct {
		cut    time.Duration // when the server ended the connection; 0: still open at the end
		status int           // the status it answered, if any
		err    string
	}
	out := make([]outcome, *n)
	var wg sync.WaitGroup
	began := time.Now()
	deadline := began.Add(*hold)
	for i := range *n {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*from)}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", *addr)
			if err != nil {
				out[i].err = "dial: " + err.Error()
				return
			}
			defer c.Close()
			start := time.Now()
			head := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", *addr, *size)
			body := append([]byte(`{"query":"{ __typename }","variables":{"pad":"`), bytes.Repeat([]byte("x"), *size)...)[:*size-*short]
			go func() { _, _ = c.Write(append([]byte(head), body...)) }()
			_ = c.SetReadDeadline(deadline)
			br := bufio.NewReader(c)
			if res, err := http.ReadResponse(br, nil); err == nil {
				out[i].status = res.StatusCode
				_, _ = io.Copy(io.Discard, res.Body)
			}
			_, err = io.Copy(io.Discard, br)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return // still open
			}
			out[i].cut = time.Since(start)
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()

	var cuts []time.Duration
	statuses := map[int]int{}
	open, errs := 0, 0
	for _, o := range out {
		switch {
		case o.err != "":
			errs++
		case o.cut == 0:
			open++
		default:
			cuts = append(cuts, o.cut)
		}
		statuses[o.status]++
	}
	slices.Sort(cuts)
	slices.Sort(lat)
	fmt.Printf("held bodies: %d x %d bytes declared, %d short, from %s, watched %s\n", *n, *size, *short, *from, *hold)
	fmt.Printf("  cut by the server: %d (first %s, last %s); still open at the end: %d; dial errors: %d\n",
		len(cuts), at(cuts, 0), at(cuts, 1), open, errs)
	fmt.Printf("  answers: %v (0: none)\n", statuses)
	if *pid > 0 {
		fmt.Printf("  server RSS: before %.1f MiB, peak %.1f MiB, growth %.1f MiB\n",
			mib(rssBefore), mib(peak.Load()), mib(peak.Load()-rssBefore))
	}
	fmt.Printf("  normal client from %s: %d requests, %d failed, latency p50 %s p99 %s max %s\n",
		*normalFrom, len(lat), normalErrs, at(lat, 0.5), at(lat, 0.99), at(lat, 1))
}

// at is the q-quantile of sorted ds, or "-".
func at(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "-"
	}
	return ds[int(q*float64(len(ds)-1))].Round(100 * time.Microsecond).String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rss is pid's resident set in bytes, from /proc (0 when pid is 0 or unreadable).
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
