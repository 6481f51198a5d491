package limits

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// DefaultCacheTTL is how long a Limiter reuses a user's period usage
// before reading the counters again.
const DefaultCacheTTL = time.Second

// maxLimitEntries bounds a Limiter's cache; past it, expired entries are
// swept.
const maxLimitEntries = 50_000

// maxTermsReads bounds how often one decision re-reads a subscription that
// keeps changing under it.
const maxTermsReads = 3

// LimiterOptions configure a Limiter.
type LimiterOptions struct {
	// CacheTTL is how long a user's period usage is reused before the
	// counters are read again; 0 means DefaultCacheTTL and a negative value
	// disables the cache (every call runs RateStore.Check).
	CacheTTL time.Duration
	// Logger is the limiter's logger; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Timeout bounds each decision's wait for the store, from the call:
	// past it the decision is CodeUnavailable (the middleware's 503). 0
	// means usage.DecisionTimeout; a negative value leaves the caller's
	// context as the only bound.
	Timeout time.Duration
}

// Limiter decides, for every API call, "yes", "slow down" or "over quota":
// a GCRA rate limit per API key (per user when there is no key) whose state
// lives in the RateStore, and the billing period's quota of included calls
// against the live usage counters. It implements LimitChecker. Build one
// per process (Lambda instance) and share it: its cache is what keeps the
// hot path at one round trip.
//
// The example of postgres.NewRateStore builds one and reads its
// decision: an error is CodeUnavailable (the limiter's state cannot be
// reached), a refusal names CodeRateLimited or CodeQuotaExceeded.
//
// # Round trips
//
// A decision is one round trip. A Limiter keeps each user's subscription
// (effective plan, anchor, version) for as long as the store reports the
// same version; the first call of a user on an instance reads it first
// (one extra round trip). The first call of a user, and the first after
// CacheTTL, runs RateStore.Check with the terms computed here (period,
// included calls, hard flag, GCRA interval and burst): the period's used
// calls and the GCRA step, in one statement that also returns the
// subscription's current version. When
// that version changed, the statement did nothing; the subscription is read
// again and the call decided again under the new terms. Calls within the
// TTL reuse the used count from memory and run only the GCRA step
// (RateStore.Take). A hard-quota refusal within the TTL costs no round
// trip at all, and neither does a cost above the burst.
//
// # Worst-case overshoot of a hard quota
//
// A Limiter keeps, per user, a lower bound of the period's usage: the
// counters read at the last refresh (never less than what it knew before
// in the same period) plus every call it admitted since. It reserves each
// call against that bound under a per-user lock, so one Limiter alone never
// admits more than the N calls that were left: overshoot 0, whatever the
// concurrency and the TTL, even though the counters lag the admissions.
//
// What a Limiter cannot see are calls admitted elsewhere (the other P−1
// instances serving the same user) that have not reached its estimate:
// calls admitted within the last TTL + L, where L is the recording lag
// (publisher flush, SQS batching window, the record function). Hence, with
// N calls left:
//
//	overshoot ≤ min((P−1)·N, K·(b + r·(TTL + L)))
//
// where each instance admits at most N, and the rate limit admits at most
// b + r·S calls per key in any window S (K keys of the user; JWT callers
// share one per-user key). For the free plan (r = 2/s, b = 10), TTL = 1 s
// and L ≈ 6 s: at most 24 calls per key. A plan change reaches an instance
// within TTL, at its next refresh.
//
// # Usage alerts
//
// The limiter raises none: thresholds of included calls (80 % and 100 % by
// default, per plan and per user), overage and the hard quota are raised
// where usage is counted, once per user, period and rule, by the record
// path's transaction (shared/notify, record_usage_counts), and delivered from
// its outbox as webhooks and on the EventBridge bus.
type Limiter struct {
	store   RateStore
	ttl     time.Duration
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	entries map[string]*limitEntry
}

var _ usage.LimitChecker = (*Limiter)(nil)

// NewLimiter returns a Limiter over store.
func NewLimiter(store RateStore, opts LimiterOptions) *Limiter {
	l := &Limiter{
		store:   store,
		ttl:     opts.CacheTTL,
		timeout: opts.Timeout,
		logger:  opts.Logger,
		now:     opts.Now,
		entries: map[string]*limitEntry{},
	}
	if l.ttl == 0 {
		l.ttl = DefaultCacheTTL
	}
	if l.timeout == 0 {
		l.timeout = usage.DecisionTimeout
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// limitEntry is what an instance knows about one user.
type limitEntry struct {
	mu sync.Mutex
	// sub holds the terms (nil until read, and after the store reported a
	// newer version); plan is sub's plan in force at the last refresh
	// (Subscription.At) and g its GCRA.
	sub  *usage.Subscription
	plan usage.Plan
	g    GCRA
	// valid, fetched, period and used are the last refresh: used is a
	// lower bound of the period's usage, the counters then (at least what
	// was known before) plus the calls admitted (reserved) here since.
	valid   bool
	gen     uint64
	fetched time.Time
	period  usage.Period
	used    int64
}

func (e *limitEntry) fresh(now time.Time, ttl time.Duration) bool {
	return e.valid && ttl > 0 && !now.Before(e.fetched) && now.Sub(e.fetched) < ttl && e.period.Contains(now)
}

// rateKey is the rate limiter key of a caller: its API key, or the user
// when it authenticated without one.
func rateKey(id usage.Identity) string {
	if id.APIKeyID != "" {
		return "k:" + id.APIKeyID
	}
	return "u:" + id.UserID
}

// checkCall refuses what no limit can decide: a cost below 1, a user
// that is not a UUID.
func checkCall(id usage.Identity, cost int64) error {
	if cost < 1 {
		return usage.FieldErrorf("cost", "must be at least 1")
	}
	if !usage.IsUUID(id.UserID) {
		return usage.FieldErrorf("user_id", "must be a UUID")
	}
	return nil
}

// Check implements LimitChecker: it decides a call of cost by id, the
// hard quota first (no round trip while the cache is fresh), then one GCRA
// step. Errors: CodeInvalid for a cost below 1 or above the burst, or a
// malformed user; CodeUnavailable when the store cannot be reached.
func (l *Limiter) Check(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	if err := checkCall(id, cost); err != nil {
		return usage.Decision{}, err
	}
	ctx, cancel := l.bound(ctx)
	defer cancel()
	now := l.now().UTC()
	key := rateKey(id)
	e := l.entry(id.UserID, now)

	e.mu.Lock()
	if e.fresh(now, l.ttl) {
		plan := e.plan
		if cost > e.g.Burst {
			e.mu.Unlock()
			return usage.Decision{}, usage.FieldErrorf("cost", "exceeds the burst of %d", e.g.Burst)
		}
		if plan.HardLimit && e.used+cost > plan.IncludedCalls {
			d := quotaRefusal(plan, e.period, e.used, now)
			e.mu.Unlock()
			return d, nil
		}
		e.used += cost // reserve
		g, period, used, gen := e.g, e.period, e.used, e.gen
		e.mu.Unlock()

		r, err := l.store.Take(ctx, key, now, g, cost)
		if err != nil || !r.Allowed {
			e.mu.Lock()
			if e.gen == gen {
				e.used -= cost
			}
			used = e.used
			e.mu.Unlock()
		}
		if err != nil {
			return usage.Decision{}, l.failed(ctx, err)
		}
		return decision(plan, period, used, r), nil
	}

	// Refresh: one round trip that also takes the GCRA step (two for a
	// user not seen before, or whose plan changed). Holding e.mu serialises
	// it with this user's reservations on this instance.
	plan, period, lc, used, err := l.refresh(ctx, e, id.UserID, key, now, cost)
	e.mu.Unlock()
	if err != nil {
		return usage.Decision{}, l.failed(ctx, err)
	}
	if !lc.Took {
		return quotaRefusal(plan, period, used, now), nil
	}
	return decision(plan, period, used, lc.Rate), nil
}

// CheckRate implements LimitChecker: one GCRA step for a call of cost by
// id under the terms in force (cached as Check caches them, else read),
// with no quota decision and no reservation against the quota. Its
// Decision's Quota is zero: the quota is not what it decided, and the
// usage it would show is not read on this path.
func (l *Limiter) CheckRate(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	if err := checkCall(id, cost); err != nil {
		return usage.Decision{}, err
	}
	ctx, cancel := l.bound(ctx)
	defer cancel()
	now := l.now().UTC()
	e := l.entry(id.UserID, now)
	e.mu.Lock()
	fresh := e.fresh(now, l.ttl)
	plan, g := e.plan, e.g
	e.mu.Unlock()
	if !fresh {
		sub, err := l.store.Subscription(ctx, id.UserID)
		if err != nil {
			return usage.Decision{}, l.failed(ctx, err)
		}
		plan = sub.At(now)
		g = NewGCRA(plan.RatePerSecond, plan.Burst)
	}
	if cost > g.Burst {
		return usage.Decision{}, usage.FieldErrorf("cost", "exceeds the burst of %d", g.Burst)
	}
	r, err := l.store.Take(ctx, rateKey(id), now, g, cost)
	if err != nil {
		return usage.Decision{}, l.failed(ctx, err)
	}
	return rateDecision(plan, r), nil
}

// bound returns ctx bounded by the decision timeout. A caller that waits
// for another decision of the same user (e.mu, held across its round
// trip) counts that wait in its own bound: the store gives up at once on
// a context already ended.
func (l *Limiter) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.timeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.timeout)
}

// failed is a decision's error: the store's, or, when the decision's own
// bound ended it, CodeUnavailable saying so (whatever the store made of
// its context's end).
func (l *Limiter) failed(ctx context.Context, err error) error {
	if l.timeout > 0 && errors.Is(context.Cause(ctx), context.DeadlineExceeded) && usage.ErrorCode(err) != usage.CodeInvalid {
		return &usage.Error{Code: usage.CodeUnavailable, RetryAfter: time.Second,
			Message: fmt.Sprintf("the usage limits could not be checked within %s; retry", l.timeout)}
	}
	return err
}

// refresh runs RateStore.Check for a call of cost at now under the user's
// terms, reading them first when e has none or the store reports them
// changed, and updates e. It returns the terms, the check and the used
// count after it. The caller holds e.mu.
func (l *Limiter) refresh(ctx context.Context, e *limitEntry, userID, key string, now time.Time, cost int64) (usage.Plan, usage.Period, *LimitCheck, int64, error) {
	for reads := 0; ; {
		if e.sub == nil {
			if reads == maxTermsReads {
				return usage.Plan{}, usage.Period{}, nil, 0, usage.Errorf(usage.CodeUnavailable, "the subscription of %s keeps changing; retry", userID)
			}
			sub, err := l.store.Subscription(ctx, userID)
			if err != nil {
				return usage.Plan{}, usage.Period{}, nil, 0, err
			}
			reads++
			e.sub = sub
		}
		// The terms in force now: a downgrade waiting for the period's end
		// takes over when that period is over (a fresh entry never spans
		// two periods).
		e.plan = e.sub.At(now)
		e.g = NewGCRA(e.plan.RatePerSecond, e.plan.Burst)
		plan := e.plan
		if cost > e.g.Burst {
			return usage.Plan{}, usage.Period{}, nil, 0, usage.FieldErrorf("cost", "exceeds the burst of %d", e.g.Burst)
		}
		period := usage.PeriodAt(e.sub.PeriodAnchor, now)
		var known int64
		if e.valid && e.period == period {
			known = e.used
		}
		lc, err := l.store.Check(ctx, LimitRequest{UserID: userID, Key: key, Now: now, Cost: cost, KnownUsed: known,
			Period: period, Included: plan.IncludedCalls, Hard: plan.HardLimit,
			GCRA: e.g, Version: e.sub.Version})
		if err != nil {
			return usage.Plan{}, usage.Period{}, nil, 0, err
		}
		if lc.Version != e.sub.Version {
			e.sub = nil // changed: read it again and decide under the new terms
			continue
		}
		e.valid, e.fetched, e.gen = true, now, e.gen+1
		e.period, e.used = period, lc.Used
		if lc.Took && lc.Rate.Allowed {
			e.used += cost
		}
		return plan, period, lc, e.used, nil
	}
}

// entry returns the user's cache entry, creating it.
func (l *Limiter) entry(userID string, now time.Time) *limitEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[userID]
	if ok {
		return e
	}
	if len(l.entries) >= maxLimitEntries {
		for k, old := range l.entries {
			if old.mu.TryLock() {
				if !old.fresh(now, l.ttl) {
					delete(l.entries, k)
				}
				old.mu.Unlock()
			}
		}
	}
	e = &limitEntry{}
	l.entries[userID] = e
	return e
}
