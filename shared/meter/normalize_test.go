package meter_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/usage/usagetest"
)

// validatingPublisher refuses what the record path would refuse, as
// shared/sqspub does, and records what it accepts.
type validatingPublisher struct {
	publisher
	refused int
}

func (p *validatingPublisher) Publish(ctx context.Context, e usage.Event) error {
	if err := e.Validate(e.OccurredAt, usage.DefaultBackfillWindow); err != nil {
		p.refused++
		return err
	}
	return p.publisher.Publish(ctx, e)
}

// TestHostileRequestsCounted: requests the middleware admits are counted,
// whatever their method and path: an unknown method, a path cut in the
// middle of a character, control and invisible characters. Before, the
// publisher refused their events and the middleware dropped them, so a
// free user could pass its hard quota.
func TestHostileRequestsCounted(t *testing.T) {
	long := "/v1/" + strings.Repeat("a", 246) + "é" + "tail" // "FOO " + 250 bytes: é at bytes 254–255
	longer := "/v1/" + strings.Repeat("b", 247) + "€x"       // € spans bytes 255–257
	tests := []struct {
		name, method, path string
		wantMethod         string
		wantEndpoint       func(string) bool
	}{
		{"unknown method", "FOO", "/v1/games/1", usage.MethodOther, func(e string) bool { return e == "OTHER /v1/games/1" }},
		{"cut inside a character", "GET", longer, "GET", func(e string) bool {
			return utf8.ValidString(e) && len(e) <= usage.MaxEndpointBytes && strings.HasPrefix(e, "GET /v1/bbb")
		}},
		{"long with a character at the edge", "GET", long, "GET", func(e string) bool { return len(e) <= usage.MaxEndpointBytes && utf8.ValidString(e) }},
		{"control character", "GET", "/v1/\x01games", "GET", func(e string) bool { return e == "GET /v1/%01games" }},
		{"zero width", "GET", "/v1/\u200bgames", "GET", func(e string) bool { return e == "GET /v1/%E2%80%8Bgames" }},
	}
	for _, tt := range tests {
		t.Run("net/http/"+tt.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			a, key, _, _ := authenticator(t, clk)
			pub := &validatingPublisher{}
			m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
			// No mux: the endpoint is the request's own path.
			mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
			req := httptest.NewRequest("GET", "/", nil)
			req.Method, req.URL.Path = tt.method, tt.path
			req.Header.Set("X-Api-Key", key)
			rec := httptest.NewRecorder()
			m.HTTP(mux).ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d; want 200", rec.Code)
			}
			checkCounted(t, pub, tt.wantMethod, tt.wantEndpoint)
		})
		t.Run("lambda/"+tt.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			a, key, _, _ := authenticator(t, clk)
			pub := &validatingPublisher{}
			m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
			h := m.Lambda(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
				return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "ok"}, nil
			})
			req := events.APIGatewayV2HTTPRequest{RouteKey: "$default", RawPath: tt.path, Headers: map[string]string{"x-api-key": key}}
			req.RequestContext.HTTP.Method = tt.method
			if _, err := h(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			checkCounted(t, pub, tt.wantMethod, tt.wantEndpoint)
		})
	}
}

func checkCounted(t *testing.T, pub *validatingPublisher, method string, endpoint func(string) bool) {
	t.Helper()
	if pub.refused != 0 || len(pub.events) != 1 {
		t.Fatalf("published %d events, %d refused; want the request counted once", len(pub.events), pub.refused)
	}
	e := pub.events[0]
	if e.Method != method || !endpoint(e.Endpoint) {
		t.Errorf("event method %q endpoint %q; want method %q and an endpoint the record path accepts", e.Method, e.Endpoint, method)
	}
}

// refusingPublisher refuses every event, as a full buffer does.
type refusingPublisher struct{ publisher }

func (*refusingPublisher) Publish(context.Context, usage.Event) error {
	return usage.Errorf(usage.CodeUnavailable, "the publisher's buffer is full")
}

// TestPublishFailureLogged: an event the publisher refuses is logged at
// error level with every field, so that it can be replayed.
func TestPublishFailureLogged(t *testing.T) {
	clk := testkit.NewClock(t0)
	a, key, _, _ := authenticator(t, clk)
	var log bytes.Buffer
	m := meter.New(a, &checker{d: allowed}, &refusingPublisher{}, meter.Options{Now: clk.Now,
		Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/games/{id}", func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest("GET", "/v1/games/7", nil)
	req.Header.Set("X-Api-Key", key)
	m.HTTP(mux).ServeHTTP(httptest.NewRecorder(), req)
	for _, want := range []string{`"level":"ERROR"`, `"event_id":"`, `"user_id":"` + user, `"endpoint":"GET /v1/games/{id}"`,
		`"status_code":200`, `"occurred_at":"`, "replay", "buffer is full"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %s lacks %s", log.String(), want)
		}
	}
}

// TestMiddlewareNormalizeFixtures: the middleware records what the shared
// cases (shared/usage/testdata/normalize.json, which the TypeScript
// package's tests read too) say for a request's method, route and status.
// A status of 0 is a handler that set none, recorded as 200, so it is left
// out; so is the empty endpoint, which a request always has a method for.
func TestMiddlewareNormalizeFixtures(t *testing.T) {
	c := usagetest.ReadNormalizeCases(t)
	clk := testkit.NewClock(t0)
	a, key, _, _ := authenticator(t, clk)
	serve := func(t *testing.T, method, routeKey string, status int) usage.Event {
		t.Helper()
		pub := &validatingPublisher{}
		m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
		h := m.Lambda(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			return events.APIGatewayV2HTTPResponse{StatusCode: status}, nil
		})
		req := events.APIGatewayV2HTTPRequest{RouteKey: routeKey, Headers: map[string]string{"x-api-key": key}}
		req.RequestContext.HTTP.Method = method
		if _, err := h(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if pub.refused != 0 || len(pub.events) != 1 {
			t.Fatalf("published %d events, %d refused; want the request counted once", len(pub.events), pub.refused)
		}
		return pub.events[0]
	}
	for _, tt := range c.Method {
		if e := serve(t, tt.In, "GET /v1/games", 200); e.Method != tt.Want {
			t.Errorf("method %q recorded as %q; want %q", tt.In, e.Method, tt.Want)
		}
	}
	for _, tt := range c.Endpoint {
		if tt.In == "" {
			continue
		}
		t.Run(tt.Name, func(t *testing.T) {
			if e := serve(t, "GET", tt.In, 200); e.Endpoint != tt.Want {
				t.Errorf("route %q recorded as %q; want %q", tt.In, e.Endpoint, tt.Want)
			}
		})
	}
	for _, tt := range c.Status {
		if tt.In == 0 {
			continue
		}
		if e := serve(t, "GET", "GET /v1/games", tt.In); e.StatusCode != tt.Want {
			t.Errorf("status %d recorded as %d; want %d", tt.In, e.StatusCode, tt.Want)
		}
	}
	// The latency and the request's declared size, through net/http: the
	// handler takes the case's time on the middleware's clock, and the
	// request declares the case's Content-Length.
	serveHTTP := func(t *testing.T, took time.Duration, contentLength int64) usage.Event {
		t.Helper()
		clk := testkit.NewClock(t0)
		pub := &validatingPublisher{}
		m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
		req := httptest.NewRequest("GET", "/v1/games", nil)
		req.ContentLength = contentLength
		req.Header.Set("X-Api-Key", key)
		m.HTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { clk.Add(took) })).ServeHTTP(httptest.NewRecorder(), req)
		if pub.refused != 0 || len(pub.events) != 1 {
			t.Fatalf("published %d events, %d refused; want the request counted once", len(pub.events), pub.refused)
		}
		return pub.events[0]
	}
	if len(c.LatencyMS) == 0 || len(c.Bytes) == 0 {
		t.Fatalf("%s holds %d latency_ms and %d bytes cases; want some of each", usagetest.NormalizeFile, len(c.LatencyMS), len(c.Bytes))
	}
	for _, tt := range c.LatencyMS {
		if e := serveHTTP(t, time.Duration(tt.In)*time.Millisecond, 0); e.LatencyMS != tt.Want {
			t.Errorf("latency of %d ms recorded as %d; want %d", tt.In, e.LatencyMS, tt.Want)
		}
	}
	for _, tt := range c.Bytes {
		if e := serveHTTP(t, 0, tt.In); e.RequestBytes != tt.Want {
			t.Errorf("Content-Length %d recorded as request_bytes %d; want %d", tt.In, e.RequestBytes, tt.Want)
		}
	}
}

// TestOutOfRangeMeasuresCounted: a request whose measures an event cannot
// hold is counted with them clamped into the event's bounds: a declared
// request body above usage.MaxTransferBytes (a client may claim any
// Content-Length for a body the handler never reads) and a call longer
// than usage.MaxLatencyMS (a stream held open for hours). Before, the
// publisher refused such an event and the served call was not counted: a
// caller could pass its hard quota by declaring a huge body.
func TestOutOfRangeMeasuresCounted(t *testing.T) {
	tests := []struct {
		name          string
		contentLength int64
		took          time.Duration
		wantBytes     int64
		wantLatency   int64
	}{
		{"declared body above 1 TiB", 1 << 50, 0, usage.MaxTransferBytes, 0},
		{"declared body at the bound", usage.MaxTransferBytes, 0, usage.MaxTransferBytes, 0},
		{"two hours", 0, 2 * time.Hour, 0, usage.MaxLatencyMS},
		{"a clock that went back", 0, -time.Second, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			a, key, _, _ := authenticator(t, clk)
			pub := &validatingPublisher{}
			m := meter.New(a, &checker{d: allowed}, pub, meter.Options{Now: clk.Now})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { clk.Add(tt.took) })
			req := httptest.NewRequest("GET", "/v1/games/1", nil)
			req.ContentLength = tt.contentLength
			req.Header.Set("X-Api-Key", key)
			m.HTTP(h).ServeHTTP(httptest.NewRecorder(), req)
			checkCounted(t, pub, "GET", func(e string) bool { return e == "GET /v1/games/1" })
			if e := pub.events[0]; e.RequestBytes != tt.wantBytes || e.LatencyMS != tt.wantLatency {
				t.Errorf("request_bytes %d, latency_ms %d; want %d and %d", e.RequestBytes, e.LatencyMS, tt.wantBytes, tt.wantLatency)
			}
		})
	}
}
