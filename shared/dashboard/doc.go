// Package dashboard holds the built browser dashboard and hands out its
// three files by name, for the analytics function to serve at GET
// /dashboard (the page) and GET /dashboard/{asset} (app.js, app.css).
//
// The sources are in web/ at the repository root. `cd web && npm ci && npm
// run build` writes index.html, app.js and app.css into dist/ here, and
// they are committed, so building the Go code needs no Node.js.
// TestBuildMatchesSources rebuilds them from web/ and fails when the
// committed files differ.
//
// A route serves an asset with its content type and the page's content
// security policy. The names carry no content hash, so the answers should
// be revalidated rather than cached for long:
//
// Example_route serves the files with those headers.
//
// The page calls the JSON API on its own origin (/v1/...) with the token
// the user pastes or passes as #token=<jwt>; it loads nothing from any
// other origin.
package dashboard
