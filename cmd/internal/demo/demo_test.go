package demo

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

var decision = usage.Decision{Allowed: true, Limit: 10, Remaining: 3, RatePerSecond: 2,
	Quota: usage.QuotaStatus{Included: 1000, Used: 990, Remaining: 10, Hard: true,
		Period: usage.Period{Start: time.Now().Add(-time.Hour), End: time.Now().Add(time.Hour)}}}

// answer writes what the metering answers for d: the handler's status
// when allowed, else the 429 problem, with the headers of d.
func answer(w http.ResponseWriter, d usage.Decision, status int) {
	resp := httpapi.JSON(status, map[string]bool{"ok": true})
	if !d.Allowed {
		resp = httpapi.Refusal(d, time.Now())
	} else {
		for k, v := range httpapi.RateLimitHeaders(d, time.Now()) {
			resp.Headers[k] = v
		}
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(w, resp.Body)
}

func refusal(reason string, retry time.Duration) usage.Decision {
	d := decision
	d.Allowed, d.Reason, d.RetryAfter = false, reason, retry
	return d
}

func TestCount(t *testing.T) {
	var c Counts
	for _, o := range []outcome{
		{status: 200, headers: true},
		{status: 201, headers: true},
		{status: 404, headers: true},
		{status: 503, headers: true, retryAfter: time.Second},
		{status: 429, reason: usage.CodeRateLimited, retryAfter: time.Second, headers: true},
		{status: 429, reason: usage.CodeQuotaExceeded, retryAfter: time.Hour, headers: true},
		{status: 429, reason: usage.CodeRateLimited},
		{failed: true},
	} {
		c.count(o)
	}
	want := Counts{Requests: 8, OK: 2, ClientErrors: 1, ServerErrors: 1, RateLimited: 2, QuotaExceeded: 1, NoRetryAfter: 1, NoHeaders: 1, Failed: 1}
	if c != want {
		t.Errorf("counts %+v; want %+v", c, want)
	}
	if c.Served() != 4 {
		t.Errorf("Served() = %d; want 4", c.Served())
	}
}

// TestCallerRetryAfter: a caller waits Retry-After after rate_limited,
// stops after quota_exceeded, or tries again after quotaRetry.
func TestCallerRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	answers := []usage.Decision{refusal(usage.CodeRateLimited, 800*time.Millisecond), decision, refusal(usage.CodeQuotaExceeded, time.Hour), decision}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		d := answers[min(len(at), len(answers)-1)]
		at = append(at, time.Now())
		mu.Unlock()
		answer(w, d, 200)
	}))
	defer srv.Close()
	run := func(quotaRetry time.Duration) Counts {
		mu.Lock()
		at = nil
		mu.Unlock()
		var c Counts
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		caller{header: [2]string{"X-Api-Key", "k"}, rate: 50, call: platformCall(srv.URL), quotaRetry: quotaRetry}.
			run(ctx, srv.Client(), 1, func(o outcome) { c.count(o) })
		return c
	}
	c := run(0)
	if c.Requests != 3 || c.RateLimited != 1 || c.QuotaExceeded != 1 || c.NoRetryAfter != 0 || c.NoHeaders != 0 {
		t.Fatalf("counts %+v; want a rate_limited, a served call, then quota_exceeded and stop", c)
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Errorf("called again %s after a 429 with Retry-After: 1", gap)
	}
	c = run(200 * time.Millisecond)
	if c.QuotaExceeded != 1 || c.Requests < 4 {
		t.Errorf("counts %+v; want calls after quota_exceeded with a quota retry", c)
	}
}

// TestOtherServiceCall meters through POST /v1/limits/check and POST
// /v1/events: an event after an allowed check, none after a refusal.
func TestOtherServiceCall(t *testing.T) {
	var events []usage.Event
	d := decision
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "k" {
			w.WriteHeader(401)
			return
		}
		switch r.URL.Path {
		case "/v1/limits/check":
			w.Header().Set("Content-Type", "application/json")
			for k, v := range httpapi.RateLimitHeaders(d, time.Now()) {
				w.Header().Set(k, v)
			}
			var reason *string
			if !d.Allowed {
				reason = &d.Reason
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"allowed": d.Allowed, "reason": reason})
		case "/v1/events":
			var body struct{ Events []usage.Event }
			_ = json.NewDecoder(r.Body).Decode(&body)
			events = append(events, body.Events...)
			w.WriteHeader(202)
		}
	}))
	defer srv.Close()
	call := otherServiceCall(srv.URL)
	rng := rand.New(rand.NewPCG(1, 2))
	if o := call(t.Context(), srv.Client(), [2]string{"X-Api-Key", "k"}, rng); o.status != 200 || o.failed || !o.headers {
		t.Fatalf("allowed: %+v", o)
	}
	d = refusal(usage.CodeQuotaExceeded, time.Hour)
	if o := call(t.Context(), srv.Client(), [2]string{"X-Api-Key", "k"}, rng); o.status != 429 || o.reason != usage.CodeQuotaExceeded || o.retryAfter < time.Hour {
		t.Fatalf("refused: %+v", o)
	}
	if len(events) != 1 || !usage.IsUUID(events[0].EventID) || events[0].Endpoint != "GET /v1/leaderboard" {
		t.Errorf("events %+v; want the one allowed call", events)
	}
	if o := call(t.Context(), srv.Client(), [2]string{"X-Api-Key", "bad"}, rng); !o.failed {
		t.Errorf("a 401 is not a failure: %+v", o)
	}
}

func TestOvershootBound(t *testing.T) {
	tests := []struct {
		burst      int
		rate       float64
		ttl, lag   time.Duration
		want       int64
		plan, note string
	}{
		{10, 2, time.Second, 7 * time.Second, 26, "free", "flush 1 s"},
		{10, 2, time.Second, 11 * time.Second, 34, "free", "flush 5 s"},
		{100, 50, time.Second, 7 * time.Second, 500, "pro", "flush 1 s"},
		{10, 2, time.Second, 6500 * time.Millisecond, 25, "free", "rounded up"},
	}
	for _, tt := range tests {
		if got := OvershootBound(tt.burst, tt.rate, tt.ttl, tt.lag); got.Calls != tt.want {
			t.Errorf("OvershootBound(%d, %v, %s, %s) = %d; want %d (%s, %s)", tt.burst, tt.rate, tt.ttl, tt.lag, got.Calls, tt.want, tt.plan, tt.note)
		}
	}
}

func TestPrint(t *testing.T) {
	st := &devstack.State{GatewayURL: "http://gw", PlatformURL: "http://api", BatchWindowSeconds: 5, PlatformFlushSeconds: 1, ClosedPeriod: "2026-10",
		Users: []seed.User{{UserID: seed.FreeUserID, Plan: "free", APIKey: "nx_free"}, {UserID: seed.ProUserID, Plan: "pro", APIKey: "nx_pro"}}}
	free, pro := Usage{Included: 1000, Used: 1005, HardLimit: true}, Usage{Included: 500, Used: 1788}
	pro.OverageToDate = Charge{Billable: 1288, Amount: 100, Currency: "usd"}
	pro.Projected = Charge{Billable: 30000, Amount: 1500, Currency: "usd"}
	r := &Result{State: st, Traffic: 60 * time.Second, Before: []Usage{{Included: 1000, Used: 0}, {}}, After: []Usage{free, pro},
		Bound: OvershootBound(10, 2, time.Second, 7*time.Second), SendCalls: 48,
		Rows: []Row{{User: st.Users[0], Via: "sample API, API key", Callers: 3, Rate: 3, Counts: Counts{Requests: 1234, OK: 70, RateLimited: 1100, QuotaExceeded: 64}}}}
	r.Metrics.Served.Count, r.Metrics.Served.Added.P50, r.Metrics.Served.Added.P99 = 3212, 618, 7720
	var b strings.Builder
	r.Print(&b)
	for _, want := range []string{
		"make demo: 3 callers for 60.0 s through the sample platform API (http://api),",
		"free        sample API, API key          3       3     1,234      70      0      0             1,100                  64",
		"Every 429 carried Retry-After",
		"free            1,000            0       1,005          0   yes  -                        -",
		"pro               500            0       1,788          0    no  1,288 calls: 1.00 USD    30,000 calls: 15.00 USD",
		"Overshoot bound: burst 10 + ⌈2/s × (limiter cache 1s + lag 7s)⌉ = 26 calls",
		"It stopped at 1,005 calls: 5 over its quota, within the bound.",
		"The pro user used 1,788 calls of 500 included: 1,288 calls of overage, 1.00 USD so far, 15.00 USD projected at the period's end",
		"added by metering (auth, limiter, publish) p50 618 µs, p99 7.72 ms",
		"48 SendMessageBatch calls in 60.0 s (0.8/s at 54 served requests/s)",
		"curl -s -H 'X-Api-Key: nx_free' http://gw/v1/usage",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report has no %q:\n%s", want, b.String())
		}
	}
	r.After[0].Used = 1027
	b.Reset()
	r.Print(&b)
	if !strings.Contains(b.String(), "27 over its quota, OVER THE BOUND") {
		t.Errorf("an overshoot past the bound is not called out:\n%s", b.String())
	}
}

func TestRank(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if rank(d, 0.5) != 5 || rank(d, 0.9) != 9 || rank(d, 1) != 10 || rank(nil, 0.5) != 0 {
		t.Errorf("rank: %v %v %v", rank(d, 0.5), rank(d, 0.9), rank(d, 1))
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q; want %q", in, got, want)
		}
	}
}

// TestUsageReadsTheAPIsAnswer: Usage decodes what GET /v1/usage answers
// (the analytics function's golden response, which its own test checks
// against the handler), so that the demo's table follows the API.
func TestUsageReadsTheAPIsAnswer(t *testing.T) {
	b, err := os.ReadFile("../../../functions/analytics/testdata/usage.golden")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		t.Fatal("usage.golden: no body after the headers")
	}
	var u Usage
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatal(err)
	}
	if u.Included != 50 || u.Used != 87 || u.OverageToDate != (Charge{Billable: 37, Amount: 200, Currency: "usd"}) ||
		u.Projected.Billable <= u.OverageToDate.Billable || u.Projected.Currency != "usd" || u.RateLimit.Burst != 100 {
		t.Errorf("GET /v1/usage read as %+v", u)
	}
}

// TestNextJSCall calls the example app's metered routes with the caller's
// credentials and reads its answers as the sample API's.
func TestNextJSCall(t *testing.T) {
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "k" {
			w.WriteHeader(401)
			return
		}
		seen[r.Method+" "+r.URL.Path]++
		for k, v := range httpapi.RateLimitHeaders(decision, time.Now()) {
			w.Header().Set(k, v)
		}
		if r.URL.Path == "/api/games/42" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	call := nextjsCall(srv.URL + "/")
	rng := rand.New(rand.NewPCG(1, 2))
	var c Counts
	for range 200 {
		c.count(call(t.Context(), srv.Client(), [2]string{"X-Api-Key", "k"}, rng))
	}
	if c.Requests != 200 || c.Failed != 0 || c.NoHeaders != 0 || c.ClientErrors == 0 || c.OK == 0 {
		t.Errorf("counts %+v", c)
	}
	for _, route := range []string{"GET /api/games", "GET /api/games/1", "GET /api/games/42", "POST /api/scores"} {
		if seen[route] == 0 {
			t.Errorf("no %s among %v", route, seen)
		}
	}
}

// TestBaseAfterFleet: the callers' calls are ranked after the fleet's
// events of the current period, so the base is read once they are all
// counted, not while the record function is still taking them in. Read
// too early, the base was short of the fleet's late events, each
// threshold's crossing call was taken to be a later call, and make demo
// timed webhooks from calls made after they arrived (negative latencies).
func TestBaseAfterFleet(t *testing.T) {
	var mu sync.Mutex
	reads := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := reads[r.Header.Get("X-Api-Key")]
		reads[r.Header.Get("X-Api-Key")]++
		mu.Unlock()
		// The fleet's events are counted a batch at a time: 100 more on
		// each of the first four reads, then no more.
		json.NewEncoder(w).Encode(map[string]any{"used": 100 * (min(n, 3) + 1)})
	}))
	defer srv.Close()
	pro := seed.User{UserID: seed.ProUserID, Plan: "pro", APIKey: "nx_pro"}
	tl := newTimeline()
	if err := baseAfterFleet(context.Background(), srv.Client(), srv.URL, tl, []seed.User{pro}, time.Second, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := tl.base[pro.UserID]; got != 400 {
		t.Errorf("base %d, want 400 (every event of the fleet counted)", got)
	}
}
