package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"depot"
	"depot/internal/httpx"
)

// The upload page: one HTML document and its static files (CSS, JavaScript,
// the vendored tus-js-client bundle), embedded in the binary so that the web
// tier serves them without any file on disk, CDN or build step.
//
//go:embed static
var staticFS embed.FS

// pageCSP is the Content Security Policy of the page and of every static
// file: scripts, styles and connections only from this origin, no inline
// script or style, no framing, no plugins, no base or form targets elsewhere.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body  string
	ctype string
	etag  string
}

var (
	assetsOnce sync.Once
	assets     map[string]asset // by path under static/, e.g. "app.js"
)

func loadAssets() {
	assets = map[string]asset{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".LICENSE", ".txt":
			ctype = "text/plain; charset=utf-8"
		case "":
			ctype = "application/octet-stream"
		}
		assets[strings.TrimPrefix(p, "static/")] = asset{
			body: string(b), ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
		return nil
	})
	if err != nil {
		panic("web: embedded static files: " + err.Error())
	}
}

// setPageHeaders sets the security headers of the page and its files.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// serveAsset writes one embedded file with an ETag, so that browsers
// revalidate (Cache-Control: no-cache) and get 304 while it is unchanged.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	assetsOnce.Do(loadAssets)
	a, ok := assets[name]
	if !ok || strings.HasSuffix(name, "/") {
		setPageHeaders(w.Header())
		httpx.WriteError(w, depot.Errorf(depot.CodeNotFound, "no such file"))
		return
	}
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(a.body))
}

// page serves GET / (the upload page).
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	serveAsset(w, r, "index.html")
}

// static serves GET /static/{name...}.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if name == "index.html" {
		http.Redirect(w, r, "/", http.StatusMovedPermanently)
		return
	}
	serveAsset(w, r, name)
}
