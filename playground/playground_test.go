package playground

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
	h := Handler("Eventide <playground>", "/graphql")
	mux := http.NewServeMux()
	mux.Handle("/playground", h)
	mux.Handle("/playground/", h)
	mux.Handle("/strip/", http.StripPrefix("/strip", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, rawURL string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
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

var refRE = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)

// assetRefs returns the src/href URLs of the page, checking that each is a
// relative URL.
func assetRefs(t *testing.T, page string) []string {
	t.Helper()
	var refs []string
	for _, m := range refRE.FindAllStringSubmatch(page, -1) {
		ref := html.UnescapeString(m[1])
		u, err := url.Parse(ref)
		if err != nil {
			t.Fatalf("bad URL %q: %v", ref, err)
		}
		if u.Scheme != "" || u.Host != "" || strings.HasPrefix(ref, "//") || strings.HasPrefix(ref, "/") {
			t.Errorf("page references %q, want a URL relative to the page", ref)
		}
		refs = append(refs, ref)
	}
	return refs
}

func TestPage(t *testing.T) {
	srv := newServer(t)
	for _, pagePath := range []string{"/playground", "/playground/", "/strip", "/strip/"} {
		t.Run(pagePath, func(t *testing.T) {
			resp, body := get(t, srv.URL+pagePath, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want text/html", ct)
			}
			page := string(body)
			for _, bad := range []string{"http://", "https://", "//cdn", "unpkg", "jsdelivr"} {
				if strings.Contains(page, bad) {
					t.Errorf("page contains %q:\n%s", bad, page)
				}
			}
			if !strings.Contains(page, "<title>Eventide &lt;playground&gt;</title>") {
				t.Errorf("title missing or not escaped:\n%s", page)
			}
			if !strings.Contains(page, `data-endpoint="/graphql"`) {
				t.Errorf("endpoint missing:\n%s", page)
			}
			if !strings.Contains(page, "events(first: 5)") || !strings.Contains(page, "attendeeCount") {
				t.Errorf("default query missing:\n%s", page)
			}

			refs := assetRefs(t, page)
			if len(refs) != len(pageAssets) {
				t.Errorf("page references %d URLs, want %d: %q", len(refs), len(pageAssets), refs)
			}
			base := resp.Request.URL // after any redirect, as a browser would
			for _, ref := range refs {
				u, _ := url.Parse(ref)
				abs := base.ResolveReference(u)
				resp, body := get(t, abs.String(), nil)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s (from %q): status %d", abs, ref, resp.StatusCode)
					continue
				}
				ct := resp.Header.Get("Content-Type")
				switch {
				case strings.HasSuffix(abs.Path, ".js"):
					if ct != "text/javascript; charset=utf-8" {
						t.Errorf("%s: Content-Type %q", abs, ct)
					}
				case strings.HasSuffix(abs.Path, ".css"):
					if ct != "text/css; charset=utf-8" {
						t.Errorf("%s: Content-Type %q", abs, ct)
					}
				default:
					t.Errorf("%s: page references something neither JS nor CSS", abs)
				}
				minSize := 200
				if strings.Contains(abs.Path, ".min.") {
					minSize = 10_000
				}
				if len(body) < minSize {
					t.Errorf("%s: %d bytes, want at least %d", abs, len(body), minSize)
				}
				if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "immutable") {
					t.Errorf("%s: Cache-Control %q, want long-lived (URL is versioned)", abs, cc)
				}
				if resp.Header.Get("ETag") == "" {
					t.Errorf("%s: no ETag", abs)
				}
				if nosniff := resp.Header.Get("X-Content-Type-Options"); nosniff != "nosniff" {
					t.Errorf("%s: X-Content-Type-Options %q", abs, nosniff)
				}
			}
		})
	}
}

func TestCSP(t *testing.T) {
	srv := newServer(t)
	nonceRE := regexp.MustCompile(`'nonce-([^']+)'`)
	var nonces []string
	for range 2 {
		resp, body := get(t, srv.URL+"/playground", nil)
		policy := resp.Header.Get("Content-Security-Policy")
		if policy == "" {
			t.Fatal("no Content-Security-Policy header")
		}
		directives := map[string]string{}
		for d := range strings.SplitSeq(policy, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		if directives["default-src"] != "'none'" {
			t.Errorf("default-src %q, want 'none'", directives["default-src"])
		}
		if directives["script-src"] != "'self'" {
			t.Errorf("script-src %q, want only 'self'", directives["script-src"])
		}
		if directives["connect-src"] != "'self' ws: wss:" {
			t.Errorf("connect-src %q", directives["connect-src"])
		}
		if strings.Contains(policy, "unsafe-") || strings.Contains(policy, "http") || strings.Contains(policy, "*") {
			t.Errorf("policy allows too much: %s", policy)
		}
		m := nonceRE.FindStringSubmatch(directives["style-src"])
		if m == nil {
			t.Fatalf("style-src %q has no nonce", directives["style-src"])
		}
		if !strings.Contains(string(body), `nonce="`+m[1]+`"`) {
			t.Errorf("page does not pass the CSP nonce %q to its bootstrap script", m[1])
		}
		nonces = append(nonces, m[1])
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("page Cache-Control %q, want no-store", cc)
		}
	}
	if nonces[0] == nonces[1] {
		t.Errorf("nonce %q reused across responses", nonces[0])
	}
}

func TestAssetErrors(t *testing.T) {
	srv := newServer(t)
	for _, p := range []string{
		"/playground/assets/nope.js",
		"/playground/assets/",
		"/playground/assets",
		"/playground/assets/graphiql.min.js.map",
		"/strip/assets/nope.css",
	} {
		resp, _ := get(t, srv.URL+p, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}

	resp, err := http.Post(srv.URL+"/playground", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

func TestAssetCaching(t *testing.T) {
	srv := newServer(t)
	a := assets.Get("graphiql.min.js")
	u := srv.URL + "/playground/assets/graphiql.min.js"

	resp, body := get(t, u, nil)
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
	resp, body = get(t, u+"?v="+a.Version(), map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: status %d, %d bytes, want 304", resp.StatusCode, len(body))
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
	pkgs := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "tarball ") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			t.Fatalf("bad VERSIONS line %q", line)
		}
		spec, sum, name := fields[0], fields[1], fields[2]
		pkg, version, ok := strings.Cut(spec, "@")
		if !ok || version == "" {
			t.Errorf("VERSIONS: %q is not package@version", spec)
		}
		pkgs[pkg] = true
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
	for _, want := range []string{"graphiql", "react", "react-dom"} {
		if !pkgs[want] || !listed["LICENSE."+want] {
			t.Errorf("VERSIONS lacks %s or its LICENSE", want)
		}
	}
	for _, name := range assets.Names() {
		if !listed[name] && name != "VERSIONS" && !strings.HasPrefix(name, "playground.") {
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
