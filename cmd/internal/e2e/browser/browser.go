package browser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// ErrNotFound is Find's error when no Chromium is installed.
var ErrNotFound = errors.New("chromium is not installed: run scripts/need-packages.sh chromium " +
	"(make test does; as root it installs Debian's chromium package), or set NEXUS_CHROMIUM to a Chromium or Chrome binary")

// Find returns the path of Chromium: getenv("NEXUS_CHROMIUM") when set,
// else the first of chromium, chromium-browser and google-chrome on PATH.
func Find(getenv func(string) string) (string, error) {
	if p := getenv("NEXUS_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NEXUS_CHROMIUM: %w", err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Window is the size of the browser's window, in CSS pixels: the width of
// a laptop screen, which the screenshots in docs/ show.
const (
	WindowWidth  = 1280
	WindowHeight = 900
)

// options are Chromium's flags: chromedp's defaults (headless, no first
// run, no background networking, extensions, sync or crash reports),
// what a root user without a GPU needs (no sandbox, no GPU), nothing that
// would fetch on its own (component updates, QUIC), a fixed language, and
// host names resolving to nothing but loopback, so that a request for any
// other host fails at once rather than waiting on the closed network.
func options(path, profile string, log io.Writer) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.WindowSize(WindowWidth, WindowHeight),
	)
	if log != nil {
		opts = append(opts, chromedp.CombinedOutput(log))
	}
	return opts
}

// Browser is a running headless Chromium with a profile of its own.
type Browser struct {
	ctx     context.Context // the browser's chromedp context (its first tab)
	cancel  func()
	profile string
}

// Start starts Chromium at path with a new empty profile; log, when not
// nil, receives the browser's own output. Close stops it.
func Start(path string, log io.Writer) (*Browser, error) {
	profile, err := os.MkdirTemp("", "nexus-chromium-")
	if err != nil {
		return nil, err
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), options(path, profile, log)...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	b := &Browser{ctx: ctx, profile: profile, cancel: func() { cancelCtx(); cancelAlloc() }}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		b.Close()
		return nil, fmt.Errorf("start chromium (%s): %w", path, err)
	}
	return b, nil
}

// Tab opens a new tab, in a browser context of its own (empty cache,
// cookies and storage) when isolated, until ctx is done or cancel is
// called. Actions run in the tab with the returned context.
func (b *Browser) Tab(ctx context.Context, isolated bool) (context.Context, context.CancelFunc) {
	var opts []chromedp.ContextOption
	if isolated {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	tab, closeTab := chromedp.NewContext(b.ctx, opts...)
	tab, cancel := context.WithCancel(tab)
	stop := context.AfterFunc(ctx, cancel)
	return tab, func() {
		stop()
		cancel()
		closeTab()
	}
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() {
	b.cancel()
	os.RemoveAll(b.profile)
}
