package limits

import (
	"context"
	"sync"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Read budget defaults: what template.yaml's ReadRatePerSecond and
// ReadBurst default to.
const (
	DefaultReadRatePerSecond = 2
	DefaultReadBurst         = 60
	// ReadCostDays is the range one unit of read budget pays for: a read
	// over a range costs a unit per started 31 days (a year: 12).
	ReadCostDays = 31
	// MaxReadCost is the cost of the longest read (MaxRangeDays): a read
	// budget's burst must hold it.
	MaxReadCost = (usage.MaxRangeDays + ReadCostDays - 1) / ReadCostDays
)

// maxBudgetRefusals bounds how many refused callers a Budget remembers.
const maxBudgetRefusals = 10_000

// BudgetChecker takes work from a caller's budget.
type BudgetChecker interface {
	// Take takes cost units from id's budget. A refusal is a Decision with
	// Allowed false and Reason CodeRateLimited, not an error; errors are
	// CodeUnavailable when the budget's state cannot be reached.
	Take(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error)
}

// BudgetOptions configure a Budget.
type BudgetOptions struct {
	// Name tells this budget's keys in the RateStore from the write path's
	// and from other budgets' ("read").
	Name string
	// RatePerSecond and Burst size the budget: Burst units at once, then
	// RatePerSecond units a second.
	RatePerSecond float64
	Burst         int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Budget is a per-caller GCRA allowance of work other than metered calls:
// the analytics API's reads, where one tenant's flood of year-long reports
// must not become everyone's slow database. Each caller (its API key, or
// the user of a JWT, as the write path's rate limit keys them) has its own
// budget of Burst units refilled at RatePerSecond, whose state lives in
// the RateStore like the write path's (one rate_limit_take a read), so
// that every instance of the function draws from the same budget. It
// implements BudgetChecker.
//
// A refused caller is remembered until the budget could next admit it:
// GCRA's admission time only moves later (other instances' admissions
// push it, nothing pulls it back), so a refusal from memory is exactly
// the refusal the store would give, and a flood past the budget costs no
// round trip after its first refusal on each instance.
//
// The example of postgres.NewRateStore builds a read budget and takes
// a read's cost (ReadCost) from it.
type Budget struct {
	store RateStore
	name  string
	plan  usage.Plan
	g     GCRA
	now   func() time.Time

	mu      sync.Mutex
	refused map[string]time.Time // by key: not before (for a cost of 1)
}

var _ BudgetChecker = (*Budget)(nil)

// NewBudget returns a budget over store (its Take alone is used).
func NewBudget(store RateStore, opts BudgetOptions) *Budget {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	burst := max(1, opts.Burst)
	return &Budget{store: store, name: opts.Name, now: opts.Now, refused: map[string]time.Time{},
		plan: usage.Plan{RatePerSecond: opts.RatePerSecond, Burst: burst}, g: NewGCRA(opts.RatePerSecond, burst)}
}

// Take implements BudgetChecker. A cost above the burst takes the whole
// burst: no wait would make more fit.
func (b *Budget) Take(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	cost = min(max(1, cost), b.g.Burst)
	key := b.name + ":" + rateKey(id)
	now := b.now().UTC()
	b.mu.Lock()
	notBefore, known := b.refused[key]
	b.mu.Unlock()
	if known && now.Before(notBefore) {
		// With T the interval, the theoretical arrival time is at least
		// notBefore + (Burst−1)·T, and a call of cost c fits (c−1)·T
		// after notBefore.
		t := time.Duration(b.g.IntervalMicros) * time.Microsecond
		return rateDecision(b.plan, RateResult{Reset: notBefore.Sub(now) + time.Duration(b.g.Burst-1)*t,
			RetryAfter: notBefore.Sub(now) + time.Duration(cost-1)*t}), nil
	}
	r, err := b.store.Take(ctx, key, now, b.g, cost)
	if err != nil {
		return usage.Decision{}, err
	}
	b.mu.Lock()
	if r.Allowed {
		delete(b.refused, key)
	} else {
		// The earliest a call of cost 1 fits: RetryAfter is for cost.
		at := now.Add(r.RetryAfter - time.Duration(cost-1)*time.Duration(b.g.IntervalMicros)*time.Microsecond)
		if len(b.refused) >= maxBudgetRefusals {
			for k, t := range b.refused {
				if !now.Before(t) {
					delete(b.refused, k)
				}
			}
			if len(b.refused) >= maxBudgetRefusals {
				b.refused = map[string]time.Time{}
			}
		}
		b.refused[key] = at
	}
	b.mu.Unlock()
	return rateDecision(b.plan, r), nil
}

// ReadCost is what a read over the range costs: a unit per started
// ReadCostDays days, at least 1.
func ReadCost(r usage.DayRange) int64 {
	return max(1, int64((r.Len()+ReadCostDays-1)/ReadCostDays))
}
