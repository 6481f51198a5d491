package browser_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nexus/usage/cmd/internal/e2e/browser"
)

// testBound is each browser test's one overall bound: generous, because
// the machine may be busy; nothing inside it is timed.
const testBound = 3 * time.Minute

// tab is a browser tab of a test, with the URL of every request its pages
// made.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests []string
}

// watchScript runs before the page's own scripts in every document of the
// tab: it records what the content security policy blocked, so that a
// test can tell the page needed nothing the policy forbids.
const watchScript = `window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));`

// openTab opens a tab in a browser context of its own (so no session
// storage, cache or cookie is shared with another test's tab), bounded by
// testBound, closed when the test ends.
func openTab(t *testing.T, b *browser.Browser) *tab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testBound)
	t.Cleanup(cancel)
	tctx, closeTab := b.Tab(ctx, true)
	t.Cleanup(closeTab)
	p := &tab{t: t, ctx: tctx}
	// Listen sees each event before the reply to any later command, so a
	// request made before the page was found ready is in p.requests.
	err := chromedp.Listen(tctx, func(ev any) {
		if ev, ok := ev.(*network.EventRequestWillBeSent); ok {
			p.mu.Lock()
			p.requests = append(p.requests, ev.Request.URL)
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	if _, err := chromedp.Call(tctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchScript}); err != nil {
		t.Fatalf("watch the content security policy: %v", err)
	}
	return p
}

// do runs actions, failing the test on the first error.
func (p *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page (awaited when it is
// a promise) and decodes its JSON into v.
func (p *tab) eval(js string, v any) {
	p.t.Helper()
	out, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(async () => JSON.stringify(await (`+js+`)))()`, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		p.t.Fatalf("evaluate %s: %v (%s)", js, err, out)
	}
}

// waitFor waits until the JavaScript condition holds, polling on every
// frame (and so on every change the page draws), within the test's bound.
func (p *tab) waitFor(what, condition string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](condition, chromedp.WithPollingTimeout(0))); err != nil {
		p.t.Fatalf("waiting for %s (%s): %v", what, condition, err)
	}
}

// ready is the condition of a page that has drawn what it loads: no load
// under way and the element sel shown.
func ready(sel string) string {
	return `document.body.dataset.state === 'ready' && !!document.querySelector(` + jsString(sel) + `)`
}

// setField sets an input's or select's value as a person typing or
// choosing would: through the element's own value setter, then the input
// and change events the page listens to.
func (p *tab) setField(sel, value string) {
	p.t.Helper()
	var ok bool
	p.eval(`(() => {
		const el = document.querySelector(`+jsString(sel)+`);
		if (!el) return false;
		const proto = Object.getPrototypeOf(el);
		Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, `+jsString(value)+`);
		el.dispatchEvent(new Event('input', {bubbles: true}));
		el.dispatchEvent(new Event('change', {bubbles: true}));
		return true;
	})()`, &ok)
	if !ok {
		p.t.Fatalf("no field %s", sel)
	}
}

// requested returns the paths of the requests made so far to origin
// (the stack's gateway) whose path starts with prefix, and the URLs of
// those made anywhere else, data: URLs aside.
func (p *tab) requested(origin, prefix string) (paths, foreign []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, raw := range p.requests {
		u, err := url.Parse(raw)
		switch {
		case err == nil && u.Scheme == "data":
		case err != nil || u.Scheme+"://"+u.Host != origin:
			foreign = append(foreign, raw)
		case strings.HasPrefix(u.Path, prefix):
			paths = append(paths, u.Path)
		}
	}
	return paths, foreign
}

// checkPolicy fails the test when the content security policy blocked
// anything in the page, or the page asked another origin for anything.
func (p *tab) checkPolicy(origin string) {
	p.t.Helper()
	var violations []string
	p.eval(`window.__violations || []`, &violations)
	if len(violations) > 0 {
		p.t.Errorf("the content security policy blocked %q", violations)
	}
	if _, foreign := p.requested(origin, "/"); len(foreign) > 0 {
		p.t.Errorf("the page asked other origins for %q", foreign)
	}
}

// screenshot writes a PNG of the whole page to $NEXUS_SCREENSHOTS/name
// (relative to the module's root) when that variable is set.
func (p *tab) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("NEXUS_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", "..", dir)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s (%d bytes)", path, len(png))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
