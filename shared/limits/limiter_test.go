package limits_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// rateStore is a limits.RateStore made of functions; every call is logged
// by method name.
type rateStore struct {
	SubscriptionFn func(userID string) (*usage.Subscription, error)
	TakeFn         func(key string, now time.Time, g limits.GCRA, cost int64) (limits.RateResult, error)
	CheckFn        func(r limits.LimitRequest) (*limits.LimitCheck, error)

	mu    sync.Mutex
	calls []string
}

var _ limits.RateStore = (*rateStore)(nil)

func (s *rateStore) log(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, name)
}

// took returns the calls logged since the last took.
func (s *rateStore) took() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *rateStore) Subscription(_ context.Context, userID string) (*usage.Subscription, error) {
	s.log("Subscription")
	return s.SubscriptionFn(userID)
}

func (s *rateStore) Take(_ context.Context, key string, now time.Time, g limits.GCRA, cost int64) (limits.RateResult, error) {
	s.log("Take")
	return s.TakeFn(key, now, g, cost)
}

func (s *rateStore) Check(_ context.Context, r limits.LimitRequest) (*limits.LimitCheck, error) {
	s.log("Check")
	return s.CheckFn(r)
}

const limitUser = "3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607"

var limitT0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// freeSub is the free plan (1,000 included, hard, 2/s burst 10) anchored
// on the 1st.
func freeSub(version string) *usage.Subscription {
	return &usage.Subscription{UserID: limitUser, PlanID: usage.PlanFree, Version: version,
		PeriodAnchor: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Effective:    usage.Plan{ID: usage.PlanFree, IncludedCalls: 1000, HardLimit: true, RatePerSecond: 2, Burst: 10}}
}

// fakeRates is a store that runs the GCRA reference and sums nothing: the
// period's usage is counters (what the record path has counted) or the
// request's known usage, whichever is higher.
type fakeRates struct {
	*rateStore
	mu       sync.Mutex
	sub      *usage.Subscription
	counters int64
	tat      map[string]int64
	requests []limits.LimitRequest
}

func newFakeRates(sub *usage.Subscription) *fakeRates {
	f := &fakeRates{rateStore: &rateStore{}, sub: sub, tat: map[string]int64{}}
	f.SubscriptionFn = func(string) (*usage.Subscription, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		c := *f.sub
		return &c, nil
	}
	f.TakeFn = func(key string, now time.Time, g limits.GCRA, cost int64) (limits.RateResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var r limits.RateResult
		f.tat[key], r = g.Take(f.tat[key], now.UnixMicro(), cost)
		return r, nil
	}
	f.CheckFn = func(r limits.LimitRequest) (*limits.LimitCheck, error) {
		f.mu.Lock()
		f.requests = append(f.requests, r)
		if r.Version != f.sub.Version {
			defer f.mu.Unlock()
			return &limits.LimitCheck{Version: f.sub.Version}, nil
		}
		c := &limits.LimitCheck{Version: r.Version, Used: max(f.counters, r.KnownUsed)}
		f.mu.Unlock()
		if r.Hard && c.Used+r.Cost > r.Included {
			return c, nil
		}
		c.Took = true
		c.Rate, _ = f.TakeFn(r.Key, r.Now, r.GCRA, r.Cost)
		return c, nil
	}
	return f
}

func TestLimiter_RoundTrips(t *testing.T) {
	f := newFakeRates(freeSub("v1"))
	clk := testkit.NewClock(limitT0)
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: clk.Now})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser, APIKeyID: "0b2f8c7e-1d3a-4e5f-9a6b-7c8d9e0f1a2b"}
	steps := []struct {
		name    string
		advance time.Duration
		want    []string
	}{
		{"a user never seen: the subscription, then the check", 0, []string{"Subscription", "Check"}},
		{"within the TTL: the GCRA step only", 100 * time.Millisecond, []string{"Take"}},
		{"again", 100 * time.Millisecond, []string{"Take"}},
		{"past the TTL: the check, the subscription still known", limits.DefaultCacheTTL, []string{"Check"}},
	}
	for _, st := range steps {
		clk.Add(st.advance)
		d, err := l.Check(ctx, id, 1)
		if err != nil || !d.Allowed {
			t.Fatalf("%s: %+v, %v", st.name, d, err)
		}
		if diff := cmp.Diff(st.want, f.took()); diff != "" {
			t.Errorf("%s: calls (-want +got):\n%s", st.name, diff)
		}
	}
	// The terms the check was sent: computed here, from the subscription.
	r := f.requests[len(f.requests)-1]
	want := limits.LimitRequest{UserID: limitUser, Key: "k:" + id.APIKeyID, Now: clk.Now(), Cost: 1, KnownUsed: 3,
		Period:   usage.PeriodAt(f.sub.PeriodAnchor, clk.Now()),
		Included: 1000, Hard: true, GCRA: limits.NewGCRA(2, 10), Version: "v1"}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if d, _ := l.Check(ctx, usage.Identity{UserID: limitUser}, 1); d.Remaining != 9 {
		t.Errorf("a JWT caller shares no key with the API key: remaining %d; want 9", d.Remaining)
	}
}

func TestLimiter_NoRoundTrip(t *testing.T) {
	f := newFakeRates(freeSub("v1"))
	f.counters = 999
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: func() time.Time { return limitT0 }})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser}
	if d, err := l.Check(ctx, id, 1); err != nil || !d.Allowed || d.Quota.Used != 1000 || d.Quota.Remaining != 0 {
		t.Fatalf("last call of the quota: %+v, %v", d, err)
	}
	f.took()
	d, err := l.Check(ctx, id, 1)
	if err != nil || d.Allowed || d.Reason != usage.CodeQuotaExceeded || d.RetryAfter != time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Sub(limitT0) {
		t.Errorf("over the hard quota: %+v, %v; want refused until the period ends", d, err)
	}
	if _, err := l.Check(ctx, id, 11); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("cost above the burst: %v; want %s", err, usage.CodeInvalid)
	}
	if calls := f.took(); len(calls) != 0 {
		t.Errorf("calls %v; want none: the cache decides", calls)
	}
	// Cold, a cost above the burst is refused before the round trip too.
	cold := limits.NewLimiter(f, limits.LimiterOptions{Now: func() time.Time { return limitT0 }, CacheTTL: -1})
	if _, err := cold.Check(ctx, id, 11); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("cold, cost above the burst: %v; want %s", err, usage.CodeInvalid)
	}
	if calls := f.took(); !slices.Equal(calls, []string{"Subscription"}) {
		t.Errorf("cold calls %v; want the subscription read only", calls)
	}
}

func TestLimiter_Invalid(t *testing.T) {
	l := limits.NewLimiter(&rateStore{}, limits.LimiterOptions{})
	for _, tt := range []struct {
		id    usage.Identity
		cost  int64
		field string
	}{
		{usage.Identity{UserID: limitUser}, 0, "cost"},
		{usage.Identity{UserID: "alice"}, 1, "user_id"},
	} {
		if _, err := l.Check(context.Background(), tt.id, tt.cost); usage.ErrorField(err) != tt.field {
			t.Errorf("Check(%+v, %d) = %v; want invalid %s", tt.id, tt.cost, err, tt.field)
		}
	}
}

// TestLimiter_ReservesAdmissions: with N calls left and the counters never
// moving, one Limiter admits exactly N of many concurrent calls, and keeps
// them counted across refreshes.
func TestLimiter_ReservesAdmissions(t *testing.T) {
	sub := freeSub("v1")
	sub.Effective.Burst, sub.Effective.RatePerSecond = 1000, 1000
	f := newFakeRates(sub)
	f.counters = 993
	clk := testkit.NewClock(limitT0)
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: clk.Now})
	var admitted, refused int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			d, err := l.Check(context.Background(), usage.Identity{UserID: limitUser}, 1)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if d.Allowed {
				admitted++
			} else if d.Reason == usage.CodeQuotaExceeded {
				refused++
			}
		})
	}
	wg.Wait()
	if admitted != 7 || refused != 43 {
		t.Fatalf("admitted %d, refused %d; want 7 and 43", admitted, refused)
	}
	clk.Add(5 * time.Second)
	d, err := l.Check(context.Background(), usage.Identity{UserID: limitUser}, 1)
	if err != nil || d.Allowed || f.requests[len(f.requests)-1].KnownUsed != 1000 {
		t.Errorf("after a refresh: %+v, %v, known %d; want refused, 1000 known", d, err, f.requests[len(f.requests)-1].KnownUsed)
	}
	// A new period starts from the counters alone.
	clk.Add(30 * 24 * time.Hour)
	if _, err := l.Check(context.Background(), usage.Identity{UserID: limitUser}, 1); err != nil || f.requests[len(f.requests)-1].KnownUsed != 0 {
		t.Errorf("next period: known %d, %v; want 0", f.requests[len(f.requests)-1].KnownUsed, err)
	}
}

// TestLimiter_ReleasesReservation: a call the rate limit refuses, or whose
// step fails, is not counted.
func TestLimiter_ReleasesReservation(t *testing.T) {
	f := newFakeRates(freeSub("v1"))
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: func() time.Time { return limitT0 }})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser}
	for i := range 10 {
		if d, err := l.Check(ctx, id, 1); err != nil || !d.Allowed {
			t.Fatalf("call %d: %+v, %v", i, d, err)
		}
	}
	d, err := l.Check(ctx, id, 1)
	if err != nil || d.Allowed || d.Reason != usage.CodeRateLimited || d.Quota.Used != 10 || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("past the burst: %+v, %v; want rate limited, used 10", d, err)
	}
	boom := usage.Errorf(usage.CodeUnavailable, "database unavailable")
	f.TakeFn = func(string, time.Time, limits.GCRA, int64) (limits.RateResult, error) {
		return limits.RateResult{}, boom
	}
	if _, err := l.Check(ctx, id, 1); !errors.Is(err, boom) {
		t.Fatalf("failed step: %v; want the store's error", err)
	}
	f.TakeFn = func(string, time.Time, limits.GCRA, int64) (limits.RateResult, error) {
		return limits.RateResult{Allowed: true}, nil
	}
	if d, err := l.Check(ctx, id, 1); err != nil || d.Quota.Used != 11 {
		t.Errorf("next admitted call: used %d, %v; want 11 (refusals and failures not counted)", d.Quota.Used, err)
	}
}

// TestLimiter_PlanChange: the store's version says the terms changed; the
// Limiter reads the subscription again and decides under the new plan in
// the same call.
func TestLimiter_PlanChange(t *testing.T) {
	f := newFakeRates(freeSub("v1"))
	clk := testkit.NewClock(limitT0)
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: clk.Now})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser}
	if d, err := l.Check(ctx, id, 1); err != nil || d.Limit != 10 {
		t.Fatalf("free: %+v, %v", d, err)
	}
	f.mu.Lock()
	f.sub = &usage.Subscription{UserID: limitUser, PlanID: usage.PlanPro, Version: "v2", PeriodAnchor: time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC),
		Effective: usage.Plan{ID: usage.PlanPro, IncludedCalls: 100_000, RatePerSecond: 50, Burst: 100}}
	f.mu.Unlock()
	f.took()
	if d, err := l.Check(ctx, id, 1); err != nil || d.Limit != 10 {
		t.Fatalf("within the TTL: %+v, %v; want the cached free terms", d, err)
	}
	clk.Add(limits.DefaultCacheTTL)
	d, err := l.Check(ctx, id, 1)
	if err != nil || !d.Allowed || d.Limit != 100 || d.Quota.Hard || d.Quota.Included != 100_000 ||
		d.Quota.Period != usage.PeriodAt(time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC), clk.Now()) {
		t.Fatalf("after the change: %+v, %v; want the pro terms and period", d, err)
	}
	if diff := cmp.Diff([]string{"Take", "Check", "Subscription", "Check"}, f.took()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if r := f.requests[len(f.requests)-1]; r.Version != "v2" || r.GCRA != limits.NewGCRA(50, 100) || r.Hard {
		t.Errorf("re-decided with %+v; want the pro terms", r)
	}

	// Terms that never settle: give up after a few reads.
	f.mu.Lock()
	f.sub = freeSub("moving")
	f.mu.Unlock()
	n := 0
	f.SubscriptionFn = func(string) (*usage.Subscription, error) {
		n++
		s := freeSub("never")
		return s, nil
	}
	clk.Add(limits.DefaultCacheTTL)
	if _, err := l.Check(ctx, id, 1); usage.ErrorCode(err) != usage.CodeUnavailable || n != 3 {
		t.Errorf("changing terms: %v after %d reads; want %s after 3", err, n, usage.CodeUnavailable)
	}
}

func TestLimiter_StoreErrors(t *testing.T) {
	boom := usage.Errorf(usage.CodeUnavailable, "database unavailable")
	f := newFakeRates(freeSub("v1"))
	f.SubscriptionFn = func(string) (*usage.Subscription, error) { return nil, boom }
	l := limits.NewLimiter(f, limits.LimiterOptions{})
	if _, err := l.Check(context.Background(), usage.Identity{UserID: limitUser}, 1); !errors.Is(err, boom) {
		t.Errorf("subscription read failing: %v; want the store's error", err)
	}
	f = newFakeRates(freeSub("v1"))
	f.CheckFn = func(limits.LimitRequest) (*limits.LimitCheck, error) { return nil, boom }
	l = limits.NewLimiter(f, limits.LimiterOptions{})
	if _, err := l.Check(context.Background(), usage.Identity{UserID: limitUser}, 1); !errors.Is(err, boom) {
		t.Errorf("check failing: %v; want the store's error", err)
	}
}

// TestLimiter_CheckRateAtHardQuota: a report of calls already served
// (POST /v1/events) is decided by the rate limit alone: a user at its hard
// quota, whose next call Check refuses, still reports, the report takes
// the caller's GCRA units (so a flood of reports is refused as rate
// limited), and it reserves nothing against the quota.
func TestLimiter_CheckRateAtHardQuota(t *testing.T) {
	f := newFakeRates(freeSub("v1"))
	f.counters = 995
	clk := testkit.NewClock(limitT0)
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: clk.Now})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser, APIKeyID: "0b2f8c7e-1d3a-4e5f-9a6b-7c8d9e0f1a2b"}
	// Reports reserve nothing against the quota: the calls around them
	// count only themselves.
	if d, err := l.Check(ctx, id, 1); err != nil || !d.Allowed || d.Quota.Used != 996 {
		t.Fatalf("Check = %+v, %v; want allowed at 996", d, err)
	}
	if d, err := l.CheckRate(ctx, id, 4); err != nil || !d.Allowed || d.Remaining != 5 {
		t.Fatalf("CheckRate of 4 = %+v, %v; want allowed, 5 of the burst left", d, err)
	}
	if d, err := l.Check(ctx, id, 1); err != nil || !d.Allowed || d.Quota.Used != 997 {
		t.Fatalf("Check after the report = %+v, %v; want allowed at 997", d, err)
	}
	// At the hard quota, Check refuses the next call; its report still
	// goes through, costing the caller's GCRA units.
	f.counters = 1000
	clk.Add(limits.DefaultCacheTTL)
	if d, err := l.Check(ctx, id, 1); err != nil || d.Allowed || d.Reason != usage.CodeQuotaExceeded {
		t.Fatalf("Check at the quota = %+v, %v; want quota_exceeded", d, err)
	}
	if d, err := l.CheckRate(ctx, id, 2); err != nil || !d.Allowed || d.Quota != (usage.QuotaStatus{}) {
		t.Fatalf("CheckRate at the quota = %+v, %v; want allowed, no quota (it decides none)", d, err)
	}
	if d, err := l.CheckRate(ctx, id, 10); err != nil || d.Allowed || d.Reason != usage.CodeRateLimited || d.RetryAfter <= 0 {
		t.Errorf("CheckRate beyond the burst left = %+v, %v; want rate_limited with a Retry-After", d, err)
	}
	if _, err := l.CheckRate(ctx, id, 11); usage.ErrorField(err) != "cost" {
		t.Errorf("CheckRate above the burst: %v; want an error naming cost", err)
	}
	if _, err := l.CheckRate(ctx, usage.Identity{UserID: "nope"}, 1); usage.ErrorField(err) != "user_id" {
		t.Errorf("CheckRate of a malformed user: %v; want an error naming user_id", err)
	}
}

// TestLimiter_DowngradeAtPeriodEnd: a downgrade waiting for the period's
// end leaves the terms in force alone until then, and the first call of the
// next period is decided under the new ones.
func TestLimiter_DowngradeAtPeriodEnd(t *testing.T) {
	sub := &usage.Subscription{UserID: limitUser, PlanID: usage.PlanPro, Version: "v1", PeriodAnchor: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Effective: usage.Plan{ID: usage.PlanPro, IncludedCalls: 100_000, RatePerSecond: 50, Burst: 100},
		Next: &usage.Terms{From: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), PlanID: usage.PlanFree, Effective: usage.Plan{ID: usage.PlanFree, IncludedCalls: 1000, HardLimit: true, RatePerSecond: 2, Burst: 10}, Change: usage.ChangeDowngrade}}
	f := newFakeRates(sub)
	clk := testkit.NewClock(time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC))
	l := limits.NewLimiter(f, limits.LimiterOptions{Now: clk.Now})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser}
	d, err := l.Check(ctx, id, 1)
	if err != nil || d.Limit != 100 || d.Quota.Included != 100_000 || d.Quota.Hard {
		t.Fatalf("before the period's end: %+v, %v; want pro's terms", d, err)
	}
	clk.Add(2 * time.Second)
	d, err = l.Check(ctx, id, 1)
	if err != nil || d.Limit != 10 || d.Quota.Included != 1000 || !d.Quota.Hard || !d.Quota.Period.Start.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("after the period's end: %+v, %v; want free's terms", d, err)
	}
}

// hungStore is a RateStore that never answers (a database behind a
// partition, or one failing over): each call waits for its context.
type hungStore struct{ deadlines chan time.Duration }

func (s hungStore) wait(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok && s.deadlines != nil {
		s.deadlines <- time.Until(d)
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s hungStore) Subscription(ctx context.Context, _ string) (*usage.Subscription, error) {
	return nil, s.wait(ctx)
}

func (s hungStore) Take(ctx context.Context, _ string, _ time.Time, _ limits.GCRA, _ int64) (limits.RateResult, error) {
	return limits.RateResult{}, s.wait(ctx)
}

func (s hungStore) Check(ctx context.Context, _ limits.LimitRequest) (*limits.LimitCheck, error) {
	return nil, s.wait(ctx)
}

// TestLimiterDecisionBounded: a store that never answers costs a decision
// its timeout, not its caller's context (a platform service's requests
// often have none): Check and CheckRate answer CodeUnavailable in our
// words, with a Retry-After, and so do the same user's calls that waited
// behind the first one's round trip. Without a Timeout, the default bounds
// every call to the store.
func TestLimiterDecisionBounded(t *testing.T) {
	l := limits.NewLimiter(hungStore{}, limits.LimiterOptions{Timeout: 50 * time.Millisecond})
	id := usage.Identity{UserID: limitUser, APIKeyID: "9b2f0c1e-3d4a-4b5c-8d6e-7f8091a2b3c4"}
	done := make(chan error, 6)
	for range 3 {
		go func() { _, err := l.Check(context.Background(), id, 1); done <- err }()
		go func() { _, err := l.CheckRate(context.Background(), id, 1); done <- err }()
	}
	for range 6 {
		select {
		case err := <-done:
			if usage.ErrorCode(err) != usage.CodeUnavailable || usage.ErrorMessage(err) != "the usage limits could not be checked within 50ms; retry" ||
				usage.ErrorRetryAfter(err) <= 0 {
				t.Errorf("decision over a store that never answers = %v (retry after %s); want %s in our words, with a retry after",
					err, usage.ErrorRetryAfter(err), usage.CodeUnavailable)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a decision over a store that never answers had not returned after 30 s; want CodeUnavailable at its 50ms timeout")
		}
	}

	seen := make(chan time.Duration, 1)
	l = limits.NewLimiter(hungStore{deadlines: seen}, limits.LimiterOptions{})
	go func() { _, _ = l.Check(context.Background(), id, 1) }()
	select {
	case d := <-seen:
		if d <= 0 || d > usage.DecisionTimeout {
			t.Errorf("the store's call had %s left; want at most usage.DecisionTimeout (%s)", d, usage.DecisionTimeout)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the store was not called with a deadline; want usage.DecisionTimeout to bound it")
	}
}
