package meter_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

// Example_service is what a Go service's main does to meter its routes:
// the authenticator over the API keys in the metering database (cached)
// and the platform's JWT issuer, the limiter over the same database, and
// the publisher to the usage queue; then the routes behind the middleware.
// It needs the services, so it is compiled but not run here; the examples
// below run the same middleware on in-memory fakes.
func Example_service() {
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	db, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv("DATABASE_URL"), MaxConns: 8})
	if err != nil {
		logger.Error("database", "error", err)
		os.Exit(1)
	}
	jwt, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: os.Getenv("JWT_ISSUER"), Audience: os.Getenv("JWT_AUDIENCE"),
		Algorithms: []string{"HS256"}, HMACSecret: []byte(os.Getenv("JWT_HMAC_SECRET"))})
	if err != nil {
		logger.Error("jwt", "error", err)
		os.Exit(1)
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		logger.Error("aws", "error", err)
		os.Exit(1)
	}
	// A 1 s flush keeps the lag from a served call to its count short,
	// which bounds how far the user's other instances can overshoot a
	// hard quota.
	pub := sqspub.New(sqs.NewFromConfig(awsCfg), os.Getenv("USAGE_QUEUE_URL"), sqspub.Options{MaxAge: time.Second, Logger: logger})
	defer pub.Close(ctx) // sends what is still buffered
	m := meter.New(
		&auth.Authenticator{Keys: auth.NewKeyCache(postgres.NewAPIKeyStore(db), auth.DefaultKeyCacheTTL, nil), JWT: jwt},
		limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Logger: logger}), // one per process: its cache is the hot path
		pub,
		meter.Options{Logger: logger},
	)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/games/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := meter.IdentityFrom(r.Context())
		fmt.Fprintf(w, `{"id":%q,"caller":%q}`, r.PathValue("id"), id.UserID)
	})
	srv := &http.Server{Addr: ":8090", Handler: m.HTTP(mux), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("serve", "error", err)
	}
	// In a Lambda function behind API Gateway (HTTP API, payload 2.0), the
	// same middleware wraps the handler instead: lambda.Start(m.Lambda(handle)).
}

// fakes returns the middleware's dependencies as the function-field mocks
// of shared/mock: one API key, a limiter that admits one call and then
// refuses with rate_limited, and a publisher that prints the events.
func fakes() (usage.Authenticator, usage.LimitChecker, usage.Publisher, string) {
	const key = "nx_example_0123456789abcdefghijklmnopqrstuvwxyz"
	keys := &mock.APIKeyStore{APIKeyByHashFn: func(_ context.Context, h []byte) (*usage.APIKey, error) {
		if subtle.ConstantTimeCompare(h, auth.HashAPIKey(key)) == 1 {
			return &usage.APIKey{ID: "0190a4c4-52a4-7000-8000-0000000000aa", UserID: "0190a4c4-52a4-7000-8000-000000000001"}, nil
		}
		return nil, usage.Errorf(usage.CodeNotFound, "no such key")
	}}
	period := usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	calls := 0
	limits := &mock.LimitChecker{CheckFn: func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		calls++
		d := usage.Decision{Allowed: true, Limit: 10, Remaining: 9, Reset: 500 * time.Millisecond, RatePerSecond: 2,
			Quota: usage.QuotaStatus{Period: period, Included: 1000, Used: 401, Remaining: 599, Hard: true}}
		if calls > 1 {
			d.Allowed, d.Reason, d.Remaining, d.RetryAfter = false, usage.CodeRateLimited, 0, 500*time.Millisecond
		}
		return d, nil
	}}
	pub := &mock.Publisher{
		PublishFn: func(_ context.Context, e usage.Event) error {
			fmt.Printf("usage event: %s %d by %s (key %s)\n", e.Endpoint, e.StatusCode, e.UserID, e.APIKeyID)
			return nil
		},
		FlushFn: func(context.Context) error { return nil },
	}
	return &auth.Authenticator{Keys: keys}, limits, pub, key
}

// now is the examples' clock, so that the headers are the same on every
// run.
func now() time.Time { return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) }

// ExampleMiddleware_HTTP meters a net/http ServeMux: the served call gets
// the rate limit headers and is published with its route pattern as the
// endpoint; the refused one is a 429 problem with Retry-After, not
// published.
func ExampleMiddleware_HTTP() {
	a, limits, pub, key := fakes()
	m := meter.New(a, limits, pub, meter.Options{Now: now})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/games/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q}`, r.PathValue("id"))
	})
	h := m.HTTP(mux)

	for range 2 {
		req := httptest.NewRequest("GET", "/v1/games/42", nil)
		req.Header.Set("X-Api-Key", key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
		for _, k := range []string{"RateLimit-Policy", "RateLimit", "Retry-After"} {
			if v := rec.Header().Get(k); v != "" {
				fmt.Printf("  %s: %s\n", k, v)
			}
		}
	}
	// Output:
	// usage event: GET /v1/games/{id} 200 by 0190a4c4-52a4-7000-8000-000000000001 (key 0190a4c4-52a4-7000-8000-0000000000aa)
	// 200 {"id":"42"}
	//   RateLimit-Policy: "burst";q=10;w=5, "quota";q=1000;w=2678400
	//   RateLimit: "burst";r=9;t=1, "quota";r=599;t=1857600
	// 429 {"type":"urn:nexus:problem:rate_limited","title":"Too Many Requests","status":429,"detail":"rate limit of 10 calls at 2/s exceeded; retry in 1 s"}
	//   RateLimit-Policy: "burst";q=10;w=5, "quota";q=1000;w=2678400
	//   RateLimit: "burst";r=0;t=1, "quota";r=599;t=1857600
	//   Retry-After: 1
}

// ExampleMiddleware_Lambda meters an API Gateway HTTP API (payload 2.0)
// handler of a Lambda function: the endpoint is the route key, and the
// publisher is flushed before the handler returns (a frozen Lambda runs no
// timers). In the function's main: lambda.Start(m.Lambda(handle)).
func ExampleMiddleware_Lambda() {
	a, limits, pub, key := fakes()
	m := meter.New(a, limits, pub, meter.Options{Now: now})

	handle := func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		id, _ := meter.IdentityFrom(ctx)
		body, _ := json.Marshal(map[string]string{"id": req.PathParameters["id"], "caller": id.UserID})
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(body)}, nil
	}
	h := m.Lambda(handle) // in main: lambda.Start(h)

	req := events.APIGatewayV2HTTPRequest{RouteKey: "GET /v1/games/{id}", RawPath: "/v1/games/42",
		Headers: map[string]string{"x-api-key": key}, PathParameters: map[string]string{"id": "42"}}
	req.RequestContext.HTTP.Method = "GET"
	for range 2 {
		resp, err := h(context.Background(), req)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(resp.StatusCode, resp.Headers["X-RateLimit-Remaining"], resp.Headers["Retry-After"], resp.Body)
	}
	// Output:
	// usage event: GET /v1/games/{id} 200 by 0190a4c4-52a4-7000-8000-000000000001 (key 0190a4c4-52a4-7000-8000-0000000000aa)
	// 200 9  {"caller":"0190a4c4-52a4-7000-8000-000000000001","id":"42"}
	// 429 0 1 {"type":"urn:nexus:problem:rate_limited","title":"Too Many Requests","status":429,"detail":"rate limit of 10 calls at 2/s exceeded; retry in 1 s"}
}
