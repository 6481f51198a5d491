package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/dashboard"
)

// TestDashboardFiles: the page and its two files are served to anyone, with
// or without credentials, byte for byte as built, with the page's security
// headers; the response is validated against api/openapi.yaml.
func TestDashboardFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct{ path, name, contentType string }{
		{"/dashboard", "", "text/html; charset=utf-8"},
		{"/dashboard/index.html", "index.html", "text/html; charset=utf-8"},
		{"/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/dashboard/app.css", "app.css", "text/css; charset=utf-8"},
	}
	for _, tt := range tests {
		want, _, _ := dashboard.Asset(tt.name)
		for _, authz := range []string{"", token(t, alice, false), "Bearer not-a-token"} {
			resp := f.get(t, tt.path, authz)
			wantStatus(t, resp, 200)
			if resp.Body != string(want) || resp.IsBase64Encoded {
				t.Errorf("GET %s: %d bytes (base64 %v); want the %d bytes of the build", tt.path, len(resp.Body), resp.IsBase64Encoded, len(want))
			}
			wantHeaders(t, tt.path, resp, map[string]string{
				"Content-Type":            tt.contentType,
				"Content-Security-Policy": dashboard.ContentSecurityPolicy,
				"Cache-Control":           "no-cache",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Vary":                    "Accept-Encoding",
			})
		}
	}
	// Without an authenticator at all, too.
	wantStatus(t, serve(t, &Handler{}, request("GET", "/dashboard", nil, "")), 200)
}

func wantHeaders(t *testing.T, what string, resp events.APIGatewayV2HTTPResponse, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := resp.Headers[k]; got != v {
			t.Errorf("%s: %s = %q; want %q", what, k, got, v)
		}
	}
}

// TestDashboardGzip: a browser that accepts gzip gets the file gzipped
// (base64 in the Lambda answer, as API Gateway wants binary bodies).
func TestDashboardGzip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want, _, _ := dashboard.Asset("app.js")
	resp := f.do(t, request("GET", "/dashboard/app.js", map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"}, ""))
	wantStatus(t, resp, 200)
	if resp.Headers["Content-Encoding"] != "gzip" || !resp.IsBase64Encoded {
		t.Fatalf("Content-Encoding %q, base64 %v; want gzip, true", resp.Headers["Content-Encoding"], resp.IsBase64Encoded)
	}
	raw, err := base64.StdEncoding.DecodeString(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("gunzipped body: %d bytes (%v); want the %d bytes of the build", len(got), err, len(want))
	}
	if len(raw) >= len(want)/2 {
		t.Errorf("gzipped app.js is %d bytes of %d; want well under half", len(raw), len(want))
	}
}

// TestDashboardRevalidation: the ETag of an answer brings a 304 without a
// body; another file's, or a stale one, the file again.
func TestDashboardRevalidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	js := f.get(t, "/dashboard/app.js", "")
	css := f.get(t, "/dashboard/app.css", "")
	tag := js.Headers["ETag"]
	if tag == "" || tag == css.Headers["ETag"] {
		t.Fatalf("ETags %q and %q; want two different tags", tag, css.Headers["ETag"])
	}
	for _, inm := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		resp := f.do(t, request("GET", "/dashboard/app.js", map[string]string{"If-None-Match": inm}, ""))
		wantStatus(t, resp, 304)
		if resp.Body != "" || resp.Headers["ETag"] != tag || resp.Headers["Cache-Control"] != "no-cache" {
			t.Errorf("If-None-Match %s: body %d bytes, headers %v", inm, len(resp.Body), resp.Headers)
		}
	}
	for _, inm := range []string{css.Headers["ETag"], `"0000"`} {
		wantStatus(t, f.do(t, request("GET", "/dashboard/app.js", map[string]string{"If-None-Match": inm}, "")), 200)
	}
}

// TestDashboardUnknownFile: only the three built files are served, as API
// Gateway routes them (route key and path parameter) or by path.
func TestDashboardUnknownFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, name := range []string{"app.js.map", "favicon.ico", "..%2Fgo.mod", "dist%2Fapp.js"} {
		req := request("GET", "/dashboard/"+name, nil, "")
		resp := f.do(t, req)
		wantStatus(t, resp, 404)
		if p := decode[problem](t, resp); p.Type != "urn:nexus:problem:not_found" {
			t.Errorf("GET /dashboard/%s: problem %+v", name, p)
		}
	}
	req := request("GET", "/dashboard/app.css", nil, "")
	req.RouteKey, req.PathParameters = "GET /dashboard/{asset}", map[string]string{"asset": "app.css"}
	if resp := f.do(t, req); resp.StatusCode != 200 || resp.Headers["Content-Type"] != "text/css; charset=utf-8" {
		t.Errorf("route key GET /dashboard/{asset}: %d %v", resp.StatusCode, resp.Headers)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.5", true},
		{"GZIP", true},
		{"br", false},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"gzip;q=0.001", true},
		{"*", true},
		{"*;q=0", false},
		{"gzip;q=0, *", false},
		{"identity", false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", tt.header, got, tt.want)
		}
	}
}
