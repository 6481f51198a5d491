// Command dashtime measures the dashboard of a running local stack (make
// dev; make dashtime runs it): the size of the page's three files as the
// analytics function serves them (gzipped, per file and in all, against
// the budget of 200 KB), and the time from the start of a navigation to
// the numbers drawn (the page's performance mark numbers-drawn), over n
// loads in headless Chromium, each in a new browser context with an empty
// cache, signed in as the demo's pro user; it prints each load and the
// median (goal: under 1 s).
//
//	dashtime [-admin http://127.0.0.1:8081] [-n 10]
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/e2e/browser"
	"github.com/nexus/usage/cmd/internal/seed"
)

// Budgets of issue 17.
const (
	sizeBudget = 200 << 10
	timeBudget = time.Second
)

func main() {
	admin := flag.String("admin", "http://127.0.0.1:8081", "the running stack's admin endpoint")
	n := flag.Int("n", 10, "loads to time")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *admin, *n); err != nil {
		fmt.Fprintln(os.Stderr, "dashtime:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, admin string, n int) error {
	st, err := devstack.FetchState(ctx, admin)
	if err != nil {
		return fmt.Errorf("%w (is make dev running?)", err)
	}
	var token string
	for _, u := range st.Users {
		if u.UserID == seed.ProUserID {
			token = u.Token
		}
	}
	if token == "" {
		return errors.New("the stack has no pro user")
	}
	if err := sizes(ctx, st.GatewayURL); err != nil {
		return err
	}
	path, err := browser.Find(os.Getenv)
	if err != nil {
		return err
	}
	b, err := browser.Start(path, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Printf("\nnavigation to numbers drawn, %d loads (new browser context each: empty cache and storage):\n", n)
	var times []time.Duration
	for i := range n {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		d, err := b.NumbersDrawn(lctx, st.DashboardLink(token))
		cancel()
		if err != nil {
			return fmt.Errorf("load %d: %w", i+1, err)
		}
		times = append(times, d)
		fmt.Printf("  load %2d  %6.0f ms\n", i+1, ms(d))
	}
	med := browser.Median(times)
	fmt.Printf("  median   %6.0f ms  (goal under %.0f ms: %s)\n", ms(med), ms(timeBudget), verdict(med <= timeBudget))
	return nil
}

// sizes prints the bytes of each file as served to a browser that accepts
// gzip, and as they are once unpacked.
func sizes(ctx context.Context, gateway string) error {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fmt.Println("dashboard files as served (gzip):")
	var wire, raw int
	for _, p := range []string{"/dashboard", "/dashboard/app.js", "/dashboard/app.css"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+p, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
			return fmt.Errorf("GET %s: %s, Content-Encoding %q", p, resp.Status, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("GET %s: %w", p, err)
		}
		n, err := io.Copy(io.Discard, zr)
		if err != nil {
			return fmt.Errorf("GET %s: %w", p, err)
		}
		wire, raw = wire+len(body), raw+int(n)
		fmt.Printf("  %-20s %8d bytes gzipped  %8d bytes\n", p, len(body), n)
	}
	fmt.Printf("  %-20s %8d bytes gzipped  %8d bytes  (budget %d KB gzipped: %s)\n", "total", wire, raw, sizeBudget>>10, verdict(wire <= sizeBudget))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
