package monitor

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	h := Handler()
	mux := http.NewServeMux()
	mux.Handle("/monitor", h)
	mux.Handle("/monitor/", h)
	mux.Handle("/strip/", http.StripPrefix("/strip", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, rawURL string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func get(t *testing.T, rawURL string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodGet, rawURL, nil)
}

var refRE = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)

// assetRefs returns the src/href URLs of the page, checking that each is
// relative to the page.
func assetRefs(t *testing.T, page string) []string {
	t.Helper()
	var refs []string
	for _, m := range refRE.FindAllStringSubmatch(page, -1) {
		ref := html.UnescapeString(m[1])
		if ref == "#" { // the sign-in form's action; the script submits it
			continue
		}
		u, err := url.Parse(ref)
		if err != nil {
			t.Fatalf("bad URL %q: %v", ref, err)
		}
		if u.Scheme != "" || u.Host != "" || strings.HasPrefix(ref, "/") {
			t.Errorf("page references %q, want a URL relative to the page", ref)
		}
		refs = append(refs, ref)
	}
	return refs
}

// required are the selectors API.md and the end-to-end test rely on.
var required = []struct{ name, re string }{
	{"input[name=email]", `<input[^>]*\bname="email"`},
	{"input[name=password]", `<input[^>]*\bname="password"[^>]*\btype="password"`},
	{"submit button", `<button[^>]*\btype="submit"`},
	{`[data-testid="rss"]`, `data-testid="rss"`},
	{`[data-testid="connection"]`, `data-testid="connection"`},
	{"security events table body", `<tbody[^>]*data-testid="security-events"`},
	{"severity filter", `<select[^>]*data-testid="filter-severity"`},
	{"type filter", `<select[^>]*data-testid="filter-type"`},
	{"server panel", `data-testid="server-info"`},
	{"cache panel", `data-testid="cache-stats"`},
	{"database panel", `data-testid="database-stats"`},
}

func TestPage(t *testing.T) {
	srv := newServer(t)
	for _, pagePath := range []string{"/monitor", "/monitor/", "/strip", "/strip/"} {
		t.Run(pagePath, func(t *testing.T) {
			resp, body := get(t, srv.URL+pagePath)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q, want text/html; charset=utf-8", ct)
			}
			page := string(body)
			for _, sel := range required {
				if !regexp.MustCompile(sel.re).MatchString(page) {
					t.Errorf("page lacks %s", sel.name)
				}
			}
			if !strings.Contains(page, `data-endpoint="/graphql"`) {
				t.Errorf("page does not name the endpoint")
			}
			if regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(page) {
				t.Errorf("page has an inline script")
			}
			if regexp.MustCompile(`(?i)<style|\sstyle="|\son[a-z]+="`).MatchString(page) {
				t.Errorf("page has inline style or an inline event handler")
			}

			refs := assetRefs(t, page)
			if len(refs) != len(pageAssets) {
				t.Errorf("page references %d URLs, want %d: %q", len(refs), len(pageAssets), refs)
			}
			base := resp.Request.URL
			for _, ref := range refs {
				u, _ := url.Parse(ref)
				abs := base.ResolveReference(u)
				resp, body := get(t, abs.String())
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s (from %q): status %d", abs, ref, resp.StatusCode)
					continue
				}
				name := abs.Path[strings.LastIndex(abs.Path, "/")+1:]
				a := assets.Get(name)
				if a == nil {
					t.Errorf("%s: not an asset", abs)
					continue
				}
				if string(body) != string(embeddedBody(t, name)) {
					t.Errorf("%s: body differs from the embedded file", abs)
				}
				want := map[string]string{
					".js":  "text/javascript; charset=utf-8",
					".css": "text/css; charset=utf-8",
					".svg": "image/svg+xml",
				}[name[strings.LastIndex(name, "."):]]
				if ct := resp.Header.Get("Content-Type"); ct != want {
					t.Errorf("%s: Content-Type %q, want %q", abs, ct, want)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
					t.Errorf("%s: Cache-Control %q, want immutable", abs, cc)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: no X-Content-Type-Options: nosniff", abs)
				}
			}
		})
	}
}

func TestHead(t *testing.T) {
	srv := newServer(t)
	resp, body := do(t, http.MethodHead, srv.URL+"/monitor", nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /monitor: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("HEAD /monitor: no Content-Security-Policy")
	}
}

func TestCSP(t *testing.T) {
	srv := newServer(t)
	resp, _ := get(t, srv.URL+"/monitor")
	policy := resp.Header.Get("Content-Security-Policy")
	if policy == "" {
		t.Fatal("no Content-Security-Policy header")
	}
	directives := map[string]string{}
	for d := range strings.SplitSeq(policy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src":     "'none'",
		"script-src":      "'self'",
		"style-src":       "'self'",
		"connect-src":     "'self' ws: wss:",
		"form-action":     "'none'",
		"frame-ancestors": "'none'",
		"base-uri":        "'none'",
	} {
		if got := directives[name]; got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	if strings.Contains(policy, "unsafe-") || strings.Contains(policy, "http") || strings.Contains(policy, "*") ||
		strings.Contains(policy, "data:") {
		t.Errorf("policy allows too much: %s", policy)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "same-origin" {
		t.Errorf("Referrer-Policy %q", rp)
	}
}

// externalURL finds an absolute URL (scheme:// or protocol-relative //host)
// or a CDN's name.
var externalURL = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://|["'(=\s]//[a-z0-9]|unpkg|jsdelivr|cdnjs`)

// TestNoExternalURLs checks the page and the hand-written files: nothing in
// them points outside the server. (The vendored files are checked by
// VERSIONS instead; uPlot's banner comment names its home page.)
func TestNoExternalURLs(t *testing.T) {
	srv := newServer(t)
	_, body := get(t, srv.URL+"/monitor")
	files := map[string]string{"page": string(body)}
	for _, name := range []string{"monitor.js", "monitor.css", "favicon.svg"} {
		files[name] = string(embeddedBody(t, name))
	}
	// An SVG must name its XML namespace; that is an identifier, never fetched.
	files["favicon.svg"] = strings.Replace(files["favicon.svg"], `xmlns="http://www.w3.org/2000/svg"`, "", 1)
	for name, text := range files {
		for _, m := range externalURL.FindAllStringIndex(text, -1) {
			from, to := max(0, m[0]-30), min(len(text), m[1]+30)
			t.Errorf("%s: external URL near %q", name, text[from:to])
		}
	}
}

func TestAssetErrors(t *testing.T) {
	srv := newServer(t)
	for _, p := range []string{
		"/monitor/assets/nope.js",
		"/monitor/assets/",
		"/monitor/assets",
		"/monitor/assets/monitor.js.map",
		"/monitor/page.html",
		"/monitor/other",
		"/strip/assets/nope.css",
	} {
		resp, _ := get(t, srv.URL+p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
	resp, _ := do(t, http.MethodPost, srv.URL+"/monitor", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /monitor: status %d, Allow %q, want 405 with GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestAssetCaching(t *testing.T) {
	srv := newServer(t)
	a := assets.Get("monitor.js")
	u := srv.URL + "/monitor/assets/monitor.js"

	resp, body := get(t, u)
	if resp.StatusCode != http.StatusOK || len(body) != int(a.Size) {
		t.Fatalf("unversioned URL: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("unversioned URL: Cache-Control %q, want no-cache", cc)
	}
	etag := resp.Header.Get("ETag")
	if etag != `"`+a.Version()+`"` {
		t.Errorf("ETag %q", etag)
	}
	resp, body = do(t, http.MethodGet, u+"?v="+a.Version(), map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: status %d, %d bytes, want 304", resp.StatusCode, len(body))
	}
	resp, _ = get(t, u+"?v=stale")
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("stale version: Cache-Control %q, want no-cache", cc)
	}
}

// TestScriptUsesPinnedClient checks the page script against the contract in
// the issue: the graphql-ws client with the token in connection_init, endless
// retries, the connection indicator, and the documents API.md names.
func TestScriptUsesPinnedClient(t *testing.T) {
	js := string(embeddedBody(t, "monitor.js"))
	for _, want := range []string{
		"graphqlWs.createClient(",
		"Authorization: 'Bearer ' + s.token",
		"retryAttempts: Infinity",
		"shouldRetry: function () {\n        return true;",
		"memoryStats(intervalMs: 1000)",
		"memoryHistory(last: $last)",
		"securityEvents(last: $last)",
		"subscription MonitorSecurityEventStream { securityEvents {",
		"login(email: $email, password: $password)",
		"serverInfo {", "cacheStats {", "databaseStats {",
		"'UNAUTHENTICATED'",
	} {
		if !strings.Contains(js, want) {
			t.Errorf("monitor.js lacks %q", want)
		}
	}
	for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("monitor.js uses %s", bad)
		}
	}
}

// TestVersions checks that assets/VERSIONS, written by vendor.sh, matches
// the embedded files, and that each vendored package has its LICENSE.
func TestVersions(t *testing.T) {
	f, err := embedded.Open("assets/VERSIONS")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	pkgs := map[string]string{}
	tarballs := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] == "tarball" {
			if len(fields) != 3 || !strings.HasPrefix(fields[2], "sha512-") {
				t.Errorf("bad VERSIONS line %q", line)
			}
			tarballs[fields[1]] = true
			continue
		}
		if len(fields) != 3 {
			t.Fatalf("bad VERSIONS line %q", line)
		}
		spec, sum, name := fields[0], fields[1], fields[2]
		pkg, version, ok := strings.Cut(spec, "@")
		if !ok || version == "" {
			t.Errorf("VERSIONS: %q is not package@version", spec)
		}
		pkgs[pkg] = spec
		a := assets.Get(name)
		if a == nil {
			t.Errorf("VERSIONS lists %s, which is not embedded", name)
			continue
		}
		got := sha256.Sum256(embeddedBody(t, name))
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, VERSIONS says %s (re-run vendor.sh)", name, got, sum)
		}
		listed[name] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"graphql-ws", "uplot"} {
		if pkgs[want] == "" || !listed["LICENSE."+want] || !tarballs[pkgs[want]] {
			t.Errorf("VERSIONS lacks %s, its LICENSE or its tarball integrity", want)
		}
	}
	handWritten := map[string]bool{"VERSIONS": true, "monitor.js": true, "monitor.css": true, "favicon.svg": true}
	for _, name := range assets.Names() {
		if !listed[name] && !handWritten[name] {
			t.Errorf("assets/%s is embedded but not listed in VERSIONS", name)
		}
	}
}

// embeddedBody is the named asset as go:embed holds it.
func embeddedBody(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(embedded, "assets/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
