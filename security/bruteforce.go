package security

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jellydator/ttlcache/v3"

	"github.com/eventide/server/eventide"
)

// BruteForceConfig tunes a BruteForce detector. Zero fields take the defaults named beside them.
type BruteForceConfig struct {
	Threshold  int              // BRUTE_FORCE_THRESHOLD: failed logins that raise the alarm; default 5
	Window     time.Duration    // BRUTE_FORCE_WINDOW: within this long; default 15m
	SuspectFor time.Duration    // how long an email or client stays suspected after the alarm; default Window
	MaxKeys    int              // emails and clients tracked at most (least recently used forgotten); default 10000
	Log        *Log             // where BRUTE_FORCE_SUSPECTED goes; nil: nowhere
	Now        func() time.Time // the clock; default time.Now
}

// Attempt is one login attempt as the detector sees it. Email and Client (ClientKey: for an
// anonymous login, the address) are the keys failures are counted by; IP and UserAgent only
// describe the attempt in the event raised.
type Attempt struct {
	Email, Client string
	IP, UserAgent string
}

// BruteForce counts failed logins per email and per client. The Threshold-th failure for one key
// within Window logs one BRUTE_FORCE_SUSPECTED event (HIGH), and the key is then suspected for
// SuspectFor: Suspected reports it, and Throttle lowers its login limit to
// ThrottleConfig.SuspectLoginLimit (one attempt per window by default) instead of locking it out,
// so the real owner of a targeted account can still sign in while a guesser is slowed to a crawl.
//
// A key's window opens at its first failure and lasts Window; it is not a sliding window, which
// keeps each key one counter. One alarm per key per window: failures past the threshold in the
// same window raise nothing more. State is bounded: at most MaxKeys counters and MaxKeys suspects,
// each expiring with its window.
type BruteForce struct {
	cfg BruteForceConfig

	mu       sync.Mutex
	failures *ttlcache.Cache[string, failureCount]
	suspects *ttlcache.Cache[string, int64] // key → suspected until, Unix ns on cfg.Now's clock
	sets     int                            // since the last sweep of expired keys
}

type failureCount struct {
	start  int64 // window opened, Unix ns
	count  int
	raised bool
}

// NewBruteForce returns a detector with nothing counted.
func NewBruteForce(cfg BruteForceConfig) *BruteForce {
	if cfg.Threshold <= 0 {
		cfg.Threshold = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	if cfg.SuspectFor <= 0 {
		cfg.SuspectFor = cfg.Window
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &BruteForce{
		cfg: cfg,
		failures: ttlcache.New(
			ttlcache.WithCapacity[string, failureCount](uint64(cfg.MaxKeys)),
			ttlcache.WithDisableTouchOnHit[string, failureCount](),
		),
		suspects: ttlcache.New(
			ttlcache.WithCapacity[string, int64](uint64(cfg.MaxKeys)),
			ttlcache.WithDisableTouchOnHit[string, int64](),
		),
	}
}

func emailKey(email string) string {
	email = eventide.NormalizeEmail(email)
	if email == "" {
		return ""
	}
	return "email:" + clip(email, maxFieldBytes)
}

func clientKey(client string) string {
	if client == "" {
		return ""
	}
	return "client:" + clip(client, maxFieldBytes)
}

// LoginFailed counts a failed login against a.Email and a.Client (empty ones are not counted)
// and reports whether this failure raised BRUTE_FORCE_SUSPECTED: it does exactly at the
// Threshold-th failure of a key within its window, and one event covers both keys when they
// reach it together.
func (d *BruteForce) LoginFailed(a Attempt) bool {
	now := d.cfg.Now().UnixNano()
	window := int64(d.cfg.Window)
	var hit []string
	d.mu.Lock()
	for _, k := range [2]string{emailKey(a.Email), clientKey(a.Client)} {
		if k == "" {
			continue
		}
		f := failureCount{start: now}
		if it := d.failures.Get(k); it != nil && now-it.Value().start < window {
			f = it.Value()
		}
		f.count++
		if f.count >= d.cfg.Threshold && !f.raised {
			f.raised = true
			hit = append(hit, k)
			d.suspects.Set(k, now+int64(d.cfg.SuspectFor), d.cfg.SuspectFor)
		}
		d.failures.Set(k, f, time.Duration(f.start+window-now))
	}
	if d.sets++; d.sets >= sweepEvery {
		d.sets = 0
		d.failures.DeleteExpired()
		d.suspects.DeleteExpired()
	}
	d.mu.Unlock()
	if len(hit) == 0 {
		return false
	}
	if d.cfg.Log != nil {
		var who []string
		for _, k := range hit {
			if strings.HasPrefix(k, "email:") {
				who = append(who, "for this email")
			} else {
				who = append(who, "from this client")
			}
		}
		d.cfg.Log.Log(Event{
			Type: BruteForceSuspected, Severity: SeverityHigh,
			IP: a.IP, Email: a.Email, UserAgent: a.UserAgent, Operation: "login",
			Message: fmt.Sprintf("%d failed logins %s within %s; logins throttled for %s",
				d.cfg.Threshold, strings.Join(who, " and "), d.cfg.Window, d.cfg.SuspectFor),
		})
	}
	return true
}

// LoginSucceeded clears the failures counted against a.Email: its owner got in. The client's
// count and any suspicion stand, so one good account does not launder a guesser's address.
func (d *BruteForce) LoginSucceeded(a Attempt) {
	if k := emailKey(a.Email); k != "" {
		d.mu.Lock()
		d.failures.Delete(k)
		d.mu.Unlock()
	}
}

// Suspected reports whether email or client is under brute-force suspicion and, if so, for how
// much longer (the longer of the two).
func (d *BruteForce) Suspected(email, client string) (remaining time.Duration, suspected bool) {
	e, c := d.suspectedKey(emailKey(email)), d.suspectedKey(clientKey(client))
	r := max(e, c)
	return r, r > 0
}

func (d *BruteForce) suspectedKey(k string) time.Duration {
	if k == "" {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	it := d.suspects.Get(k)
	if it == nil {
		return 0
	}
	return max(time.Duration(it.Value()-d.cfg.Now().UnixNano()), 0)
}

// Len is the number of emails and clients with failures counted, and of those suspected.
func (d *BruteForce) Len() (counting, suspected int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failures.Len(), d.suspects.Len()
}
