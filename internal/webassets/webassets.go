// Package webassets serves the embedded files of a page (the playground, the monitor): each file
// is named by its content hash, so a URL that carries the current hash is cached for good and any
// other is revalidated by ETag.
package webassets

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// Asset is one embedded file, ready to serve. Its bytes stay where go:embed put them (the
// binary's read-only data): nothing is copied to the heap, and the pages of a file are touched
// only when it is first hashed or served, not at start-up (the playground's 1.6 MB of scripts
// were read and hashed at package init, which cost every process that never opened the
// playground ~1.6 MiB of heap and as much of mapped binary, and 27 ms of start-up).
type Asset struct {
	Name        string
	Size        int64
	ContentType string

	fsys    fs.FS
	path    string
	once    sync.Once
	version string
	err     error
}

// Version is the hex prefix of the sha256 of the file, used as ?v= and ETag; computed at first
// use.
func (a *Asset) Version() string {
	a.once.Do(func() {
		f, err := a.fsys.Open(a.path)
		if err != nil {
			a.err = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			a.err = err
			return
		}
		a.version = hex.EncodeToString(h.Sum(nil)[:8])
	})
	return a.version
}

// Set is the files of one folder.
type Set struct {
	files map[string]*Asset
}

// MustLoad reads every file of dir in fsys. It panics, naming owner and the script that makes
// them, when a file in required is missing: the binary was built without its assets.
func MustLoad(fsys fs.FS, dir, owner, vendorScript string, required []string) *Set {
	s := &Set{files: map[string]*Asset{}}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		panic(owner + ": " + err.Error())
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			panic(owner + ": " + err.Error())
		}
		s.files[e.Name()] = &Asset{
			Name: e.Name(), Size: info.Size(), ContentType: ContentType(e.Name()), fsys: fsys, path: dir + "/" + e.Name(),
		}
	}
	for _, name := range required {
		if s.files[name] == nil {
			panic(owner + ": missing " + dir + "/" + name + "; run " + vendorScript)
		}
	}
	return s
}

// Get returns the named file, or nil.
func (s *Set) Get(name string) *Asset { return s.files[name] }

// URL is the named file's URL under base (the folder's URL relative to the page, ending in
// "/"), with its content hash.
func (s *Set) URL(base, name string) string {
	return base + name + "?v=" + s.files[name].Version()
}

// Serve answers with the named file: cached for good when the request carries its current hash,
// revalidated by ETag otherwise (304 on a match), 404 when there is no such file.
func (s *Set) Serve(w http.ResponseWriter, r *http.Request, name string) {
	a := s.files[name]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	f, err := a.fsys.Open(a.path)
	if err != nil {
		http.Error(w, "asset unavailable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	// embed's files seek and read at offsets over the binary's data: no copy.
	content, ok := f.(io.ReadSeeker)
	if !ok {
		http.Error(w, "asset unavailable", http.StatusInternalServerError)
		return
	}
	version := a.Version()
	if a.err != nil {
		http.Error(w, "asset unavailable", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ContentType)
	hdr.Set("ETag", `"`+version+`"`)
	if r.URL.Query().Get("v") == version {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	if a.ContentType == "image/svg+xml" {
		// An SVG opened on its own is a document: give it no powers.
		hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	}
	// ServeContent answers If-None-Match with 304, and handles HEAD and Range.
	http.ServeContent(w, r, a.Name, time.Time{}, content)
}

// ContentType is the type a file is served with, by its extension.
func ContentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	default: // LICENSE.*, VERSIONS
		return "text/plain; charset=utf-8"
	}
}

// Base is the URL of a page's assets folder relative to the page as the browser sees it, so the
// page works at "/x" and "/x/" alike, and behind http.StripPrefix (RequestURI keeps the
// unstripped path).
func Base(r *http.Request) string {
	p := r.URL.EscapedPath()
	if r.RequestURI != "" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != "" {
			p = u.EscapedPath()
		}
	}
	if p == "" || strings.HasSuffix(p, "/") {
		return "./assets/"
	}
	// "./" keeps a last segment with a colon from reading as a scheme.
	return "./" + path.Base(p) + "/assets/"
}

// Names lists the files, in no particular order.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	return names
}
