package limits

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/usage"
)

// DefaultCacheTTL is how long a user's plan and used count are reused.
const DefaultCacheTTL = time.Second

// maxEntries bounds the cache; past it, expired entries are swept.
const maxEntries = 50_000

// Options configure a Checker.
type Options struct {
	// CacheTTL is how long a user's plan and period usage are reused
	// before limit_check reads them again; 0 means DefaultCacheTTL and a
	// negative value disables the cache (every call runs limit_check).
	CacheTTL time.Duration
	// Alerter receives usage alerts; nil drops them (they are still
	// claimed).
	Alerter usage.Alerter
	// Thresholds are the alert thresholds in percent of the included
	// calls; nil means usage.DefaultAlertThresholds.
	Thresholds []int
	// Logger logs alert delivery failures; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means the DB's clock (db.Now).
	Now func() time.Time
}

// Checker implements usage.LimitChecker over PostgreSQL.
type Checker struct {
	limiter    *postgres.RateLimiter
	ttl        time.Duration
	alerter    usage.Alerter
	thresholds []int
	logger     *slog.Logger
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

var _ usage.LimitChecker = (*Checker)(nil)

// New returns a Checker over db. Build one per process (Lambda instance)
// and share it: its cache is what keeps the hot path at one statement.
func New(db *postgres.DB, opts Options) *Checker {
	c := &Checker{
		limiter:    postgres.NewRateLimiter(db),
		ttl:        opts.CacheTTL,
		alerter:    opts.Alerter,
		thresholds: opts.Thresholds,
		logger:     opts.Logger,
		now:        opts.Now,
		entries:    map[string]*entry{},
	}
	if c.ttl == 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.thresholds == nil {
		c.thresholds = usage.DefaultAlertThresholds
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.now == nil {
		c.now = func() time.Time { return db.Now() }
	}
	return c
}

// entry is what an instance knows about one user.
type entry struct {
	mu      sync.Mutex
	valid   bool
	gen     uint64
	fetched time.Time
	plan    usage.Plan
	gcra    usage.GCRA
	period  usage.Period
	// used is a lower bound of the period's usage: the counters at the
	// last refresh (at least what was known before) plus the calls
	// admitted (reserved) here since.
	used int64
}

func (e *entry) fresh(now time.Time, ttl time.Duration) bool {
	return e.valid && ttl > 0 && !now.Before(e.fetched) && now.Sub(e.fetched) < ttl && e.period.Contains(now)
}

// Key is the rate limiter key of a caller: its API key, or the user when it
// authenticated without one.
func Key(id usage.Identity) string {
	if id.APIKeyID != "" {
		return "k:" + id.APIKeyID
	}
	return "u:" + id.UserID
}

// Check decides a call of cost by id: the hard quota first (no round trip
// while the cache is fresh), then one GCRA step. Errors: CodeInvalid for a
// cost below 1 or above the burst, or a malformed user; CodeUnavailable
// when PostgreSQL cannot be reached.
func (c *Checker) Check(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	if cost < 1 {
		return usage.Decision{}, usage.FieldErrorf("cost", "must be at least 1")
	}
	if !usage.IsUUID(id.UserID) {
		return usage.Decision{}, usage.FieldErrorf("user_id", "must be a UUID")
	}
	now := c.now().UTC()
	key := Key(id)
	e := c.entry(id.UserID, now)

	e.mu.Lock()
	if e.fresh(now, c.ttl) {
		if cost > e.gcra.Burst {
			e.mu.Unlock()
			return usage.Decision{}, usage.FieldErrorf("cost", "exceeds the burst of %d", e.gcra.Burst)
		}
		if e.plan.HardLimit && e.used+cost > e.plan.IncludedCalls {
			d := quotaRefusal(e.plan, e.period, e.used, now)
			e.mu.Unlock()
			return d, nil
		}
		e.used += cost // reserve
		plan, g, period, used, gen := e.plan, e.gcra, e.period, e.used, e.gen
		e.mu.Unlock()

		r, err := c.limiter.Take(ctx, key, now, g, cost)
		if err != nil || !r.Allowed {
			e.mu.Lock()
			if e.gen == gen {
				e.used -= cost
			}
			used = e.used
			e.mu.Unlock()
		}
		if err != nil {
			return usage.Decision{}, err
		}
		return decision(plan, period, used, r), nil
	}

	// Refresh: one round trip that also takes the GCRA step. Holding e.mu
	// serialises it with this user's reservations on this instance.
	var known int64
	if e.valid && e.period.Contains(now) {
		known = e.used
	}
	lc, err := c.limiter.Check(ctx, id.UserID, key, now, cost, known, c.thresholds)
	if err != nil {
		e.mu.Unlock()
		return usage.Decision{}, err
	}
	e.valid, e.fetched, e.gen = true, now, e.gen+1
	e.plan, e.gcra, e.period, e.used = lc.Plan, lc.GCRA, lc.Period, lc.Used
	if lc.Took && lc.Rate.Allowed {
		e.used += cost
	}
	used := e.used
	e.mu.Unlock()

	c.emit(ctx, id.UserID, lc, now)
	switch {
	case !lc.Took:
		return quotaRefusal(lc.Plan, lc.Period, used, now), nil
	case cost > lc.GCRA.Burst:
		return usage.Decision{}, usage.FieldErrorf("cost", "exceeds the burst of %d", lc.GCRA.Burst)
	}
	return decision(lc.Plan, lc.Period, used, lc.Rate), nil
}

// entry returns the user's cache entry, creating it.
func (c *Checker) entry(userID string, now time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[userID]
	if ok {
		return e
	}
	if len(c.entries) >= maxEntries {
		for k, old := range c.entries {
			if old.mu.TryLock() {
				if !old.fresh(now, c.ttl) {
					delete(c.entries, k)
				}
				old.mu.Unlock()
			}
		}
	}
	e = &entry{}
	c.entries[userID] = e
	return e
}

// emit delivers the alerts this call claimed.
func (c *Checker) emit(ctx context.Context, userID string, lc *postgres.LimitCheck, now time.Time) {
	if c.alerter == nil {
		return
	}
	for _, t := range lc.Alerts {
		a := usage.Alert{UserID: userID, PlanID: lc.Plan.ID, Threshold: t, Period: lc.Period,
			Included: lc.Plan.IncludedCalls, Used: lc.Used, At: now}
		if err := c.alerter.Alert(ctx, a); err != nil {
			c.logger.ErrorContext(ctx, "usage alert not delivered", "user_id", userID,
				"threshold", t, "period_start", lc.Period.Start, "error", err)
		}
	}
}

func quota(p usage.Plan, period usage.Period, used int64) usage.QuotaStatus {
	return usage.QuotaStatus{Period: period, Included: p.IncludedCalls, Used: used,
		Remaining: max(0, p.IncludedCalls-used), Hard: p.HardLimit}
}

// quotaRefusal is the decision for a call over a hard quota: retry when the
// next period starts.
func quotaRefusal(p usage.Plan, period usage.Period, used int64, now time.Time) usage.Decision {
	return usage.Decision{
		Reason:        usage.CodeQuotaExceeded,
		Limit:         int64(p.Burst),
		RetryAfter:    period.End.Sub(now),
		RatePerSecond: p.RatePerSecond,
		Quota:         quota(p, period, used),
	}
}

func decision(p usage.Plan, period usage.Period, used int64, r usage.RateResult) usage.Decision {
	d := usage.Decision{
		Allowed:       r.Allowed,
		Limit:         int64(p.Burst),
		Remaining:     r.Remaining,
		Reset:         r.Reset,
		RetryAfter:    r.RetryAfter,
		RatePerSecond: p.RatePerSecond,
		Quota:         quota(p, period, used),
	}
	if !r.Allowed {
		d.Reason = usage.CodeRateLimited
	}
	return d
}
