// Package browser drives headless Chromium (Debian's chromium package) for
// the dashboard's browser tests and for measuring how fast the page draws
// its numbers. It starts the browser with a new empty profile and with
// everything that would reach the network on its own turned off (this
// machine's network is closed, and the page must not need it), and gives
// out tabs, each a chromedp context.
//
//	path, err := browser.Find(os.Getenv)
//	if err != nil { ... } // not installed: see scripts/need-packages.sh chromium
//	b, err := browser.Start(path, nil)
//	if err != nil { ... }
//	defer b.Close()
//	d, err := b.NumbersDrawn(ctx, st.DashboardLink(token))
//
// The dashboard's tests (dashboard_test.go) run it against a local stack
// of their own; cmd/dashtime runs it against make dev.
package browser
