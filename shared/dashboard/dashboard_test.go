package dashboard

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestAsset(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
	}{
		{"", "text/html; charset=utf-8"},
		{"index.html", "text/html; charset=utf-8"},
		{"app.js", "text/javascript; charset=utf-8"},
		{"app.css", "text/css; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, contentType, ok := Asset(tt.name)
			if !ok || contentType != tt.contentType || len(body) == 0 {
				t.Errorf("Asset(%q) = %d bytes, %q, %v; want some bytes, %q, true", tt.name, len(body), contentType, ok, tt.contentType)
			}
		})
	}
}

func TestAssetUnknown(t *testing.T) {
	for _, name := range []string{"app.js.map", "index.htm", "dist/app.js", "../dashboard.go", "/app.js", "favicon.ico", "."} {
		if body, contentType, ok := Asset(name); ok || body != nil || contentType != "" {
			t.Errorf("Asset(%q) = %d bytes, %q, %v; want nothing", name, len(body), contentType, ok)
		}
	}
}

// TestDistHoldsTheAssets checks that dist holds exactly the served files:
// a source map or a hashed name left by a build would show here.
func TestDistHoldsTheAssets(t *testing.T) {
	entries, err := dist.ReadDir("dist")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"app.css", "app.js", "index.html"}
	if !slices.Equal(got, want) {
		t.Errorf("dist holds %q; want %q", got, want)
	}
}

var (
	urlText = regexp.MustCompile(`(?i)https?://`)
	// ref finds the src and href attributes of the page.
	ref = regexp.MustCompile(`(?i)\s(src|href)\s*=\s*"([^"]*)"`)
	// inline finds what the content security policy would block: script
	// elements without src, style elements and attributes, and handlers.
	inline = regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]|<script>|<style|\sstyle\s*=|\son[a-z]+\s*=`)
)

// TestNoURLs checks that no shipped file holds an http or https URL, not
// even in a comment: the page loads nothing from other origins.
func TestNoURLs(t *testing.T) {
	for name := range contentTypes {
		body, _, _ := Asset(name)
		if loc := urlText.FindIndex(body); loc != nil {
			end := min(loc[1]+60, len(body))
			t.Errorf("%s holds a URL at byte %d: %q", name, loc[0], body[loc[0]:end])
		}
	}
}

// TestIndexReferences checks that the page refers only to the served
// assets, by absolute same-origin paths, and has no inline script or
// style.
func TestIndexReferences(t *testing.T) {
	body, _, _ := Asset("index.html")
	page := string(body)
	var refs []string
	for _, m := range ref.FindAllStringSubmatch(page, -1) {
		u := m[2]
		if u == "data:," { // the empty icon, so the browser asks for no favicon
			continue
		}
		name, ok := strings.CutPrefix(u, "/dashboard/")
		if _, served := contentTypes[name]; !ok || !served || name == "index.html" {
			t.Errorf("index.html refers to %q; want /dashboard/app.js or /dashboard/app.css", u)
		}
		refs = append(refs, u)
	}
	slices.Sort(refs)
	if want := []string{"/dashboard/app.css", "/dashboard/app.js"}; !slices.Equal(refs, want) {
		t.Errorf("index.html refers to %q; want %q", refs, want)
	}
	if m := inline.FindString(page); m != "" {
		t.Errorf("index.html has inline script or style (%q), which the content security policy blocks", m)
	}
	if !strings.Contains(page, `<html lang="`) {
		t.Error("index.html does not set lang on <html>")
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, d) {
			t.Errorf("ContentSecurityPolicy lacks %q", d)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("ContentSecurityPolicy allows unsafe sources: %s", ContentSecurityPolicy)
	}
}
