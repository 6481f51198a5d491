package dashboard

import "embed"

//go:embed dist
var dist embed.FS

// ContentSecurityPolicy is the Content-Security-Policy header to send with
// every asset. The page runs only its own script and style files (no
// inline code or styles), talks only to its own origin and cannot be
// framed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes names every asset and its content type; nothing else in
// dist is served.
var contentTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
	"app.css":    "text/css; charset=utf-8",
}

// Asset returns the built file called name and its content type: "" or
// "index.html" is the page, "app.js" and "app.css" its script and style.
// ok is false for any other name. The body is a fresh copy.
func Asset(name string) (body []byte, contentType string, ok bool) {
	if name == "" {
		name = "index.html"
	}
	contentType, ok = contentTypes[name]
	if !ok {
		return nil, "", false
	}
	body, err := dist.ReadFile("dist/" + name)
	if err != nil {
		return nil, "", false
	}
	return body, contentType, true
}
