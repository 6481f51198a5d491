package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

const testUser = "0190a4c4-52a4-7000-8000-000000000001"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tick is a clock that moves 100 µs on every reading, so that every timed
// span is positive and the same from run to run.
type tick struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tick) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(100 * time.Microsecond)
	return c.t
}

// fakes are the middleware's dependencies as function-field mocks: one
// caller with the key "good", a decision that tests set, and the events
// published.
type fakes struct {
	mu       sync.Mutex
	decision usage.Decision
	events   []usage.Event
}

func (f *fakes) api(t *testing.T) (*API, *tick) {
	t.Helper()
	clk := &tick{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	auth := &mock.Authenticator{AuthenticateFn: func(_ context.Context, h func(string) string) (usage.Identity, error) {
		if h("X-Api-Key") != "good" {
			return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "invalid api key")
		}
		return usage.Identity{UserID: testUser}, nil
	}}
	limits := &mock.LimitChecker{CheckFn: func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.decision, nil
	}}
	pub := &mock.Publisher{
		PublishFn: func(_ context.Context, e usage.Event) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, e)
			return nil
		},
		FlushFn: func(context.Context) error { return nil },
	}
	a := &API{timings: newTimings(clk.Now), flush: time.Second}
	a.handler = a.routes(meter.New(auth, limits, pub, meter.Options{Logger: quiet, Now: clk.Now}), newCatalogue(clk.Now).routes())
	return a, clk
}

func (f *fakes) set(d usage.Decision) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decision = d
}

func (f *fakes) published() []usage.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]usage.Event(nil), f.events...)
}

var allowed = usage.Decision{Allowed: true, Limit: 10, Remaining: 9, RatePerSecond: 2,
	Quota: usage.QuotaStatus{Included: 1000, Used: 1, Remaining: 999, Hard: true,
		Period: usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}}}

func do(t *testing.T, h http.Handler, method, path, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestRoutes runs each route through the middleware on mocks: the status
// and body the route answers, the rate limit headers of the decision, and
// the usage event the middleware publishes with the route's pattern as its
// endpoint.
func TestRoutes(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		endpoint, want           string
	}{
		{"catalogue", "GET", "/v1/games", "", 200, "GET /v1/games", `"title":"Asteroid Miner"`},
		{"one game", "GET", "/v1/games/3", "", 200, "GET /v1/games/{id}", `"title":"Orbital Courier"`},
		{"no such game", "GET", "/v1/games/99", "", 404, "GET /v1/games/{id}", `"detail":"no game 99"`},
		{"not a game number", "GET", "/v1/games/x", "", 400, "GET /v1/games/{id}", `"param":"id"`},
		{"score", "POST", "/v1/scores", `{"game_id":2,"player":"ada","score":4200}`, 201, "POST /v1/scores",
			`"game_id":2,"player":"ada","score":4200,"user_id":"` + testUser + `"`},
		{"score without player", "POST", "/v1/scores", `{"game_id":2,"score":1}`, 400, "POST /v1/scores", `"param":"player"`},
		{"score of no game", "POST", "/v1/scores", `{"game_id":9,"player":"ada","score":1}`, 404, "POST /v1/scores", `"param":"game_id"`},
		{"score not JSON", "POST", "/v1/scores", `game=1`, 400, "POST /v1/scores", `"param":"body"`},
		{"score too large", "POST", "/v1/scores", `{"player":"` + strings.Repeat("a", 2000) + `"}`, 413, "POST /v1/scores", `"type":"urn:nexus:problem:too_large"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakes{decision: allowed}
			a, _ := f.api(t)
			rec := do(t, a, tt.method, tt.path, "good", tt.body)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("%s %s = %d %s; want %d with %s", tt.method, tt.path, rec.Code, rec.Body, tt.status, tt.want)
			}
			for k, v := range httpapi.RateLimitHeaders(allowed, time.Time{}) {
				if k != "RateLimit" && rec.Header().Get(k) != v {
					t.Errorf("%s = %q; want %q", k, rec.Header().Get(k), v)
				}
			}
			ev := f.published()
			if len(ev) != 1 || ev[0].Endpoint != tt.endpoint || ev[0].StatusCode != tt.status || ev[0].UserID != testUser || ev[0].Method != tt.method {
				t.Errorf("published %+v; want one event of %s with status %d", ev, tt.endpoint, tt.status)
			}
		})
	}
}

// TestTopScores keeps the best scores of a game, best first, and shows
// them with the game.
func TestTopScores(t *testing.T) {
	f := &fakes{decision: allowed}
	a, _ := f.api(t)
	for i := range 15 {
		body := fmt.Sprintf(`{"game_id":1,"player":"p%d","score":%d}`, i, i%10)
		if rec := do(t, a, "POST", "/v1/scores", "good", body); rec.Code != 201 {
			t.Fatalf("score %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := do(t, a, "GET", "/v1/games/1", "good", "")
	var g Game
	if err := json.Unmarshal(rec.Body.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	// Scores 0..9, then 0..4: the best ten are 9 8 7 6 5 4 4 3 3 2.
	if len(g.Top) != topScores || g.Top[0].Score != 9 || g.Top[topScores-1].Score != 2 {
		t.Fatalf("top scores %+v; want ten, from 9 down to 2", g.Top)
	}
	for i := 1; i < len(g.Top); i++ {
		if g.Top[i].Score > g.Top[i-1].Score {
			t.Fatalf("top scores not best first: %+v", g.Top)
		}
	}
}

// TestFlaky fails every FlakyEvery-th call with a 503 problem, which the
// middleware meters as served with its status.
func TestFlaky(t *testing.T) {
	f := &fakes{decision: allowed}
	a, _ := f.api(t)
	for n := 1; n <= 3*FlakyEvery; n++ {
		rec := do(t, a, "GET", "/v1/flaky", "good", "")
		want := 200
		if n%FlakyEvery == 0 {
			want = 503
			if rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Content-Type") != httpapi.ContentProblem {
				t.Errorf("call %d: headers %v; want a problem with Retry-After: 1", n, rec.Header())
			}
		}
		if rec.Code != want {
			t.Fatalf("call %d: %d; want %d", n, rec.Code, want)
		}
		if ev := f.published(); ev[len(ev)-1].StatusCode != want {
			t.Errorf("call %d metered with status %d; want %d", n, ev[len(ev)-1].StatusCode, want)
		}
	}
}

// TestMetrics: GET /healthz and GET /metrics need no credentials and are
// not metered; /metrics counts served and refused requests apart, with
// the handler's share and what the middleware added.
func TestMetrics(t *testing.T) {
	f := &fakes{decision: allowed}
	a, clk := f.api(t)
	start := clk.Now()
	for range 3 {
		do(t, a, "GET", "/v1/games", "good", "")
	}
	f.set(usage.Decision{Reason: usage.CodeRateLimited, Limit: 10, RatePerSecond: 2, RetryAfter: 300 * time.Millisecond, Quota: allowed.Quota})
	if rec := do(t, a, "GET", "/v1/games", "good", ""); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("refused: %d %v", rec.Code, rec.Header())
	}
	if rec := do(t, a, "GET", "/v1/games", "bad", ""); rec.Code != 401 {
		t.Fatalf("bad key: %d", rec.Code)
	}
	if rec := do(t, a, "GET", "/healthz", "", ""); rec.Code != 200 {
		t.Fatalf("GET /healthz: %d", rec.Code)
	}
	if rec := do(t, a, "GET", "/metrics?since=yesterday", "", ""); rec.Code != 400 {
		t.Fatalf("GET /metrics?since=yesterday: %d", rec.Code)
	}
	rec := do(t, a, "GET", "/metrics?since="+start.Format(time.RFC3339Nano), "", "")
	var m Metrics
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if m.Requests != 5 || m.ByStatus["200"] != 3 || m.ByStatus["429"] != 1 || m.ByStatus["401"] != 1 {
		t.Errorf("metrics count %d requests %v; want 5: three 200, one 429, one 401", m.Requests, m.ByStatus)
	}
	if m.Served.Count != 3 || m.Refused.Count != 2 {
		t.Errorf("served %d, refused %d; want 3 and 2", m.Served.Count, m.Refused.Count)
	}
	if s := m.Served; !(s.Handler.P50 > 0 && s.Added.P50 > 0 && s.Total.P50 == s.Handler.P50+s.Added.P50) {
		t.Errorf("served latency %+v: want positive handler and added parts that sum to the total", s)
	}
	if r := m.Refused; r.Handler.Max != 0 || r.Added.P50 != r.Total.P50 {
		t.Errorf("refused latency %+v: want no handler time", r)
	}
	if len(f.published()) != 3 {
		t.Errorf("%d events published; want 3 (refusals, health and metrics are not metered)", len(f.published()))
	}
	later := do(t, a, "GET", "/metrics?since="+clk.Now().Format(time.RFC3339Nano), "", "")
	if err := json.Unmarshal(later.Body.Bytes(), &m); err != nil || m.Requests != 0 {
		t.Errorf("metrics since now: %s", later.Body)
	}
}

func TestPercentiles(t *testing.T) {
	d := make([]time.Duration, 200)
	for i := range d {
		d[len(d)-1-i] = time.Duration(i+1) * time.Microsecond
	}
	if got := percentiles(d); got != (Percentiles{P50: 100, P99: 198, Max: 200}) {
		t.Errorf("percentiles(1..200 µs) = %+v; want p50 100, p99 198, max 200", got)
	}
	if got := percentiles(nil); got != (Percentiles{}) {
		t.Errorf("percentiles(nil) = %+v", got)
	}
}
