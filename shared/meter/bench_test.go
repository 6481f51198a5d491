package meter_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// nopPublisher drops events (the SQS publisher batches in memory; its cost
// is not the middleware's).
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, usage.Event) error { return nil }
func (nopPublisher) Flush(context.Context) error                { return nil }

// BenchmarkMiddleware measures the latency the middleware adds to a
// net/http handler (httptest, no network): the bare handler, then the
// handler behind the middleware with a JWT (one round trip: the decision)
// and with an API key (two: the key lookup and the decision), against
// local PostgreSQL with a warm limits.Limiter. 10,000 requests each per
// b.N; reports p50/p99 per request and the added p50/p99.
func BenchmarkMiddleware(b *testing.B) {
	db := pgtest.NewDB(b)
	ctx := context.Background()
	userID := uuid.NewString()
	rate, burst := 1e6, 1_000_000
	if err := postgres.NewSubscriptionStore(db).PutSubscription(ctx, &usage.Subscription{UserID: userID,
		PlanID: usage.PlanPro, Overrides: usage.Overrides{RatePerSecond: &rate, Burst: &burst}}); err != nil {
		b.Fatal(err)
	}
	ks := postgres.NewAPIKeyStore(db)
	key, k, _ := auth.NewAPIKey(userID, "bench")
	if err := ks.CreateAPIKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: "nexus", Audience: "api", Algorithms: []string{"HS256"}, HMACSecret: secret})
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := auth.Sign(secret, "nexus", "api", userID, false, time.Now(), time.Hour)

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"ok":true}`)) })
	mux := http.NewServeMux()
	mux.Handle("GET /v1/games/{id}", handler)
	m := meter.New(&auth.Authenticator{Keys: auth.NewKeyCache(ks, 0, nil), JWT: v}, limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Now: time.Now}), nopPublisher{}, meter.Options{})

	const requests = 10_000
	run := func(h http.Handler, hdr [2]string) (p50, p99 time.Duration) {
		d := make([]time.Duration, 0, requests*b.N)
		for n := 0; n < b.N; n++ {
			for i := 0; i < requests; i++ {
				req := httptest.NewRequest("GET", "/v1/games/42", nil)
				if hdr[0] != "" {
					req.Header.Set(hdr[0], hdr[1])
				}
				rec := httptest.NewRecorder()
				t := time.Now()
				h.ServeHTTP(rec, req)
				d = append(d, time.Since(t))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		}
		slices.Sort(d)
		return d[len(d)/2], d[len(d)*99/100]
	}
	b.ResetTimer()
	base50, base99 := run(mux, [2]string{})
	jwt50, jwt99 := run(m.HTTP(mux), [2]string{"Authorization", "Bearer " + tok})
	key50, key99 := run(m.HTTP(mux), [2]string{"X-Api-Key", key})
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(base50), "bare-p50-µs")
	b.ReportMetric(us(base99), "bare-p99-µs")
	b.ReportMetric(us(jwt50-base50), "jwt-added-p50-µs")
	b.ReportMetric(us(jwt99-base99), "jwt-added-p99-µs")
	b.ReportMetric(us(key50-base50), "key-added-p50-µs")
	b.ReportMetric(us(key99-base99), "key-added-p99-µs")
	b.ReportMetric(0, "ns/op")
}
