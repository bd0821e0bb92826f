// Package monitor serves the built-in monitoring page, /monitor, from files embedded in the binary.
//
// # The page
//
// One page, for an admin to keep open beside the server:
//
//   - A sign-in form (input[name=email], input[name=password], a submit
//     button) that sends the login mutation over HTTP POST /graphql. The
//     token lives in a variable of the page for as long as the tab is open:
//     never in localStorage, sessionStorage or a cookie. A non-admin account
//     is turned away at the form.
//   - Memory: the current RSS in [data-testid=rss] ("41.2 MiB"), heap, goroutines,
//     GC and the memory limit, and a chart of RSS, heap in use and goroutines
//     over the last ten minutes (its time axis spans a minute at least),
//     seeded from the memoryHistory query (the chart's fields only) and then
//     fed by the memoryStats(intervalMs: 1000) subscription.
//   - Security events: a table, one row [data-testid=security-event] per
//     event, newest on top, coloured by severity and filterable by minimum
//     severity and by type; seeded from securityEvents(last: 90), then fed by
//     the securityEvents subscription; at most 500 events are kept. Both seed
//     queries stay within the server's default QUERY_MAX_COMPLEXITY (1000); a
//     refused seed marks its panel "incomplete", with the reason in the
//     badge's tooltip.
//   - Server, cache and database panels, refreshed every five seconds by the
//     serverInfo, cacheStats and databaseStats queries.
//
// Both subscriptions share one graphql-transport-ws connection (the graphql-ws
// reference client; connection_init carries {"Authorization": "Bearer
// <token>"}), to the /graphql of the page's own origin (ws: or wss: as the page
// is http: or https:). [data-testid=connection] says "connecting…", "live",
// "reconnecting…" or "signed out". The client retries for ever, so a restart of
// the server is a blip: once reconnected it subscribes again and re-seeds the
// chart and the table over HTTP. When the server no longer accepts the token
// (UNAUTHENTICATED, e.g. after a restart with a new JWT secret) or the account
// is no longer an admin (FORBIDDEN), the page goes back to the sign-in form and
// says why. It learns that from an error code on any HTTP answer (the panels
// ask every five seconds), from an error on a subscription, or, when the
// socket closes before connection_ack (how gqlgen refuses a connection_init),
// by asking serverInfo over HTTP. Reconnection attempts back off from 0.25 s
// to 5 s; a live socket silent for 20 s (samples come every second) is
// dropped and reopened.
//
// # Selectors for tests
//
// Sign-in: form[data-testid=signin-form] with input[name=email],
// input[name=password], button[type=submit]; [data-testid=signin-message]
// (shown when sign-in fails or the session ended). Header:
// [data-testid=connection] (its text as above; data-state is signed-out,
// connecting, live or reconnecting), [data-testid=sign-out]. Memory:
// [data-testid=rss], heap-inuse, heap-alloc, goroutines, gc, memory-limit,
// memory-chart. Events: tbody[data-testid=security-events] holding
// tr[data-testid=security-event] rows with data-id, data-severity and
// data-type; select[data-testid=filter-severity] (minimum severity: INFO,
// LOW, MEDIUM, HIGH, CRITICAL) and select[data-testid=filter-type] ("" or a
// SecurityEventType). Panels: [data-testid=server-info], cache-stats and
// database-stats.
//
// # Files
//
// assets/monitor.js, monitor.css and favicon.svg are hand-written, plain files
// run as they are (no build step). The libraries come from npm at pinned
// versions through vendor.sh (edit the versions there and run
// bash monitor/vendor.sh), with their licences; assets/VERSIONS lists each
// vendored file with its package, version and sha256, and each tarball with its
// npm integrity. Nothing is loaded from another origin: the page's
// Content-Security-Policy allows scripts, styles and images from 'self' only,
// connections to 'self' and ws:/wss:, and no inline script or style.
package monitor

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/eventide/server/internal/webassets"
)

//go:embed assets
var embedded embed.FS

// pageHTML is the page, a html/template; its asset URLs come from Asset.
//
//go:embed page.html
var pageHTML string

// Endpoint is the GraphQL path the page talks to, on its own origin.
const Endpoint = "/graphql"

// assets are the files under assets/.
var assets = webassets.MustLoad(embedded, "assets", "monitor", "monitor/vendor.sh", pageAssets)

// pageAssets are the files the page references.
var pageAssets = []string{
	"favicon.svg",
	"uPlot.min.css",
	"monitor.css",
	"graphql-ws.min.js",
	"uPlot.iife.min.js",
	"monitor.js",
}

// Handler serves the monitoring page at "/monitor" and "/monitor/" and its
// assets under "/monitor/assets/"; mount it for both forms of the path:
//
//	mux.Handle("/monitor", monitor.Handler())
//	mux.Handle("/monitor/", monitor.Handler())
//
// Behind http.StripPrefix("/monitor", ...) it serves the page at "" and "/"
// instead. Asset URLs in the page are relative to the page and carry a content
// hash (?v=), so an asset asked for with its current hash is cached for good
// (immutable) and any other is revalidated by ETag. An unknown asset or any
// other path is 404; a method other than GET or HEAD is 405.
func Handler() http.Handler {
	return handler{}
}

type handler struct{}

func (handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	dir, name := path.Split(p)
	isAsset := strings.HasSuffix(dir, "/assets/") && name != ""
	isPage := p == "" || p == "/" || p == "/monitor" || p == "/monitor/"
	if !isAsset && !isPage {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if isAsset {
		assets.Serve(w, r, name)
		return
	}
	servePage(w, r)
}

// page is parsed at its first request, not at package initialisation: an idle server that
// never serves it does not run the template parser (nor keep its pages resident).
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
})

// pageData fills the page template.
type pageData struct {
	Endpoint string
	base     string // relative URL of the assets folder, ending in "/"
}

// Asset is the URL of the named asset, relative to the page, with its content
// hash so that it can be cached for good.
func (d pageData) Asset(name string) string {
	return assets.URL(d.base, name)
}

func servePage(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := page().Execute(&buf, pageData{Endpoint: Endpoint, base: webassets.Base(r)}); err != nil {
		http.Error(w, "monitor: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("Cache-Control", "no-cache") // asset hashes change with each build
	hdr.Set("Referrer-Policy", "same-origin")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// csp is the page's Content-Security-Policy: every script and stylesheet is
// a file from 'self' (the libraries style elements only through the CSSOM,
// which style-src does not govern); ws: and wss: are for the subscriptions;
// the sign-in form is submitted by script, never by the browser.
var csp = strings.Join([]string{
	"default-src 'none'",
	"script-src 'self'",
	"style-src 'self'",
	"img-src 'self'",
	"connect-src 'self' ws: wss:",
	"base-uri 'none'",
	"form-action 'none'",
	"frame-ancestors 'none'",
}, "; ")
