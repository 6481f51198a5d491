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
// connection, for about 2 s of the real clock, and checks GCRA's exact
// bound burst + rate·T (T from the first to the last clock reading used),
// while a ninth worker on another key, calling below its rate, is never
// refused.
func TestRateLimitConcurrent(t *testing.T) {
	db := pgtest.NewDB(t)
	l := postgres.NewRateLimiter(db)
	ctx := context.Background()
	const workers = 8
	g := usage.NewGCRA(20, 10) // T = 50 ms
	run := 2 * time.Second

	var (
		admitted, calls atomic.Int64
		mu              sync.Mutex
		first, last     time.Time
		wg              sync.WaitGroup
		start           = make(chan struct{})
	)
	deadline := time.Now().Add(run)
	for w := 0; w < workers; w++ {
		conn, err := db.Pool.Acquire(ctx) // hold a connection of its own
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Release()
			<-start
			for {
				now := time.Now()
				if now.After(deadline) {
					return
				}
				var ok bool
				var rem, reset, retry int64
				err := conn.QueryRow(ctx, `SELECT * FROM rate_limit_take($1, $2, $3, $4, 1)`,
					"k:hot", now.UnixMicro(), g.IntervalMicros, g.Burst).Scan(&ok, &rem, &reset, &retry)
				if err != nil {
					t.Error(err)
					return
				}
				calls.Add(1)
				mu.Lock()
				if first.IsZero() || now.Before(first) {
					first = now
				}
				if now.After(last) {
					last = now
				}
				mu.Unlock()
				if ok {
					admitted.Add(1)
				}
			}
		}()
	}
	var other atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for time.Now().Before(deadline) {
			r, err := l.Take(ctx, "k:other", time.Now(), g, 1)
			if err != nil {
				t.Error(err)
				return
			}
			if !r.Allowed {
				other.Add(1)
			}
			time.Sleep(60 * time.Millisecond)
		}
	}()
	close(start)
	wg.Wait()

	window := last.Sub(first)
	bound := g.MaxAdmitted(window)
	t.Logf("%d calls, %d admitted in %s; bound %d", calls.Load(), admitted.Load(), window, bound)
	if n := admitted.Load(); n > bound || n < bound-1 {
		t.Errorf("admitted %d in %s; want %d (burst %d + rate·T), -1 at most", n, window, bound, g.Burst)
	}
	if calls.Load() < 4*bound {
		t.Errorf("only %d calls: the key was not saturated", calls.Load())
	}
	if other.Load() != 0 {
		t.Errorf("the other key was refused %d times", other.Load())
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
