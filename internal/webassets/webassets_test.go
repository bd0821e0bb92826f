package webassets

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
