package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"

	"github.com/nexus/usage/shared/dashboard"
	"github.com/nexus/usage/shared/httpapi"
)

// The dashboard routes: the browser page (GET /dashboard) and its script
// and style (GET /dashboard/{asset}), from the build embedded in
// shared/dashboard. They take no credentials: the files hold no data, and
// the page sends the caller's token with each call to the JSON routes,
// which check it.
//
// The names of the files are fixed, so every answer says Cache-Control:
// no-cache with an ETag: a browser asks again each time and gets a 304
// without a body while the files are unchanged. API Gateway HTTP APIs do
// not compress, so the handler sends the gzipped file when the browser
// accepts it (about 44 KB instead of 110 KB for the three).

// asset is a dashboard file as served.
type asset struct {
	body, gzipped     []byte
	contentType, etag string
}

// assets are the dashboard's files by name ("" is the page), read and
// compressed once per cold start, on the first dashboard request.
var assets = sync.OnceValue(func() map[string]*asset {
	out := map[string]*asset{}
	for _, name := range []string{"", "app.js", "app.css"} {
		body, contentType, ok := dashboard.Asset(name)
		if !ok {
			panic("dashboard: the build holds no " + name)
		}
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = w.Write(body)
		_ = w.Close()
		sum := sha256.Sum256(body)
		out[name] = &asset{body: body, gzipped: gz.Bytes(), contentType: contentType,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	out["index.html"] = out[""]
	return out
})

func (h *Handler) getDashboard(_ context.Context, r *httpapi.Request) httpapi.Response {
	return serveAsset(r, "")
}

func (h *Handler) getDashboardAsset(_ context.Context, r *httpapi.Request) httpapi.Response {
	return serveAsset(r, r.Param("asset"))
}

// serveAsset answers with the named file of the dashboard, or 304 when the
// request's If-None-Match holds its entity tag.
func serveAsset(r *httpapi.Request, name string) httpapi.Response {
	a, ok := assets()[name]
	if !ok {
		return httpapi.NewProblem(http.StatusNotFound, "not_found", "the dashboard has no file "+name)
	}
	headers := map[string]string{
		"Content-Type":            a.contentType,
		"Content-Security-Policy": dashboard.ContentSecurityPolicy,
		"Cache-Control":           "no-cache",
		"ETag":                    a.etag,
		"Vary":                    "Accept-Encoding",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	if matchesETag(r.Header("If-None-Match"), a.etag) {
		delete(headers, "Content-Type")
		return httpapi.Response{StatusCode: http.StatusNotModified, Headers: headers}
	}
	if acceptsGzip(r.Header("Accept-Encoding")) {
		headers["Content-Encoding"] = "gzip"
		return httpapi.Response{StatusCode: http.StatusOK, Headers: headers,
			Body: base64.StdEncoding.EncodeToString(a.gzipped), IsBase64Encoded: true}
	}
	return httpapi.Response{StatusCode: http.StatusOK, Headers: headers, Body: string(a.body)}
}

// matchesETag reports whether an If-None-Match header lists etag (weakly
// compared, as RFC 9110 asks for If-None-Match) or is "*".
func matchesETag(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip: it
// names gzip without q=0, or * without q=0 and not gzip.
func acceptsGzip(header string) bool {
	star := false
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		refused := q == "q=0" || strings.HasPrefix(q, "q=0.") && strings.Trim(q[len("q=0."):], "0") == ""
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip":
			return !refused
		case "*":
			star = !refused
		}
	}
	return star
}
