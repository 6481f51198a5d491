package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// TestRateLimitTakeMatchesGCRA runs random steps through the SQL function
// and the Go reference and requires identical answers.
func TestRateLimitTakeMatchesGCRA(t *testing.T) {
	db := pgtest.NewDB(t)
	l := postgres.NewRateLimiter(db)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, g := range []usage.GCRA{usage.NewGCRA(2, 10), usage.NewGCRA(50, 100), usage.NewGCRA(3, 1)} {
		key := fmt.Sprintf("k:%d:%d", g.IntervalMicros, g.Burst)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var tat int64
		for i := 0; i < 300; i++ {
			now = now.Add(time.Duration(rng.IntN(int(2*g.IntervalMicros))) * time.Microsecond)
			cost := int64(1 + rng.IntN(int(min(g.Burst, 3))))
			var want usage.RateResult
			tat, want = g.Take(tat, now.UnixMicro(), cost)
			got, err := l.Take(ctx, key, now, g, cost)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("step %d (%v, cost %d): SQL %+v; Go %+v", i, g, cost, got, want)
			}
		}
	}
}

// TestRateLimitConcurrent hammers one key from 8 workers, each on its own
// connection, on a clock that stands still within a step and moves by whole
// emission intervals between steps: at each instant exactly what GCRA allows
// there is admitted, however the calls interleave (burst at the first
// instant, one call per interval elapsed at each later one). A lost update
// under concurrency would admit more. A ninth worker on another key, calling
// below its rate, is never refused. No assertion depends on the wall clock
// or the machine's speed.
func TestRateLimitConcurrent(t *testing.T) {
	db := pgtest.NewDB(t)
	l := postgres.NewRateLimiter(db)
	ctx := context.Background()
	const (
		workers = 8
		calls   = 6 // per worker and step: 48 calls against a burst of 10
		steps   = 5
		advance = 3 // emission intervals between steps
	)
	g := usage.NewGCRA(20, 10) // T = 50 ms
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	conns := make([]*pgxpool.Conn, workers)
	for w := range conns {
		conn, err := db.Pool.Acquire(ctx) // a connection of its own
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		conns[w] = conn
	}
	interval := time.Duration(g.IntervalMicros) * time.Microsecond
	for step := range steps {
		now := t0.Add(time.Duration(step*advance) * interval)
		var (
			admitted atomic.Int64
			wg       sync.WaitGroup
			start    = make(chan struct{})
		)
		for _, conn := range conns {
			wg.Go(func() {
				<-start
				for range calls {
					var ok bool
					var rem, reset, retry int64
					err := conn.QueryRow(ctx, `SELECT * FROM rate_limit_take($1, $2, $3, $4, 1)`,
						"k:hot", now.UnixMicro(), g.IntervalMicros, g.Burst).Scan(&ok, &rem, &reset, &retry)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						admitted.Add(1)
					}
				}
			})
		}
		// The other key: one call every two intervals, below its rate.
		other, err := l.Take(ctx, "k:other", now, g, 1)
		if err != nil {
			t.Fatal(err)
		}
		close(start)
		wg.Wait()
		want := int64(advance)
		if step == 0 {
			want = g.Burst
		}
		if got := admitted.Load(); got != want {
			t.Errorf("step %d: admitted %d of %d concurrent calls; want exactly %d", step, got, workers*calls, want)
		}
		if !other.Allowed {
			t.Errorf("step %d: the other key was refused", step)
		}
	}
	// A key never used has its full burst.
	for i := int64(0); i < g.Burst; i++ {
		if r, err := l.Take(ctx, "k:fresh", time.Now(), g, 1); err != nil || !r.Allowed {
			t.Fatalf("fresh key call %d: %+v, %v", i, r, err)
		}
	}
}

// TestLimitCheckPeriod checks that limit_check computes the billing period
// as usage.PeriodAt does, month-end anchors included, and the effective plan
// with overrides.
func TestLimitCheckPeriod(t *testing.T) {
	db := pgtest.NewDB(t)
	subs := postgres.NewSubscriptionStore(db)
	l := postgres.NewRateLimiter(db)
	ctx := context.Background()
	user := uuid.NewString()
	burst, rate := 7, 1.5
	anchor := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: user, PlanID: usage.PlanPro, PeriodAnchor: anchor,
		Overrides: usage.Overrides{Burst: &burst, RatePerSecond: &rate}}); err != nil {
		t.Fatal(err)
	}
	for _, now := range []time.Time{
		time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 2, 27, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 31, 0, 0, 0, 1000, time.UTC),
		time.Date(2026, 4, 30, 1, 0, 0, 0, time.UTC),
		time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC),
	} {
		c, err := l.Check(ctx, user, "u:"+user, now, 1, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := usage.PeriodAt(anchor, now); c.Period != want {
			t.Errorf("period at %s = %v; want %v", now, c.Period, want)
		}
		if c.Plan.Burst != burst || c.Plan.RatePerSecond != rate || c.GCRA != usage.NewGCRA(rate, burst) || c.Plan.HardLimit {
			t.Errorf("plan %+v, gcra %+v; want burst %d rate %v", c.Plan, c.GCRA, burst, rate)
		}
	}
	// No subscription: free, calendar months.
	c, err := l.Check(ctx, uuid.NewString(), "u:x", time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC), 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Plan.ID != usage.PlanFree || !c.Plan.HardLimit || c.Period.Start != time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("no subscription: %+v %v", c.Plan, c.Period)
	}
}
