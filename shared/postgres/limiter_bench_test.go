package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// benchDecisions is how many decisions each sub-benchmark makes per b.N.
const benchDecisions = 20_000

// BenchmarkLimiterDecision measures one limits.Limiter decision against
// local PostgreSQL: latency p50/p99 and decisions/s, with 1 and 4
// goroutines, for
//
//	warm:     the cache holds the usage: one rate_limit_take
//	cold:     no usage cache (the subscription is known): one limit_check
//	          (version + usage + alerts + GCRA)
//	separate: the same work as cold in three round trips (subscription,
//	          usage sum, GCRA step), the baseline limit_check replaces
//	select1:  SELECT 1, the round-trip floor of the same pool and machine
func BenchmarkLimiterDecision(b *testing.B) {
	db := pgtest.NewDB(b)
	ctx := context.Background()
	const users = 200
	ids := make([]usage.Identity, users)
	rate, burst := 1e6, 1_000_000
	for i := range ids {
		ids[i] = usage.Identity{UserID: uuid.NewString(), APIKeyID: uuid.NewString()}
		err := postgres.NewSubscriptionStore(db).PutSubscription(ctx, &usage.Subscription{UserID: ids[i].UserID,
			PlanID: usage.PlanPro, Overrides: usage.Overrides{RatePerSecond: &rate, Burst: &burst}})
		if err != nil {
			b.Fatal(err)
		}
		_, err = db.Pool.Exec(ctx, `SELECT increment_api_calls($1, $2, $3, $3, $3, $3, $3)`,
			[]string{ids[i].UserID}, []time.Time{usage.Day(time.Now())}, []int64{5})
		if err != nil {
			b.Fatal(err)
		}
	}
	subs := postgres.NewSubscriptionStore(db)
	rl := postgres.NewRateStore(db)
	separate := func(ctx context.Context, id usage.Identity) error {
		now := time.Now()
		sub, err := subs.Subscription(ctx, id.UserID)
		if err != nil {
			return err
		}
		p := usage.PeriodAt(sub.PeriodAnchor, now)
		var used int64
		if err := db.Pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM eco_usage_counters
			WHERE user_id = $1 AND day >= $2 AND day < $3`, id.UserID, p.Start, p.End).Scan(&used); err != nil {
			return err
		}
		_, err = rl.Take(ctx, "k:"+id.APIKeyID, now, limits.NewGCRA(sub.Effective.RatePerSecond, sub.Effective.Burst), 1)
		return err
	}
	for _, mode := range []string{"select1", "warm", "cold", "separate"} {
		for _, par := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", mode, par), func(b *testing.B) {
				ttl := time.Minute
				if mode != "warm" {
					ttl = -1
				}
				c := newLimiter(db, limits.LimiterOptions{CacheTTL: ttl, Now: time.Now})
				decide := func(id usage.Identity) error {
					switch mode {
					case "separate":
						return separate(ctx, id)
					case "select1":
						var one int
						return db.Pool.QueryRow(ctx, `SELECT 1`).Scan(&one)
					}
					_, err := c.Check(ctx, id, 1)
					return err
				}
				for _, id := range ids { // warm the cache and the connections
					if err := decide(id); err != nil {
						b.Fatal(err)
					}
				}
				var all []time.Duration
				var elapsed time.Duration
				b.ResetTimer()
				for n := 0; n < b.N; n++ {
					per := benchDecisions / par
					durs := make([][]time.Duration, par)
					var wg sync.WaitGroup
					start := time.Now()
					for g := 0; g < par; g++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							d := make([]time.Duration, 0, per)
							for i := 0; i < per; i++ {
								t := time.Now()
								if err := decide(ids[(g*per+i)%users]); err != nil {
									b.Error(err)
									return
								}
								d = append(d, time.Since(t))
							}
							durs[g] = d
						}()
					}
					wg.Wait()
					elapsed += time.Since(start)
					for _, d := range durs {
						all = append(all, d...)
					}
				}
				b.StopTimer()
				slices.Sort(all)
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "decisions/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
