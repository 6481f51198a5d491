package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// The limiter's decisions over PostgreSQL: limits.Limiter on
// postgres.RateStore. The decision logic alone is tested in package limits
// on a fake store; these prove it together with the SQL.

var limitNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// subscribe puts user on plan with overrides, anchored on the 1st.
func subscribe(t *testing.T, db *postgres.DB, user, plan string, o usage.Overrides) {
	t.Helper()
	err := postgres.NewSubscriptionStore(db).PutSubscription(context.Background(), &usage.Subscription{
		UserID: user, PlanID: plan, Overrides: o, PeriodAnchor: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
}

// addCalls adds calls to the user's live counters on day, as the record
// function does.
func addCalls(t *testing.T, db *postgres.DB, user string, day time.Time, calls int64) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), `SELECT increment_api_calls($1, $2, $3, $4, $5, $6, $7)`,
		[]string{user}, []time.Time{usage.Day(day)}, []int64{calls}, []int64{0}, []int64{0}, []int64{0}, []int64{0})
	if err != nil {
		t.Fatal(err)
	}
}

// newLimiter returns a Limiter over the database's rate limiter.
func newLimiter(db *postgres.DB, opts limits.LimiterOptions) *limits.Limiter {
	return limits.NewLimiter(postgres.NewRateStore(db), opts)
}

// hammer runs n concurrent checks and returns the decisions.
func hammer(t *testing.T, cs []*limits.Limiter, id usage.Identity, n int) []usage.Decision {
	t.Helper()
	out := make([]usage.Decision, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := cs[i%len(cs)].Check(context.Background(), id, 1)
			if err != nil {
				t.Error(err)
			}
			out[i] = d
		}()
	}
	wg.Wait()
	return out
}

func count(ds []usage.Decision, reason string) (admitted, refused int) {
	for _, d := range ds {
		if d.Allowed {
			admitted++
		} else if d.Reason == reason {
			refused++
		}
	}
	return
}

func bigBurst() usage.Overrides {
	b, r := 1000, 1000.0
	return usage.Overrides{Burst: &b, RatePerSecond: &r}
}

// TestHardQuotaConcurrent: a free user with N calls left and 50 concurrent
// requests on one instance is admitted exactly N times (the stated
// overshoot of one instance is 0), although the counters never move.
func TestHardQuotaConcurrent(t *testing.T) {
	db := pgtest.NewDB(t)
	clk := testkit.NewClock(limitNow)
	user := uuid.NewString()
	subscribe(t, db, user, usage.PlanFree, bigBurst()) // free: 1000 included, hard
	const left = 7
	addCalls(t, db, user, limitNow.AddDate(0, 0, -2), 1000-left)

	c := newLimiter(db, limits.LimiterOptions{Now: clk.Now})
	ds := hammer(t, []*limits.Limiter{c}, usage.Identity{UserID: user, APIKeyID: uuid.NewString()}, 50)
	admitted, refused := count(ds, usage.CodeQuotaExceeded)
	if admitted != left || refused != 50-left {
		t.Fatalf("admitted %d, refused for quota %d; want %d and %d", admitted, refused, left, 50-left)
	}
	for _, d := range ds {
		if !d.Allowed && d.RetryAfter != time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Sub(limitNow) {
			t.Errorf("quota refusal retry after %s; want until the period ends", d.RetryAfter)
		}
	}
	// Past the cache TTL, with the counters still behind (the events are
	// in flight), the refresh keeps what this instance admitted.
	clk.Add(5 * time.Second)
	if d, err := c.Check(context.Background(), usage.Identity{UserID: user}, 1); err != nil || d.Allowed || d.Reason != usage.CodeQuotaExceeded {
		t.Fatalf("after refresh: %+v, %v; want a quota refusal", d, err)
	}
}

// TestHardQuotaTwoInstances: with P = 2 instances and no recording, the
// overshoot stays within (P−1)·N.
func TestHardQuotaTwoInstances(t *testing.T) {
	db := pgtest.NewDB(t)
	clk := testkit.NewClock(limitNow)
	user := uuid.NewString()
	subscribe(t, db, user, usage.PlanFree, bigBurst())
	const left = 5
	addCalls(t, db, user, limitNow, 1000-left)
	cs := []*limits.Limiter{newLimiter(db, limits.LimiterOptions{Now: clk.Now}), newLimiter(db, limits.LimiterOptions{Now: clk.Now})}
	ds := hammer(t, cs, usage.Identity{UserID: user}, 50)
	admitted, _ := count(ds, usage.CodeQuotaExceeded)
	if admitted < left || admitted > 2*left {
		t.Fatalf("admitted %d; want between N = %d and N + (P−1)·N = %d", admitted, left, 2*left)
	}
}

// TestSoftQuotaOverage: a pro user at the same point is admitted every
// time, and once the events are recorded the excess is overage.
func TestSoftQuotaOverage(t *testing.T) {
	db := pgtest.NewDB(t)
	clk := testkit.NewClock(limitNow)
	user := uuid.NewString()
	subscribe(t, db, user, usage.PlanPro, usage.Overrides{}) // 100,000 included, soft, burst 100
	const left = 7
	addCalls(t, db, user, limitNow.AddDate(0, 0, -1), 100_000-left)
	c := newLimiter(db, limits.LimiterOptions{Now: clk.Now})
	ds := hammer(t, []*limits.Limiter{c}, usage.Identity{UserID: user, APIKeyID: uuid.NewString()}, 50)
	if admitted, _ := count(ds, ""); admitted != 50 {
		t.Fatalf("admitted %d of 50; want all (soft quota)", admitted)
	}
	addCalls(t, db, user, limitNow, 50) // the record function catches up
	sub, err := postgres.NewSubscriptionStore(db).Subscription(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	p := usage.PeriodAt(sub.PeriodAnchor, limitNow)
	if err := db.Pool.QueryRow(context.Background(), `SELECT sum(calls) FROM eco_usage_counters
		WHERE user_id = $1 AND day >= $2 AND day < $3`, user, p.Start, p.End).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if o, err := sub.Effective.Price().Charge(used - sub.Effective.IncludedCalls); err != nil || used != 100_000-left+50 || o.Units < 1 || o.Amount <= 0 {
		t.Fatalf("used %d, overage %+v, %v; want units > 0", used, o, err)
	}
}

// TestRateDecisions checks the rate limit's numbers through the Limiter:
// the free burst of 10 at 2/s, per API key, with the cache warm and cold.
func TestRateDecisions(t *testing.T) {
	for _, ttl := range []time.Duration{0, -1} {
		db := pgtest.NewDB(t)
		clk := testkit.NewClock(limitNow)
		c := newLimiter(db, limits.LimiterOptions{Now: clk.Now, CacheTTL: ttl})
		user := uuid.NewString()
		key1 := usage.Identity{UserID: user, APIKeyID: uuid.NewString()}
		key2 := usage.Identity{UserID: user, APIKeyID: uuid.NewString()}
		ctx := context.Background()
		for i := int64(0); i < 10; i++ {
			d, err := c.Check(ctx, key1, 1)
			if err != nil {
				t.Fatal(err)
			}
			want := usage.Decision{Allowed: true, Limit: 10, Remaining: 9 - i, Reset: time.Duration(i+1) * 500 * time.Millisecond,
				RatePerSecond: 2, Quota: usage.QuotaStatus{Period: usage.PeriodAt(usage.DefaultPeriodAnchor, limitNow),
					Included: 1000, Used: i + 1, Remaining: 1000 - i - 1, Hard: true}}
			if d != want {
				t.Fatalf("ttl %s call %d: %+v; want %+v", ttl, i, d, want)
			}
		}
		d, err := c.Check(ctx, key1, 1)
		if err != nil || d.Allowed || d.Reason != usage.CodeRateLimited || d.RetryAfter != 500*time.Millisecond ||
			d.Reset != 5*time.Second || d.Remaining != 0 || d.Quota.Used != 10 {
			t.Fatalf("ttl %s: 11th call %+v, %v; want refused, retry after 500ms", ttl, d, err)
		}
		if d, err := c.Check(ctx, key2, 1); err != nil || !d.Allowed || d.Remaining != 9 {
			t.Fatalf("ttl %s: other key %+v, %v; want its own full burst", ttl, d, err)
		}
		clk.Add(500 * time.Millisecond)
		if d, err := c.Check(ctx, key1, 1); err != nil || !d.Allowed || d.Remaining != 0 {
			t.Fatalf("ttl %s: after 500ms %+v, %v; want one admitted", ttl, d, err)
		}
		if _, err := c.Check(ctx, key1, 11); usage.ErrorCode(err) != usage.CodeInvalid {
			t.Fatalf("cost above burst: %v; want invalid", err)
		}
	}
}

// TestPlanChangeNoticed: a Limiter that keeps a user's subscription in
// memory decides under the new plan at its next refresh after an admin
// changes it, and under a plan row edited in place.
func TestPlanChangeNoticed(t *testing.T) {
	db := pgtest.NewDB(t)
	clk := testkit.NewClock(limitNow)
	db.Now = clk.Now // PutPlan anchors a new subscription today
	user := uuid.NewString()
	id := usage.Identity{UserID: user}
	ctx := context.Background()
	l := newLimiter(db, limits.LimiterOptions{Now: clk.Now})
	check := func(want usage.Decision) {
		t.Helper()
		d, err := l.Check(ctx, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d.Limit != want.Limit || d.Quota.Included != want.Quota.Included || d.Quota.Hard != want.Quota.Hard || d.Quota.Period != want.Quota.Period {
			t.Fatalf("decision %+v; want limit %d, quota %+v", d, want.Limit, want.Quota)
		}
	}
	free := usage.Decision{Limit: 10, Quota: usage.QuotaStatus{Included: 1000, Hard: true, Period: usage.PeriodAt(usage.DefaultPeriodAnchor, limitNow)}}
	check(free)
	if _, err := postgres.NewAnalyticsStore(db).PutPlan(ctx, report.PlanChange{UserID: user, PlanID: usage.PlanPro, Who: "ops"}); err != nil {
		t.Fatal(err)
	}
	check(free) // within the TTL: the cache holds
	clk.Add(2 * limits.DefaultCacheTTL)
	pro := usage.Decision{Limit: 100, Quota: usage.QuotaStatus{Included: 100_000, Period: usage.PeriodAt(usage.Day(limitNow), clk.Now())}}
	check(pro)
	if _, err := db.Pool.Exec(ctx, `UPDATE eco_plans SET burst = 42 WHERE plan_id = 'pro'`); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * limits.DefaultCacheTTL)
	pro.Limit = 42
	check(pro)
}

// TestRateChangeAppliesAtOnce: a change of rate limit applies from the
// limiter's next refresh, as docs/limits.md says, whatever the caller did
// under the limit before: the share of the burst the caller had spent
// carries over to the new limit. A caller held to one call every 100 s
// (burst 5) who spent the burst, then put back on pro's 50 calls a second,
// waits one pro interval (20 ms); the key's state, written under the slow
// limit, used to keep them refused for 498 s. The other way, a caller who
// just spent pro's burst and is slowed down has spent the slow one too; it
// used to be admitted 4 more calls at once.
func TestRateChangeAppliesAtOnce(t *testing.T) {
	db := pgtest.NewDB(t)
	clk := testkit.NewClock(limitNow)
	db.Now = clk.Now
	ctx := context.Background()
	admin := postgres.NewAnalyticsStore(db)
	rate, burst := 0.01, 5
	slow := report.PlanChange{PlanID: usage.PlanPro, Overrides: usage.Overrides{RatePerSecond: &rate, Burst: &burst}}
	fast := report.PlanChange{PlanID: usage.PlanPro}
	for _, tt := range []struct {
		name      string
		from, to  report.PlanChange
		spend     int
		wantRetry time.Duration // after the change, at the same instant
	}{
		{"faster", slow, fast, burst, 20 * time.Millisecond},
		{"slower", fast, slow, 100, 100 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			user := uuid.NewString()
			id := usage.Identity{UserID: user}
			// No cache: every call reads the terms, so the change is seen at
			// once and the clock need not move.
			l := newLimiter(db, limits.LimiterOptions{Now: clk.Now, CacheTTL: -1})
			tt.from.UserID, tt.from.Who, tt.to.UserID, tt.to.Who = user, "ops", user, "ops"
			if _, err := admin.PutPlan(ctx, tt.from); err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= tt.spend; i++ {
				d, err := l.Check(ctx, id, 1)
				if err != nil {
					t.Fatal(err)
				}
				if want := i < tt.spend; d.Allowed != want {
					t.Fatalf("call %d before the change: allowed %v; want %v", i+1, d.Allowed, want)
				}
			}
			if _, err := admin.PutPlan(ctx, tt.to); err != nil {
				t.Fatal(err)
			}
			d, err := l.Check(ctx, id, 1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed || d.RetryAfter != tt.wantRetry {
				t.Fatalf("the call after the change: allowed %v, retry after %v; want refused, retry after %v", d.Allowed, d.RetryAfter, tt.wantRetry)
			}
			clk.Add(tt.wantRetry)
			if d, err := l.Check(ctx, id, 1); err != nil || !d.Allowed {
				t.Errorf("a call %v later: %+v, %v; want admitted", tt.wantRetry, d, err)
			}
		})
	}
}
