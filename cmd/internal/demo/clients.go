package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// Counts are what a row of callers saw.
type Counts struct {
	Requests int `json:"requests"`
	// OK are the 2xx answers; ClientErrors and ServerErrors the 4xx (but
	// 429) and 5xx the service itself answered (served, so metered).
	OK           int `json:"ok"`
	ClientErrors int `json:"client_errors"`
	ServerErrors int `json:"server_errors"`
	// RateLimited and QuotaExceeded are the 429s by reason.
	RateLimited   int `json:"rate_limited"`
	QuotaExceeded int `json:"quota_exceeded"`
	// NoRetryAfter counts 429s without Retry-After; NoHeaders answers
	// that had a decision but not all its rate limit headers. Both should
	// stay 0.
	NoRetryAfter int `json:"no_retry_after"`
	NoHeaders    int `json:"no_headers"`
	// Failed counts calls that got no answer, or one the demo did not
	// expect.
	Failed int `json:"failed"`
	// ReportsResent counts reports of served calls (POST /v1/events) that
	// the caller's rate limit refused and that were sent again, with the
	// same event id, after their Retry-After.
	ReportsResent int `json:"reports_resent"`
}

// Served is how many calls the metering admitted.
func (c Counts) Served() int { return c.OK + c.ClientErrors + c.ServerErrors }

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.OK += o.OK
	c.ClientErrors += o.ClientErrors
	c.ServerErrors += o.ServerErrors
	c.RateLimited += o.RateLimited
	c.QuotaExceeded += o.QuotaExceeded
	c.NoRetryAfter += o.NoRetryAfter
	c.NoHeaders += o.NoHeaders
	c.Failed += o.Failed
	c.ReportsResent += o.ReportsResent
}

// decisionHeaders are the headers of every answer that carries a limit
// decision.
var decisionHeaders = []string{"RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

// outcome is one call's answer, as a caller acts on it.
type outcome struct {
	status     int
	reason     string        // usage.CodeRateLimited or usage.CodeQuotaExceeded for a 429
	retryAfter time.Duration // of a 429
	headers    bool          // all of decisionHeaders
	failed     bool
	resent     int // reports sent again after a 429 (otherServiceCall)
}

func (c *Counts) count(o outcome) {
	c.Requests++
	c.ReportsResent += o.resent
	switch {
	case o.failed:
		c.Failed++
		return
	case o.status == http.StatusTooManyRequests && o.reason == usage.CodeQuotaExceeded:
		c.QuotaExceeded++
	case o.status == http.StatusTooManyRequests && o.reason == usage.CodeRateLimited:
		c.RateLimited++
	case o.status == http.StatusTooManyRequests:
		c.Failed++
	case o.status >= 500:
		c.ServerErrors++
	case o.status >= 400:
		c.ClientErrors++
	default:
		c.OK++
	}
	if o.status == http.StatusTooManyRequests && o.retryAfter <= 0 {
		c.NoRetryAfter++
	}
	if !o.headers {
		c.NoHeaders++
	}
}

// caller is one concurrent client: how it calls, with which credential,
// how fast.
type caller struct {
	header [2]string // the credential
	rate   float64   // calls per second it aims at
	call   func(ctx context.Context, hc *http.Client, hdr [2]string, rng *rand.Rand) outcome
	// quotaRetry is how long it waits after quota_exceeded before it tries
	// again; 0 stops it, as Retry-After (the next period) says.
	quotaRetry time.Duration
}

// run calls at c.rate until ctx ends: paced, with jitter, never catching
// up in a burst, handing each outcome to sink. A caller honours
// Retry-After after rate_limited; after quota_exceeded it stops, or tries
// again after quotaRetry.
func (c caller) run(ctx context.Context, hc *http.Client, seed uint64, sink func(outcome)) {
	rng := rand.New(rand.NewPCG(seed, 16))
	interval := time.Duration(float64(time.Second) / c.rate)
	next := time.Now()
	for {
		jitter := time.Duration(rng.Int64N(int64(interval)/2+1)) - interval/4
		if !sleep(ctx, time.Until(next)+jitter) {
			return
		}
		o := c.call(ctx, hc, c.header, rng)
		if ctx.Err() != nil {
			return
		}
		sink(o)
		switch {
		case o.reason == usage.CodeQuotaExceeded && c.quotaRetry <= 0:
			return
		case o.reason == usage.CodeQuotaExceeded:
			if !sleep(ctx, c.quotaRetry) {
				return
			}
		case o.reason == usage.CodeRateLimited:
			if !sleep(ctx, o.retryAfter) {
				return
			}
		}
		if next = next.Add(interval); next.Before(time.Now()) {
			next = time.Now()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// platformCall is a call of a sample API route, as a game client makes
// them: mostly reads, some scores, the flaky route now and then, and a
// game that does not exist once in a while.
func platformCall(base string) func(context.Context, *http.Client, [2]string, *rand.Rand) outcome {
	return func(ctx context.Context, hc *http.Client, hdr [2]string, rng *rand.Rand) outcome {
		method, path, body := "GET", "/v1/games", ""
		switch r := rng.IntN(100); {
		case r < 35:
		case r < 67:
			path = "/v1/games/" + strconv.Itoa(1+rng.IntN(5))
		case r < 70:
			path = "/v1/games/42"
		case r < 90:
			method, path = "POST", "/v1/scores"
			body = fmt.Sprintf(`{"game_id":%d,"player":"player-%d","score":%d}`, 1+rng.IntN(5), rng.IntN(50), rng.IntN(100_000))
		default:
			path = "/v1/flaky"
		}
		resp, err := send(ctx, hc, method, base+path, hdr, body)
		if err != nil {
			return outcome{failed: true}
		}
		o, _ := read(resp)
		return o
	}
}

// otherServiceCall is a call served by a service written in another
// language, metered through the analytics API as docs/metering.md shows: POST
// /v1/limits/check before serving, POST /v1/events after. A refusal is
// answered to its caller as the 429 of the decision; a refused report is
// sent again.
func otherServiceCall(gateway string) func(context.Context, *http.Client, [2]string, *rand.Rand) outcome {
	return func(ctx context.Context, hc *http.Client, hdr [2]string, rng *rand.Rand) outcome {
		start := time.Now().UTC()
		resp, err := send(ctx, hc, "POST", gateway+"/v1/limits/check", hdr, `{"cost":1}`)
		if err != nil {
			return outcome{failed: true}
		}
		o, b := read(resp)
		if o.status != http.StatusOK {
			o.failed = true
			return o
		}
		var d struct {
			Allowed bool    `json:"allowed"`
			Reason  *string `json:"reason"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return outcome{failed: true}
		}
		if !d.Allowed {
			o.status = http.StatusTooManyRequests
			if d.Reason != nil {
				o.reason = *d.Reason
			}
			return o
		}
		id, _ := uuid.NewV7()
		e := usage.Event{EventID: id.String(), Endpoint: "GET /v1/leaderboard", Method: "GET", StatusCode: 200,
			LatencyMS: int64(5 + rng.IntN(30)), ResponseBytes: int64(500 + rng.IntN(3000)), OccurredAt: start}
		b, _ = json.Marshal(map[string]any{"events": []usage.Event{e}})
		// The report costs the caller's rate limit too (one call per
		// event): a refused one is sent again after its Retry-After, with
		// the same event id, so that no served call goes unreported. It
		// outlives the traffic's end by up to a minute.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for {
			resp, err = send(rctx, hc, "POST", gateway+"/v1/events", hdr, string(b))
			if err != nil {
				return outcome{failed: true}
			}
			ev, _ := read(resp)
			if ev.status == http.StatusAccepted {
				break
			}
			if ev.status != http.StatusTooManyRequests {
				return outcome{failed: true}
			}
			o.resent++
			select {
			case <-rctx.Done():
				return outcome{failed: true}
			case <-time.After(max(ev.retryAfter, 100*time.Millisecond)):
			}
		}
		return o // the call it served, with the decision's headers
	}
}

func send(ctx context.Context, hc *http.Client, method, url string, hdr [2]string, body string) (*http.Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set(hdr[0], hdr[1])
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return hc.Do(req)
}

// read classifies an answer and returns its body.
func read(resp *http.Response) (outcome, []byte) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return outcome{failed: true}, nil
	}
	o := outcome{status: resp.StatusCode, headers: true}
	for _, h := range decisionHeaders {
		if resp.Header.Get(h) == "" {
			o.headers = false
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		o.retryAfter = time.Duration(s) * time.Second
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		var p struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(b, &p)
		o.reason = strings.TrimPrefix(p.Type, "urn:nexus:problem:")
	}
	if resp.StatusCode == http.StatusUnauthorized {
		o.failed = true // the demo's credentials are good
	}
	return o, b
}

// nextjsCall is a call to the Next.js example app (examples/nextjs), whose
// routes withUsage meters from TypeScript: it checks the limits itself,
// answers refusals with the same 429 and headers as the Go middleware, and
// reports served calls through POST /v1/events after each response.
func nextjsCall(base string) func(context.Context, *http.Client, [2]string, *rand.Rand) outcome {
	base = strings.TrimRight(base, "/")
	return func(ctx context.Context, hc *http.Client, hdr [2]string, rng *rand.Rand) outcome {
		method, path, body := "GET", "/api/games", ""
		switch r := rng.IntN(100); {
		case r < 40:
		case r < 75:
			path = "/api/games/" + strconv.Itoa(1+rng.IntN(3))
		case r < 80:
			path = "/api/games/42"
		default:
			method, path = "POST", "/api/scores"
			body = fmt.Sprintf(`{"game":"%d","score":%d}`, 1+rng.IntN(3), rng.IntN(100_000))
		}
		resp, err := send(ctx, hc, method, base+path, hdr, body)
		if err != nil {
			return outcome{failed: true}
		}
		o, _ := read(resp)
		return o
	}
}
