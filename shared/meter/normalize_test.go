package meter_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
}
