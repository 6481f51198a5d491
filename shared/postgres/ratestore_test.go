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
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestRateLimitTakeMatchesGCRA runs random steps through the SQL function
// and the Go reference and requires identical answers.
func TestRateLimitTakeMatchesGCRA(t *testing.T) {
	db := pgtest.NewDB(t)
	l := postgres.NewRateStore(db)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, g := range []limits.GCRA{limits.NewGCRA(2, 10), limits.NewGCRA(50, 100), limits.NewGCRA(3, 1)} {
		key := fmt.Sprintf("k:%d:%d", g.IntervalMicros, g.Burst)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var tat int64
		for i := 0; i < 300; i++ {
			now = now.Add(time.Duration(rng.IntN(int(2*g.IntervalMicros))) * time.Microsecond)
			cost := int64(1 + rng.IntN(int(min(g.Burst, 3))))
			var want limits.RateResult
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
	l := postgres.NewRateStore(db)
	ctx := context.Background()
	const (
		workers = 8
		calls   = 6 // per worker and step: 48 calls against a burst of 10
		steps   = 5
		advance = 3 // emission intervals between steps
	)
	g := limits.NewGCRA(20, 10) // T = 50 ms
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

// TestLimitCheck runs limit_check on terms computed in Go: the counters of
// the period's days only, the hard quota before the GCRA step, the step
// itself as the Go reference takes it, and nothing at all when the terms'
// version is stale. It claims no usage alerts any more (they are raised
// where usage is counted: TestNotifyCrossingsOnce).
func TestLimitCheck(t *testing.T) {
	db := pgtest.NewDB(t)
	l := postgres.NewRateStore(db)
	ctx := context.Background()
	user := uuid.NewString()
	sub, err := l.Subscription(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	// A period of 10 days; calls the day before, on its first and last
	// days, and on the day it ends (the next period's first).
	p := usage.Period{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)}
	for day, calls := range map[time.Time]int64{p.Start.AddDate(0, 0, -1): 1000, p.Start: 30, p.End.AddDate(0, 0, -1): 40, p.End: 2000} {
		if _, err := db.Pool.Exec(ctx, `SELECT increment_api_calls($1, $2, $3, $4, $4, $4, $4)`,
			[]string{user}, []time.Time{day}, []int64{calls}, []int64{0}); err != nil {
			t.Fatal(err)
		}
	}
	g := limits.NewGCRA(1, 3)
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	req := limits.LimitRequest{UserID: user, Key: "u:" + user, Now: now, Cost: 1,
		Period: p, Included: 100, Hard: true, GCRA: g, Version: sub.Version}
	alertRows := func() int {
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_usage_alerts WHERE user_id = $1`, user).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A stale version: nothing happens, the current version comes back.
	stale := req
	stale.Version = "0.0"
	c, err := l.Check(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != sub.Version || c.Took || c.Used != 0 || alertRows() != 0 {
		t.Fatalf("stale check = %+v, %d alert rows; want only the version %s", c, alertRows(), sub.Version)
	}
	var keys int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_rate_limits`).Scan(&keys); err != nil || keys != 0 {
		t.Fatalf("%d rate limit rows after a stale check (%v); want none", keys, err)
	}

	// Current: 70 calls in the period, the step taken as the reference
	// takes it.
	var tat int64
	for i := range 4 {
		c, err := l.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var want limits.RateResult
		tat, want = g.Take(tat, now.UnixMicro(), 1)
		if c.Version != sub.Version || c.Used != 70 || !c.Took || c.Rate != want {
			t.Fatalf("check %d = %+v; want used 70, the step %+v", i, c, want)
		}
	}
	// What the caller knows beats the counters; the hard quota refuses
	// before the step.
	req.KnownUsed = 100
	c, err = l.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if c.Used != 100 || c.Took {
		t.Errorf("at the quota: %+v; want used 100, refused before the step", c)
	}
	// A soft quota takes the step.
	req.Hard = false
	if c, err = l.Check(ctx, req); err != nil || !c.Took {
		t.Errorf("soft quota: %+v, %v; want the step taken", c, err)
	}
	if n := alertRows(); n != 0 {
		t.Errorf("%d alert rows; the limiter claims none", n)
	}
	if _, err := l.Check(ctx, limits.LimitRequest{UserID: "not-a-uuid"}); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("malformed user: %v; want %s", err, usage.CodeInvalid)
	}
}

// TestTermsVersion: every write of a user's subscription or of its plan
// gives the user's terms a version never seen before, whoever writes.
func TestTermsVersion(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	l := postgres.NewRateStore(db)
	subs := postgres.NewSubscriptionStore(db)
	analytics := postgres.NewAnalyticsStore(db)
	user := uuid.NewString()
	db.Now = func() time.Time { return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) } // one instant for every write
	seen := map[string]string{}
	var last string
	version := func(what string, write func() error) string {
		t.Helper()
		if err := write(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sub, err := l.Subscription(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if sub.Version == "" {
			t.Fatalf("%s: no version", what)
		}
		return sub.Version
	}
	step := func(what string, write func() error) {
		t.Helper()
		v := version(what, write)
		if before, ok := seen[v]; ok {
			t.Errorf("%s: version %s already seen after %s", what, v, before)
		}
		seen[v], last = what, v
	}
	exec := func(q string, args ...any) func() error {
		return func() error { _, err := db.Pool.Exec(ctx, q, args...); return err }
	}
	step("no subscription", func() error { return nil })
	step("subscribed", func() error {
		return subs.PutSubscription(ctx, &usage.Subscription{UserID: user, PlanID: usage.PlanFree})
	})
	step("the same again", func() error {
		return subs.PutSubscription(ctx, &usage.Subscription{UserID: user, PlanID: usage.PlanFree})
	})
	step("plan changed by an admin", func() error {
		_, err := analytics.PutPlan(ctx, report.PlanChange{UserID: user, PlanID: usage.PlanPro, Who: "ops"})
		return err
	})
	step("the plan's row edited", exec(`UPDATE eco_plans SET included_calls = included_calls + 1 WHERE plan_id = 'pro'`))
	if v := version("another plan's row edited", exec(`UPDATE eco_plans SET burst = burst + 1 WHERE plan_id = 'enterprise'`)); v != last {
		t.Errorf("editing another plan changed the version from %s to %s", last, v)
	}
	step("back to free", exec(`UPDATE eco_subscriptions SET plan_id = 'free' WHERE user_id = $1`, user))
	step("free's row edited", exec(`UPDATE eco_plans SET burst = burst + 1 WHERE plan_id = 'free'`))
	step("unsubscribed", exec(`DELETE FROM eco_subscriptions WHERE user_id = $1`, user))
}
