// Package playground serves GraphiQL, vendored from npm, so the playground works offline.
//
// The browser files under assets/ come from npm through vendor.sh (see
// assets/VERSIONS for versions and checksums); playground.js and
// playground.css there are hand-written. Nothing is loaded from another
// origin: the page's Content-Security-Policy allows only 'self' (plus ws:
// and wss: for subscriptions).
//
// Authorization: the page has GraphiQL's header editor open; headers typed
// there, e.g. {"Authorization": "Bearer <token>"}, go with every HTTP request
// and, for subscriptions, become the payload of the graphql-transport-ws
// connection_init message (one websocket per subscription, headers read when
// it starts). The server's websocket init hook should therefore look for
// "Authorization" in the connection_init payload. Headers are not kept in
// the browser's localStorage (GraphiQL's query history included) unless the
// user turns on "Persist headers" in GraphiQL's settings.
package playground

import (
	"bytes"
	"crypto/rand"
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

// DefaultQuery is the query the editor starts with (until the user's own is
// kept in the browser's localStorage).
const DefaultQuery = `# Eventide GraphQL playground.
#
# To act as a signed-in user, put in the
# Headers tab below:
#   {"Authorization": "Bearer <token>"}
# (subscriptions send it too).

# The next five upcoming events:
{
  events(first: 5) {
    edges {
      node {
        id
        title
        startsAt
        venue {
          name
          city
        }
        attendeeCount
      }
    }
  }
}
`

// assets are the files under assets/.
var assets = webassets.MustLoad(embedded, "assets", "playground", "playground/vendor.sh", pageAssets)

// pageAssets are the files the page references, in load order.
var pageAssets = []string{
	"graphiql.min.css",
	"playground.css",
	"react.production.min.js",
	"react-dom.production.min.js",
	"graphiql.min.js",
	"playground.js",
}

// page is parsed at its first request, not at package initialisation: an idle server that
// never serves it does not run the template parser (nor keep its pages resident).
var page = sync.OnceValue(func() *template.Template { return template.Must(template.New("page").Parse(pageHTML)) })

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" href="{{.Asset "graphiql.min.css"}}">
<link rel="stylesheet" href="{{.Asset "playground.css"}}">
</head>
<body>
<div id="graphiql" data-endpoint="{{.Endpoint}}" data-default-query="{{.DefaultQuery}}"><div class="loading">Loading…</div></div>
<noscript>The GraphQL playground needs JavaScript.</noscript>
<script src="{{.Asset "react.production.min.js"}}"></script>
<script src="{{.Asset "react-dom.production.min.js"}}"></script>
<script src="{{.Asset "graphiql.min.js"}}"></script>
<script src="{{.Asset "playground.js"}}" nonce="{{.Nonce}}"></script>
</body>
</html>
`

type pageData struct {
	Title        string
	Endpoint     string
	DefaultQuery string
	Nonce        string
	base         string // relative URL of the assets folder, ending in "/"
}

// Asset is the URL of the named asset, relative to the page, with its
// content hash so that it can be cached for good.
func (d pageData) Asset(name string) string {
	return assets.URL(d.base, name)
}

// Handler serves the GraphiQL page at prefix (e.g. "/playground") and its assets under prefix+"/assets/".
// endpoint is the GraphQL path ("/graphql"); the page derives http(s)/ws(s) URLs from window.location.
//
// Mount it for both forms of the prefix, e.g.
//
//	mux.Handle("/playground", h)
//	mux.Handle("/playground/", h)
//
// (http.StripPrefix in front works too): requests whose path ends in
// "/assets/<name>" get that asset, or 404 when there is none, and any other
// GET or HEAD gets the page, whose asset URLs are relative to its own path.
// The endpoint must be same-origin (the page's CSP allows no other); an empty
// one means "/graphql".
func Handler(title, endpoint string) http.Handler {
	if title == "" {
		title = "GraphQL playground"
	}
	if endpoint == "" {
		endpoint = "/graphql"
	}
	return &handler{title: title, endpoint: endpoint}
}

type handler struct {
	title, endpoint string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")

	p := "/" + strings.TrimPrefix(r.URL.Path, "/")
	dir, name := path.Split(p)
	switch {
	case strings.HasSuffix(dir, "/assets/"):
		assets.Serve(w, r, name)
	case name == "assets":
		http.NotFound(w, r)
	default:
		h.servePage(w, r)
	}
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	nonce := rand.Text()
	var buf bytes.Buffer
	err := page().Execute(&buf, pageData{
		Title:        h.title,
		Endpoint:     h.endpoint,
		DefaultQuery: DefaultQuery,
		Nonce:        nonce,
		base:         webassets.Base(r),
	})
	if err != nil {
		http.Error(w, "playground: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", csp(nonce))
	hdr.Set("Cache-Control", "no-store") // the nonce is per response
	hdr.Set("Referrer-Policy", "same-origin")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// csp is the page's Content-Security-Policy. Scripts are all external files
// from 'self'; the nonce lets GraphiQL's own injected <style> elements
// through (see playground.js). Fonts and icons in graphiql.min.css are data:
// URLs. ws: and wss: are for subscriptions.
func csp(nonce string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'nonce-" + nonce + "'",
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src 'self' ws: wss:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}
