package webassets

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"testing/fstest"
)

// TestBase: asset URLs are relative to the page as the browser sees it, with or without the
// trailing slash, behind StripPrefix, and with a colon in the last segment.
func TestBase(t *testing.T) {
	for _, tc := range []struct{ requestURI, want string }{
		{"/monitor", "./monitor/assets/"},
		{"/monitor/", "./assets/"},
		{"/monitor?x=1", "./monitor/assets/"},
		{"/playground", "./playground/assets/"},
		{"/playground/", "./assets/"},
		{"/a/b/play?x=1", "./play/assets/"},
		{"/", "./assets/"},
		{"/x:y", "./x:y/assets/"},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.requestURI, nil)
		if got := Base(r); got != tc.want {
			t.Errorf("Base(%q) = %q, want %q", tc.requestURI, got, tc.want)
		}
	}
}

// TestLoadCopiesNothing: loading a folder neither copies nor reads its files (they stay in the
// binary's read-only data until first served), and serving one gives its bytes with the hash of
// its content as ETag.
func TestLoadCopiesNothing(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	fsys := fstest.MapFS{"assets/app.js": {Data: big}, "assets/app.css": {Data: []byte("b{}")}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	set := MustLoad(fsys, "assets", "test", "vendor.sh", []string{"app.js"})
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Errorf("MustLoad allocated %d bytes for a 4 MiB file: it copied it", grew)
	}
	a := set.Get("app.js")
	if a.Size != int64(len(big)) || a.version != "" {
		t.Fatalf("after load: size %d, version %q; want %d and not yet computed", a.Size, a.version, len(big))
	}
	sum := sha256.Sum256(big)
	want := hex.EncodeToString(sum[:8])
	rec := httptest.NewRecorder()
	set.Serve(rec, httptest.NewRequest(http.MethodGet, "/assets/app.js", nil), "app.js")
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), big) || rec.Header().Get("ETag") != `"`+want+`"` {
		t.Fatalf("serve: status %d, %d bytes, ETag %s; want 200, %d bytes, %q", rec.Code, rec.Body.Len(), rec.Header().Get("ETag"), len(big), want)
	}
	if got := set.URL("./assets/", "app.js"); got != "./assets/app.js?v="+want {
		t.Errorf("URL %q", got)
	}
}
