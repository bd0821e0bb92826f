package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/eventide/server/memstats"
)

// The browser test's switches, all environment variables.
const (
	// requireBrowserEnv, when "1", turns a missing chromium binary into a failure instead of a
	// skip. .ci/run sets it.
	requireBrowserEnv = "EVENTIDE_REQUIRE_BROWSER"
	// artifactsEnv names a folder for the test's screenshot (default: a temp dir of the test).
	artifactsEnv = "EVENTIDE_ARTIFACTS"
	// screenshotEnv names a file that also gets the screenshot, relative to the repository
	// root: EVENTIDE_SCREENSHOT=docs/monitor.png go test -run TestMonitorInBrowser ./e2e
	screenshotEnv = "EVENTIDE_SCREENSHOT"
)

// screenshotWidth and screenshotHeight are the viewport: a common laptop screen.
const screenshotWidth, screenshotHeight = 1366, 768

// TestMonitorInBrowser opens /monitor in headless Chromium against a real server, signs in as
// the admin, watches the RSS figure move, causes security events over plain HTTP and sees them
// arrive in the table; it fails on any JavaScript exception, console error or warning, failed or
// refused request, or request to another origin than the server's.
func TestMonitorInBrowser(t *testing.T) {
	chromium := findChromium(t)
	ts := startServer(t, nil)
	w := newBrowserWatch(t, ts.base)
	ctx := startBrowser(t, chromium, w)

	// step runs browser actions with a deadline; a failure reports what the browser saw.
	step := func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, w.report())
		}
	}
	// poll waits until a JavaScript expression is truthy and returns its value.
	poll := func(what string, timeout time.Duration, expr string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Poll[string](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
		if err != nil {
			t.Fatalf("waiting until %s: %v\n%s", what, err, w.report())
		}
		return v
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v\n%s", expr, err, w.report())
		}
		return v
	}

	step("open /monitor", 20*time.Second,
		chromedp.EmulateViewport(screenshotWidth, screenshotHeight),
		chromedp.Navigate(ts.base+"/monitor"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-testid=signin-form] input[name=email]`)),
	)
	if got := eval(`document.querySelector('[data-testid=connection]').dataset.state`); got != "signed-out" {
		t.Errorf("connection before sign-in = %q, want signed-out", got)
	}

	step("sign in", 20*time.Second,
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), testAdminEmail),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), testAdminPassword),
		chromedp.Click(chromedp.CSS(`form[data-testid=signin-form] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=rss]`)),
	)
	poll("the connection is live", 20*time.Second,
		`document.querySelector('[data-testid=connection]').dataset.state === 'live' && 'live'`)

	// RSS: the first sample, then a change. The server runs in this process, so touching fresh
	// memory here raises the RSS that its next sample (one a second) reports.
	rss1 := poll("the RSS is shown", 20*time.Second, rssExpr(""))
	ballast := make([]byte, 96<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	t.Cleanup(func() {
		// Give it back, for the tests after this one that measure this process's memory.
		ballast = nil
		runtime.GC()
		debug.FreeOSMemory()
	})
	rss2 := poll("the RSS changes from "+rss1, 20*time.Second, rssExpr(rss1))
	actual, err := memstats.ReadRSS()
	if err == nil {
		shown := parseShownSize(t, rss2)
		if shown < actual/2 || shown > actual*2 {
			t.Errorf("RSS shown %s (%d bytes), the process has %d bytes resident", rss2, shown, actual)
		}
	}
	t.Logf("RSS %s → %s", rss1, rss2)
	if n := eval(`String(document.querySelectorAll('[data-testid=memory-chart] canvas').length)`); n == "0" {
		t.Error("the memory chart has no canvas")
	}

	// The panels ask serverInfo, cacheStats and databaseStats over HTTP: each is filled, none stale.
	poll("the server, cache and database panels are filled", 20*time.Second, `(() => {
		const v = (panel, f) => document.querySelector('[data-testid=' + panel + '] [data-field=' + f + ']').textContent;
		return v('server-info', 'pid') === '`+strconv.Itoa(os.Getpid())+`' && v('server-info', 'environment') === 'test' &&
			v('cache-stats', 'backend') !== '–' && v('database-stats', 'connected').includes('connected') && 'filled';
	})()`)
	if stale := eval(`String(document.querySelectorAll('.badge-stale:not([hidden])').length)`); stale != "0" {
		t.Errorf("%s panels are marked stale", stale)
	}

	admin := ts.admin() // a LOGIN_SUCCEEDED of its own, before the failure below
	poll("the test's own admin login is on top", 20*time.Second, topRowExpr("LOGIN_SUCCEEDED"))

	// A failed login from outside the page: its row comes over the subscription, on top.
	intruder := "mallory@example.com"
	ts.mustCode("UNAUTHENTICATED", "", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`,
		map[string]any{"e": intruder, "p": "not-the-password"})
	poll("the failed login is on top", 20*time.Second, topRowExpr("LOGIN_FAILED"))
	var latest struct {
		SecurityEvents []struct{ ID, Type, Severity, Email string }
	}
	ts.mustData(admin.Token, `{ securityEvents(last: 1){ id type severity email } }`, nil, &latest)
	if len(latest.SecurityEvents) != 1 || latest.SecurityEvents[0].Type != "LOGIN_FAILED" {
		t.Fatalf("the server's newest security event is %+v, want the LOGIN_FAILED", latest.SecurityEvents)
	}
	var top struct{ ID, Type, Severity, Cells string }
	if err := json.Unmarshal([]byte(eval(`JSON.stringify((() => {
		const tr = document.querySelector('tr[data-testid=security-event]');
		return { id: tr.dataset.id, type: tr.dataset.type, severity: tr.dataset.severity,
			cells: Array.from(tr.cells, td => td.textContent).join(' | ') };
	})())`)), &top); err != nil {
		t.Fatal(err)
	}
	want := latest.SecurityEvents[0]
	if top.ID != want.ID || top.Type != want.Type || top.Severity != want.Severity {
		t.Errorf("top row id=%s type=%s severity=%s, the server's event id=%s type=%s severity=%s",
			top.ID, top.Type, top.Severity, want.ID, want.Type, want.Severity)
	}
	if !strings.Contains(top.Cells, intruder) || !strings.Contains(top.Cells, "login failed") {
		t.Errorf("top row reads %q, want the email %s and %q", top.Cells, intruder, "login failed")
	}
	t.Logf("top row: %s", top.Cells)

	// More kinds of event, as an admin would see them: a sign-up, a user asking for admin data,
	// a forged token, a query with too many aliases, and failures enough to look like guessing.
	user := ts.signUp("Rita Reader")
	ts.mustCode("FORBIDDEN", user.Token, `{ cacheStats { hits } }`, nil)
	ts.mustCode("UNAUTHENTICATED", "not-a-token", `{ me { id } }`, nil)
	var aliases strings.Builder
	for i := range 40 {
		fmt.Fprintf(&aliases, " a%d: __typename", i)
	}
	ts.mustCode("QUERY_TOO_COMPLEX", "", "{"+aliases.String()+" }", nil)
	for range 4 {
		ts.mustCode("UNAUTHENTICATED", "", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`,
			map[string]any{"e": intruder, "p": "still-not-it"})
	}

	// The table then holds exactly the server's events, in the server's order (newest first).
	var all struct {
		SecurityEvents []struct{ ID, Type, Severity string }
	}
	ts.mustData(admin.Token, `{ securityEvents(last: 500){ id type severity } }`, nil, &all)
	var ids, types []string
	count := map[string]int{}
	high := 0
	for _, e := range all.SecurityEvents {
		ids = append(ids, e.ID)
		types = append(types, e.Type)
		count[e.Type]++
		if e.Severity == "HIGH" || e.Severity == "CRITICAL" {
			high++
		}
	}
	// The page's own requests cause none: its sign-in is one LOGIN_SUCCEEDED and the test's the
	// other, and the one refused query, denied access and bad token are the test's.
	for typ, want := range map[string]int{"LOGIN_SUCCEEDED": 2, "QUERY_REJECTED": 1, "ACCESS_DENIED": 1, "TOKEN_INVALID": 1,
		"SIGNED_UP": 1, "LOGIN_FAILED": 5} {
		if count[typ] != want {
			t.Errorf("the server logged %d %s, want %d: %v", count[typ], typ, want, types)
		}
	}
	if count["BRUTE_FORCE_SUSPECTED"] == 0 {
		t.Errorf("the server logged no BRUTE_FORCE_SUSPECTED: %v", types)
	}
	const rowIDs = `Array.from(document.querySelectorAll('tr[data-testid=security-event]'), tr => tr.dataset.id).join(',')`
	wantIDs, _ := json.Marshal(strings.Join(ids, ","))
	if _, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const ids = `+rowIDs+`; return ids === `+string(wantIDs)+` && ids; })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the table's rows are not the server's security events (%v):\nrows   %s\nserver %s %v\n%s",
			err, eval(rowIDs), strings.Join(ids, ","), types, w.report())
	}

	// The severity filter: HIGH and above leaves only those rows, and "all" brings the rest back.
	setSeverity := func(v string) {
		t.Helper()
		eval(`(() => { const s = document.querySelector('select[data-testid=filter-severity]');
			s.value = '` + v + `'; s.dispatchEvent(new Event('change')); return s.value; })()`)
	}
	setSeverity("HIGH")
	got := eval(`Array.from(document.querySelectorAll('tr[data-testid=security-event]'), tr => tr.dataset.severity).join(' ')`)
	shown := strings.Fields(got)
	for _, sev := range shown {
		if sev != "HIGH" && sev != "CRITICAL" {
			t.Errorf("with the filter at HIGH a row is %s", sev)
		}
	}
	if len(shown) != high {
		t.Errorf("with the filter at HIGH %d rows (%s), want the server's %d", len(shown), got, high)
	}
	setSeverity("INFO")
	if n := eval(`String(document.querySelectorAll('tr[data-testid=security-event]').length)`); n != strconv.Itoa(len(ids)) {
		t.Errorf("with the filter back at all, %s rows, want %d", n, len(ids))
	}

	// Let one more sample land, so the screenshot shows a settled page and any late error is
	// caught. For the README's picture, let the chart fill its first minute, with the memory
	// touched above given back halfway.
	if os.Getenv(screenshotEnv) != "" {
		step("fill the chart", 40*time.Second, chromedp.Sleep(25*time.Second))
		ballast = nil
		runtime.GC()
		debug.FreeOSMemory()
		step("fill the chart", 40*time.Second, chromedp.Sleep(30*time.Second))
	}
	step("settle", 10*time.Second, chromedp.Sleep(1500*time.Millisecond))
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveScreenshot(t, shot)
	runtime.KeepAlive(ballast)

	w.check()
}

// rssExpr is a JavaScript expression: the RSS text once it is a size and not old ("" for any).
func rssExpr(old string) string {
	o, _ := json.Marshal(old)
	return `(() => { const t = document.querySelector('[data-testid=rss]').textContent;
		return /^\d+(\.\d)? (B|KiB|MiB|GiB|TiB)$/.test(t) && t !== ` + string(o) + ` && t; })()`
}

// topRowExpr is a JavaScript expression, truthy once the top security event row has type typ.
func topRowExpr(typ string) string {
	return `(() => { const tr = document.querySelector('tr[data-testid=security-event]');
		return tr && tr.dataset.type === '` + typ + `' && tr.dataset.id; })()`
}

var sizeText = regexp.MustCompile(`^(\d+(?:\.\d)?) (B|KiB|MiB|GiB|TiB)$`)

// parseShownSize reads the page's "41.2 MiB" back into bytes.
func parseShownSize(t *testing.T, s string) int64 {
	t.Helper()
	m := sizeText.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%q is not a size", s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	shift := map[string]uint{"B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return int64(v * float64(int64(1)<<shift))
}

// findChromium is the path of Debian's chromium (or chromium-browser). Without one the test is
// skipped loudly, or fails when EVENTIDE_REQUIRE_BROWSER=1.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("chromium not found and %s=1: install it (apt-get install chromium)", requireBrowserEnv)
	}
	t.Skip("SKIPPED: chromium is not installed; the monitoring page was not tested in a browser (apt-get install chromium; set " +
		requireBrowserEnv + "=1 to make this a failure)")
	return ""
}

// startBrowser starts headless Chromium with a fresh profile and opens one tab whose events w
// sees from the start. The browser is closed before the server stops (cleanups run last first),
// so the page never sees the server go away.
func startBrowser(t *testing.T, path string, w *browserWatch) context.Context {
	t.Helper()
	profile := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // as root, Chromium refuses to start with its sandbox
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(screenshotWidth, screenshotHeight),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(&w.stderr),
	)
	ctx, cancelTab := chromedp.NewContext(actx,
		chromedp.WithListener(w.handle),
		chromedp.WithErrorf(w.internalf),
	)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit, before its profile dir is removed
	})
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The first Do starts the browser on ctx, not on the deadline's sctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, w.stderr.String())
	}
	v, err := chromedp.Run(sctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	t.Logf("browser: %s", v)
	return ctx
}

// browserWatch collects what the page does wrong. Its handle runs on the tab's event loop, so
// it only records; the test reads the record when it asserts.
//
// No console message is excused, not even websocket noise: the page keeps one socket open from
// sign-in to the end (check asserts it), and the browser is closed before the server stops, so
// a "WebSocket connection failed" or a reconnect here is a real fault.
type browserWatch struct {
	t      *testing.T
	origin string // scheme://host:port of the server

	mu       sync.Mutex
	problems []string
	requests int
	sockets  []string
	closed   int
	notes    []string // everything else worth showing when a step fails

	stderr syncBuffer
}

func newBrowserWatch(t *testing.T, base string) *browserWatch {
	return &browserWatch{t: t, origin: base}
}

func (w *browserWatch) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

func (w *browserWatch) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notes = append(w.notes, fmt.Sprintf(format, args...))
}

func (w *browserWatch) internalf(format string, args ...any) {
	w.note("chromedp: "+format, args...)
}

// sameOrigin reports whether raw (http:, or ws: for the subscriptions) is on the server.
func (w *browserWatch) sameOrigin(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	return u.Scheme+"://"+u.Host == w.origin
}

func (w *browserWatch) handle(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		w.mu.Lock()
		w.requests++
		w.mu.Unlock()
		if !w.sameOrigin(ev.Request.URL) {
			w.problem("request to another origin: %s %s", ev.Request.Method, ev.Request.URL)
		}
	case *network.EventWebSocketCreated:
		w.mu.Lock()
		w.sockets = append(w.sockets, ev.URL)
		w.mu.Unlock()
		if !w.sameOrigin(ev.URL) {
			w.problem("websocket to another origin: %s", ev.URL)
		}
	case *network.EventWebSocketClosed:
		// The socket is opened once and lives until the browser closes, which happens
		// after check; a close before then is a dropped connection.
		w.mu.Lock()
		w.closed++
		w.mu.Unlock()
	case *network.EventWebSocketFrameError:
		w.problem("websocket frame error: %s", ev.ErrorMessage)
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			w.problem("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
		}
	case *network.EventLoadingFailed:
		w.problem("request failed: %s (%s, canceled %v, blocked %q)", ev.ErrorText, ev.Type, ev.Canceled, ev.BlockedReason)
	case *cdpruntime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		w.problem("JavaScript exception at %s:%d: %s", d.URL, d.LineNumber+1, text)
	case *cdpruntime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			if a.Value != nil {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		switch ev.Type {
		case cdpruntime.ConsoleAPICalledTypeError, cdpruntime.ConsoleAPICalledTypeAssert, cdpruntime.ConsoleAPICalledTypeWarning:
			w.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
		default:
			w.note("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *log.EventEntryAdded:
		// The browser's own messages: failed loads, CSP violations, deprecations.
		e := ev.Entry
		switch e.Level {
		case log.EntryLevelError, log.EntryLevelWarning:
			w.problem("browser %s (%s): %s %s", e.Level, e.Source, e.Text, e.URL)
		default:
			w.note("browser %s (%s): %s %s", e.Level, e.Source, e.Text, e.URL)
		}
	}
}

// report is what the browser did, for a failure message.
func (w *browserWatch) report() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "browser: %d requests, websockets %v, %d closed\n", w.requests, w.sockets, w.closed)
	for _, p := range w.problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	for _, n := range w.notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	var out []string
	for line := range strings.Lines(w.stderr.String()) {
		// Chromium looks for a system D-Bus that containers do not have; it does without.
		if !strings.Contains(line, "dbus") {
			out = append(out, line)
		}
	}
	if len(out) > 0 {
		fmt.Fprintf(&b, "chromium output:\n%s", strings.Join(out, ""))
	}
	return b.String()
}

// check fails the test on any problem the page had: it asserts that the page did all of the
// above with no error and without reaching beyond the server.
func (w *browserWatch) check() {
	w.t.Helper()
	w.mu.Lock()
	problems, requests, sockets, closed := w.problems, w.requests, w.sockets, w.closed
	w.mu.Unlock()
	if len(problems) > 0 {
		w.t.Errorf("the page had %d problems:\n%s", len(problems), w.report())
	}
	if requests == 0 {
		w.t.Error("saw no requests: the network listener heard nothing")
	}
	if len(sockets) != 1 || closed != 0 {
		w.t.Errorf("websockets opened %v and %d closed, want one, open throughout", sockets, closed)
	}
	w.t.Logf("browser: %d requests, all to %s; websocket %v", requests, w.origin, sockets)
}

// saveScreenshot writes the PNG to $EVENTIDE_ARTIFACTS (default a temp dir) and, when
// $EVENTIDE_SCREENSHOT names a file, there too.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	paths := []string{filepath.Join(dir, "monitor.png")}
	if p := os.Getenv(screenshotEnv); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join("..", p) // the tests run in e2e/
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}
