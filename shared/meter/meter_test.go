package meter_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

var (
	t0     = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	period = usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	user   = "0190a4c4-52a4-7000-8000-000000000001"
	secret = []byte("0123456789abcdef0123456789abcdef")
)

// checker returns a fixed decision.
type checker struct {
	d   usage.Decision
	err error
	ids []usage.Identity
}

func (c *checker) Check(_ context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	c.ids = append(c.ids, id)
	return c.d, c.err
}

// CheckRate is never asked by the middleware.
func (c *checker) CheckRate(context.Context, usage.Identity, int64) (usage.Decision, error) {
	panic("the middleware asked the rate limit alone")
}

// publisher records events.
type publisher struct {
	mu      sync.Mutex
	events  []usage.Event
	flushes int
}

func (p *publisher) Publish(_ context.Context, e usage.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	return nil
}

func (p *publisher) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushes++
	return nil
}

// keys is an in-memory API key store.
type keys map[string]*usage.APIKey

func (k keys) CreateAPIKey(_ context.Context, a *usage.APIKey) error {
	k[string(a.Hash)] = a
	return nil
}
func (k keys) APIKeyByHash(_ context.Context, h []byte) (*usage.APIKey, error) {
	if a, ok := k[string(h)]; ok {
		return a, nil
	}
	return nil, usage.Errorf(usage.CodeNotFound, "not found")
}
func (k keys) RevokeAPIKey(context.Context, string, string) error { return nil }

func authenticator(t testing.TB, clk *testkit.Clock) (*auth.Authenticator, string, *usage.APIKey, string) {
	t.Helper()
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: "nexus", Audience: "api", Algorithms: []string{"HS256"}, HMACSecret: secret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ks := keys{}
	key, k, err := auth.NewAPIKey(user, "test")
	if err != nil {
		t.Fatal(err)
	}
	_ = ks.CreateAPIKey(context.Background(), k)
	tok, err := auth.Sign(secret, "nexus", "api", user, false, clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &auth.Authenticator{Keys: ks, JWT: v}, key, k, tok
}

var allowed = usage.Decision{Allowed: true, Limit: 100, Remaining: 57, Reset: 860 * time.Millisecond, RatePerSecond: 50,
	Quota: usage.QuotaStatus{Period: period, Included: 100_000, Used: 400, Remaining: 99_600}}

var rateLimited = usage.Decision{Reason: usage.CodeRateLimited, Limit: 10, Reset: 5 * time.Second, RetryAfter: 200 * time.Millisecond,
	RatePerSecond: 2, Quota: usage.QuotaStatus{Period: period, Included: 1000, Used: 10, Remaining: 990, Hard: true}}

var quotaExceeded = usage.Decision{Reason: usage.CodeQuotaExceeded, Limit: 10, RetryAfter: period.End.Sub(t0),
	RatePerSecond: 2, Quota: usage.QuotaStatus{Period: period, Included: 1000, Used: 1000, Hard: true}}

// rateLimitHeaders are the headers of d at t0.
func rateLimitHeaders(d usage.Decision) http.Header {
	h := http.Header{}
	for k, v := range httpapi.RateLimitHeaders(d, t0) {
		h.Set(k, v)
	}
	return h
}

// request is one call through either flavour, normalised for assertions.
type response struct {
	status  int
	headers http.Header
	body    string
}

type flavour struct {
	name string
	do   func(t *testing.T, m *meter.Middleware, clk *testkit.Clock, hdr map[string]string, body string) response
}

var flavours = []flavour{
	{"net/http", func(t *testing.T, m *meter.Middleware, clk *testkit.Clock, hdr map[string]string, body string) response {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/games/{id}", func(w http.ResponseWriter, r *http.Request) {
			if id, ok := meter.IdentityFrom(r.Context()); !ok || id.UserID != user {
				t.Errorf("identity in context: %+v", id)
			}
			b, _ := io.ReadAll(r.Body)
			clk.Add(25 * time.Millisecond)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("created " + string(b)))
		})
		req := httptest.NewRequest("POST", "/v1/games/42", strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		m.HTTP(mux).ServeHTTP(rec, req)
		return response{rec.Code, rec.Header(), rec.Body.String()}
	}},
	{"lambda", func(t *testing.T, m *meter.Middleware, clk *testkit.Clock, hdr map[string]string, body string) response {
		h := m.Lambda(func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			if id, ok := meter.IdentityFrom(ctx); !ok || id.UserID != user {
				t.Errorf("identity in context: %+v", id)
			}
			b, _ := base64.StdEncoding.DecodeString(req.Body)
			clk.Add(25 * time.Millisecond)
			return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusCreated, Body: "created " + string(b)}, nil
		})
		lower := map[string]string{}
		for k, v := range hdr {
			lower[strings.ToLower(k)] = v
		}
		req := events.APIGatewayV2HTTPRequest{RouteKey: "POST /v1/games/{id}", RawPath: "/v1/games/42", Headers: lower,
			Body: base64.StdEncoding.EncodeToString([]byte(body)), IsBase64Encoded: true}
		req.RequestContext.HTTP.Method = "POST"
		resp, err := h(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		out := http.Header{}
		for k, v := range resp.Headers {
			out.Set(k, v)
		}
		return response{resp.StatusCode, out, resp.Body}
	}},
}

func TestAllowed(t *testing.T) {
	for _, f := range flavours {
		for _, cred := range []string{"key", "jwt"} {
			t.Run(f.name+"/"+cred, func(t *testing.T) {
				clk := testkit.NewClock(t0)
				a, key, k, tok := authenticator(t, clk)
				pub := &publisher{}
				ch := &checker{d: allowed}
				m := meter.New(a, ch, pub, meter.Options{Now: clk.Now})
				hdr := map[string]string{"X-Api-Key": key}
				if cred == "jwt" {
					hdr = map[string]string{"Authorization": "Bearer " + tok}
				}
				resp := f.do(t, m, clk, hdr, "hello")
				if resp.status != http.StatusCreated || resp.body != "created hello" {
					t.Fatalf("response %d %q", resp.status, resp.body)
				}
				for k, v := range rateLimitHeaders(allowed) {
					if got := resp.headers.Get(k); got != v[0] {
						t.Errorf("%s: %q; want %q", k, got, v[0])
					}
				}
				if len(pub.events) != 1 {
					t.Fatalf("%d events published", len(pub.events))
				}
				e := pub.events[0]
				want := usage.Event{Version: 1, EventID: e.EventID, UserID: user, Endpoint: "POST /v1/games/{id}", Method: "POST",
					StatusCode: 201, LatencyMS: 25, RequestBytes: 5, ResponseBytes: 13, Quantity: 1, OccurredAt: t0}
				if cred == "key" {
					want.APIKeyID = k.ID
					if ch.ids[0].APIKeyID != k.ID {
						t.Errorf("checked %+v; want the key", ch.ids[0])
					}
				}
				if diff := cmp.Diff(want, e); diff != "" {
					t.Errorf("event (-want +got):\n%s", diff)
				}
				if id, err := uuid.Parse(e.EventID); err != nil || id.Version() != 7 {
					t.Errorf("event id %s is not a UUIDv7", e.EventID)
				}
				if err := e.Validate(clk.Now(), usage.DefaultBackfillWindow); err != nil {
					t.Errorf("event invalid: %v", err)
				}
				if f.name == "lambda" && pub.flushes != 1 {
					t.Errorf("%d flushes; want 1", pub.flushes)
				}
			})
		}
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		name       string
		d          usage.Decision
		err        error
		hdr        map[string]string
		status     int
		typ        string
		retryAfter string
	}{
		{"rate limited", rateLimited, nil, nil, 429, "urn:nexus:problem:rate_limited", "1"},
		{"quota exceeded", quotaExceeded, nil, nil, 429, "urn:nexus:problem:quota_exceeded", "1857600"},
		{"no credentials", allowed, nil, map[string]string{}, 401, "urn:nexus:problem:unauthorized", ""},
		{"bad api key", allowed, nil, map[string]string{"X-Api-Key": "nx_wrongwrongwrong"}, 401, "urn:nexus:problem:unauthorized", ""},
		{"bad token", allowed, nil, map[string]string{"Authorization": "Bearer abc.def.ghi"}, 401, "urn:nexus:problem:unauthorized", ""},
		{"limiter down", usage.Decision{}, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "limits unavailable"),
			errors.New("dial tcp 10.0.0.7:5432: connection refused")), nil, 503, "urn:nexus:problem:unavailable", "1"},
		{"limiter broken", usage.Decision{}, errors.New("scan: password=secret"), nil, 500, "urn:nexus:problem:internal", ""},
	}
	for _, f := range flavours {
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				clk := testkit.NewClock(t0)
				a, key, _, _ := authenticator(t, clk)
				pub := &publisher{}
				m := meter.New(a, &checker{d: tt.d, err: tt.err}, pub, meter.Options{Now: clk.Now})
				hdr := tt.hdr
				if hdr == nil {
					hdr = map[string]string{"X-Api-Key": key}
				}
				resp := f.do(t, m, clk, hdr, "hello")
				if resp.status != tt.status || resp.headers.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("status %d, content type %q; want %d problem+json", resp.status, resp.headers.Get("Content-Type"), tt.status)
				}
				var p httpapi.Problem
				if err := json.Unmarshal([]byte(resp.body), &p); err != nil {
					t.Fatal(err)
				}
				if p.Type != tt.typ || p.Status != tt.status || p.Title == "" || p.Detail == "" {
					t.Errorf("problem %+v; want type %s", p, tt.typ)
				}
				if got := resp.headers.Get("Retry-After"); got != tt.retryAfter {
					t.Errorf("Retry-After %q; want %q", got, tt.retryAfter)
				}
				if tt.status == 429 {
					for k, v := range rateLimitHeaders(tt.d) {
						if got := resp.headers.Get(k); got != v[0] {
							t.Errorf("%s: %q; want %q", k, got, v[0])
						}
					}
				}
				if strings.Contains(resp.body, "dial tcp") || strings.Contains(resp.body, "password") {
					t.Errorf("internal detail leaked: %s", resp.body)
				}
				if len(pub.events) != 0 {
					t.Errorf("%d events published for a refused request", len(pub.events))
				}
			})
		}
	}
}
