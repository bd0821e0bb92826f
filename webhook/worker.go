// Package webhook delivers the webhook outbox (API.md, "Webhooks"): the stores write each message
// in the same write as the change it reports (eventide.WebhookOutbox); the Worker POSTs them to
// the WEBHOOK_URLS, signed with HMAC-SHA256, at least once.
//
// DESIGN: bounded and ordered.
//   - One goroutine per receiver (WEBHOOK_URLS is bounded by config), so at most one request is in
//     flight per receiver, and it only ever claims the receiver's OLDEST pending delivery: a
//     receiver sees its messages in order, a failing one holds up only itself.
//   - A claim is a lease in the store (a conditional findOneAndUpdate on MongoDB), so with several
//     replicas one delivers a message at a time; a replica that dies mid-attempt loses the lease
//     after leaseFor and another takes over (at least once: the receiver may see the id twice).
//   - Retries back off exponentially from WEBHOOK_BACKOFF, doubling up to an hour, each delay
//     drawn uniformly from its upper half (jitter); after WEBHOOK_MAX_ATTEMPTS the delivery is
//     FAILED. The body is stored bytes, so every attempt sends and signs exactly the same body
//     with the same Eventide-Delivery id.
//   - Nothing is kept in memory per message: the queue is the store's outbox, bounded by age
//     (WEBHOOK_RETENTION deletes DELIVERED and FAILED rows); the wake-up channels hold one token.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventide/server/eventide"
)

// Header names (API.md).
const (
	HeaderDelivery  = "Eventide-Delivery"
	HeaderSignature = "Eventide-Signature"
	HeaderEvent     = "Eventide-Event"
)

// MaxBackoff caps the delay between two attempts.
const MaxBackoff = time.Hour

// Options configures a Worker.
type Options struct {
	Receivers   []string
	Secret      string
	Timeout     time.Duration // per attempt (WEBHOOK_TIMEOUT)
	MaxAttempts int           // then FAILED (WEBHOOK_MAX_ATTEMPTS)
	Backoff     time.Duration // first retry delay (WEBHOOK_BACKOFF)
	Retention   time.Duration // DELIVERED and FAILED rows older than this are deleted (WEBHOOK_RETENTION)
	// Poll is how often a receiver's loop looks at the outbox without a wake-up (writes of other
	// replicas, due retries); default 1s.
	Poll   time.Duration
	Logger *slog.Logger
}

// Worker delivers the outbox.
type Worker struct {
	o      Options
	store  eventide.WebhookOutbox
	client *http.Client
	log    *slog.Logger
	wake   []chan struct{}

	results *prometheus.CounterVec
	depth   prometheus.Gauge
	oldest  prometheus.Gauge

	runOnce sync.Once
}

// New returns a worker for st; Run starts it.
func New(st eventide.WebhookOutbox, o Options) *Worker {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		o: o, store: st, log: o.Logger,
		client: &http.Client{
			// A redirect is the receiver's answer, not ours to follow with the signed body.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake: make([]chan struct{}, len(o.Receivers)),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventide_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result: delivered, retry (failed, will be retried), failed (gave up).",
		}, []string{"result"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventide_webhook_outbox_depth", Help: "Webhook deliveries pending in the outbox.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventide_webhook_oldest_pending_seconds", Help: "Age of the oldest pending webhook delivery (0: none).",
		}),
	}
	for _, r := range []string{"delivered", "retry", "failed"} {
		w.results.WithLabelValues(r)
	}
	for i := range w.wake {
		w.wake[i] = make(chan struct{}, 1)
	}
	return w
}

// Collectors are the worker's metrics.
func (w *Worker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.results, w.depth, w.oldest}
}

// Notify wakes every receiver's loop (a write added to the outbox); it never blocks.
func (w *Worker) Notify() {
	for _, c := range w.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Sign is the Eventide-Signature of body under secret: "sha256=" and the hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Backoff is the delay after the attempt-th failed attempt (1-based): base doubling, capped at
// MaxBackoff, drawn uniformly from [d/2, d].
func Backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}

// leaseFor is how long a claim holds a delivery: the attempt's timeout plus room for the store.
func (w *Worker) leaseFor() time.Duration { return 2*w.o.Timeout + 10*time.Second }

// Run delivers until ctx ends, then returns once every attempt in flight has ended (cancelled
// with ctx: its lease is given back, the attempt not counted).
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, r := range w.o.Receivers {
		wg.Go(func() { w.receiverLoop(ctx, r, w.wake[i]) })
	}
	wg.Go(func() { w.housekeeping(ctx) })
	wg.Wait()
}

func (w *Worker) receiverLoop(ctx context.Context, receiver string, wake <-chan struct{}) {
	log := w.log.With("receiver", Redact(receiver))
	for ctx.Err() == nil {
		owner := newOwner()
		d, next, err := w.store.ClaimWebhook(ctx, receiver, owner, time.Now(), w.leaseFor())
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("webhook: cannot read the outbox", "error", err)
			}
			w.sleep(ctx, wake, time.Now().Add(w.o.Poll))
			continue
		}
		if d == nil {
			until := time.Now().Add(w.o.Poll)
			if !next.IsZero() && next.Before(until) {
				until = next
			}
			w.sleep(ctx, wake, until)
			continue
		}
		out := w.attempt(ctx, d)
		if ctx.Err() != nil {
			// Shutting down: the attempt was cut short; give the delivery back uncounted.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = w.store.ReleaseWebhook(rctx, d.Key, owner)
			cancel()
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		ok, err := w.store.FinishWebhook(fctx, d.Key, owner, out)
		cancel()
		switch {
		case err != nil:
			log.Warn("webhook: could not record an attempt; it is retried when its lease ends", "id", d.ID, "error", err)
		case !ok:
			log.Warn("webhook: an attempt outlived its lease; another replica may deliver it again", "id", d.ID)
		}
		switch out.Status {
		case eventide.DeliveryDelivered:
			w.results.WithLabelValues("delivered").Inc()
		case eventide.DeliveryFailed:
			w.results.WithLabelValues("failed").Inc()
			log.Warn("webhook: delivery failed for good", "id", d.ID, "type", d.Type, "attempts", d.Attempts, "error", out.Error)
		default:
			w.results.WithLabelValues("retry").Inc()
			log.Info("webhook: delivery attempt failed; will retry", "id", d.ID, "attempt", d.Attempts,
				"next_attempt_at", out.NextAttemptAt, "error", out.Error)
		}
	}
}

// sleep waits until until, a wake-up or the end of ctx.
func (w *Worker) sleep(ctx context.Context, wake <-chan struct{}, until time.Time) {
	t := time.NewTimer(max(time.Until(until), 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// attempt POSTs d once and says what came of it.
func (w *Worker) attempt(ctx context.Context, d *eventide.WebhookDelivery) eventide.WebhookOutcome {
	err := w.post(ctx, d)
	at := time.Now()
	if err == nil {
		// The error of an earlier attempt stays visible (webhookDeliveries' lastError).
		return eventide.WebhookOutcome{Status: eventide.DeliveryDelivered, Error: d.LastError, At: at, NextAttemptAt: at}
	}
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if d.Attempts >= w.o.MaxAttempts {
		return eventide.WebhookOutcome{Status: eventide.DeliveryFailed, Error: msg, At: at, NextAttemptAt: at}
	}
	return eventide.WebhookOutcome{Status: eventide.DeliveryPending, Error: msg, At: at, NextAttemptAt: at.Add(Backoff(w.o.Backoff, d.Attempts))}
}

func (w *Worker) post(ctx context.Context, d *eventide.WebhookDelivery) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Receiver, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Eventide-Webhooks/1")
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.Type)
	req.Header.Set(HeaderSignature, Sign(w.o.Secret, d.Body))
	res, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s", w.o.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return nil
}

// housekeeping deletes finished deliveries past WEBHOOK_RETENTION and refreshes the backlog
// gauges, until ctx ends.
func (w *Worker) housekeeping(ctx context.Context) {
	purgeEvery := min(max(w.o.Retention/2, time.Second), time.Minute)
	lastPurge := time.Time{}
	t := time.NewTicker(statsInterval)
	defer t.Stop()
	for {
		if time.Since(lastPurge) >= purgeEvery {
			lastPurge = time.Now()
			if n, err := w.store.PurgeWebhooks(ctx, time.Now().Add(-w.o.Retention)); err != nil && ctx.Err() == nil {
				w.log.Warn("webhook: retention purge failed", "error", err)
			} else if n > 0 {
				w.log.Info("webhook: deleted finished deliveries past WEBHOOK_RETENTION", "deliveries", n)
			}
		}
		if n, oldest, err := w.store.WebhookBacklog(ctx); err == nil {
			w.depth.Set(float64(n))
			if oldest.IsZero() {
				w.oldest.Set(0)
			} else {
				w.oldest.Set(max(time.Since(oldest).Seconds(), 0))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statsInterval is how often the backlog gauges are refreshed.
const statsInterval = 2 * time.Second

func newOwner() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Redact is a receiver URL without its user information, for logs and the admin API.
func Redact(receiver string) string {
	u, err := url.Parse(receiver)
	if err != nil || u.User == nil {
		return receiver
	}
	u.User = nil
	return u.String()
}
