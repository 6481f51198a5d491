package meter_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
)

// TestWithChecker runs both flavours over the real limits.Limiter and API
// key store: a free key's burst of 10, then 429.
func TestWithChecker(t *testing.T) {
	db := pgtest.NewDB(t)
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			ks := postgres.NewAPIKeyStore(db)
			key, k, err := auth.NewAPIKey(user, f.name)
			if err != nil {
				t.Fatal(err)
			}
			if err := ks.CreateAPIKey(context.Background(), k); err != nil {
				t.Fatal(err)
			}
			pub := &publisher{}
			m := meter.New(&auth.Authenticator{Keys: ks}, limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Now: clk.Now}), pub, meter.Options{Now: clk.Now})
			for i := 0; i < 11; i++ {
				resp := f.do(t, m, clk, map[string]string{"X-Api-Key": key}, "x")
				if i < 10 {
					if resp.status != http.StatusCreated || resp.headers.Get("X-RateLimit-Remaining") != strconv.Itoa(9-i) ||
						resp.headers.Get("X-RateLimit-Limit") != "10" {
						t.Fatalf("call %d: %d, remaining %q", i, resp.status, resp.headers.Get("X-RateLimit-Remaining"))
					}
					continue
				}
				if resp.status != http.StatusTooManyRequests || resp.headers.Get("Retry-After") != "1" {
					t.Fatalf("call 11: %d, Retry-After %q; want 429 and 1", resp.status, resp.headers.Get("Retry-After"))
				}
			}
			if len(pub.events) != 10 {
				t.Errorf("%d events; want 10", len(pub.events))
			}
		})
	}
}
