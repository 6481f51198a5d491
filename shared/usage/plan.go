package usage

import (
	"math"
	"time"
)

// Plan IDs seeded by the migrations.
const (
	PlanFree       = "free"
	PlanPro        = "pro"
	PlanEnterprise = "enterprise"
)

// Plan is what a user pays for: calls included each billing period, whether
// the quota is hard (refuse at quota) or soft (allow and bill the overage),
// the rate limit, and the overage price (Price: its model, the price per
// OverageUnitSize calls, its tiers). Prices are in the currency's minor
// unit (cents for usd); a price that charges nothing means no overage
// billing.
type Plan struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	IncludedCalls int64   `json:"included_calls"`
	HardLimit     bool    `json:"hard_limit"`
	RatePerSecond float64 `json:"rate_per_second"`
	Burst         int     `json:"burst"`
	// PriceModel is one of PricePerUnit, PricePackage, PriceGraduated and
	// PriceVolume.
	PriceModel string `json:"price_model"`
	// OverageUnitSize is the N of every price "per N calls".
	OverageUnitSize int64 `json:"overage_unit_size"`
	// OverageUnitPrice is the price of OverageUnitSize calls of a per_unit
	// or package price; tiered prices carry theirs in Tiers.
	OverageUnitPrice int64  `json:"overage_unit_price"`
	Tiers            []Tier `json:"tiers,omitempty"`
	Currency         string `json:"currency"`
}

// Price returns the plan's overage price.
func (p Plan) Price() Price {
	return Price{Model: p.PriceModel, UnitSize: p.OverageUnitSize, UnitPrice: p.OverageUnitPrice, Tiers: p.Tiers, Currency: p.Currency}
}

// Overrides are per-user changes to a plan; nil fields keep the plan's value.
type Overrides struct {
	IncludedCalls    *int64   `json:"included_calls,omitempty"`
	HardLimit        *bool    `json:"hard_limit,omitempty"`
	RatePerSecond    *float64 `json:"rate_per_second,omitempty"`
	Burst            *int     `json:"burst,omitempty"`
	OverageUnitSize  *int64   `json:"overage_unit_size,omitempty"`
	OverageUnitPrice *int64   `json:"overage_unit_price,omitempty"`
	Currency         *string  `json:"currency,omitempty"`
	// PriceModel changes the plan's model; the overrides' Tiers then
	// replace the plan's (none for per_unit and package). Tiers alone
	// replace the tiers of a tiered plan.
	PriceModel *string `json:"price_model,omitempty"`
	Tiers      []Tier  `json:"tiers,omitempty"`
}

// OverrideNames are the JSON names of the overrides, in order.
var OverrideNames = []string{"included_calls", "hard_limit", "rate_per_second", "burst", "overage_unit_size",
	"overage_unit_price", "currency", "price_model", "tiers"}

// Merge returns the overrides with those of set applied over them and
// those named in unset (OverrideNames) dropped, back to the plan's values:
// a partial change of a subscription's terms. It returns CodeInvalid
// naming an unknown name of unset.
func (o Overrides) Merge(set Overrides, unset []string) (Overrides, error) {
	for _, n := range unset {
		switch n {
		case "included_calls":
			o.IncludedCalls = nil
		case "hard_limit":
			o.HardLimit = nil
		case "rate_per_second":
			o.RatePerSecond = nil
		case "burst":
			o.Burst = nil
		case "overage_unit_size":
			o.OverageUnitSize = nil
		case "overage_unit_price":
			o.OverageUnitPrice = nil
		case "currency":
			o.Currency = nil
		case "price_model":
			o.PriceModel = nil
		case "tiers":
			o.Tiers = nil
		default:
			return Overrides{}, FieldErrorf(n, "is not an override")
		}
	}
	if set.IncludedCalls != nil {
		o.IncludedCalls = set.IncludedCalls
	}
	if set.HardLimit != nil {
		o.HardLimit = set.HardLimit
	}
	if set.RatePerSecond != nil {
		o.RatePerSecond = set.RatePerSecond
	}
	if set.Burst != nil {
		o.Burst = set.Burst
	}
	if set.OverageUnitSize != nil {
		o.OverageUnitSize = set.OverageUnitSize
	}
	if set.OverageUnitPrice != nil {
		o.OverageUnitPrice = set.OverageUnitPrice
	}
	if set.Currency != nil {
		o.Currency = set.Currency
	}
	if set.PriceModel != nil {
		o.PriceModel = set.PriceModel
	}
	if set.Tiers != nil {
		o.Tiers = set.Tiers
	}
	return o, nil
}

// ChangedTerms lists what differs between two sets of terms: "plan_id",
// then the names of the plan's fields (as Plan marshals them: name,
// included_calls, hard_limit, rate_per_second, burst, price_model,
// overage_unit_size, overage_unit_price, tiers, currency) whose effective
// values differ.
func ChangedTerms(before, after Terms) []string {
	out := []string{}
	if before.PlanID != after.PlanID {
		out = append(out, "plan_id")
	}
	a, b := before.Effective, after.Effective
	for _, f := range []struct {
		name string
		same bool
	}{
		{"name", a.Name == b.Name},
		{"included_calls", a.IncludedCalls == b.IncludedCalls},
		{"hard_limit", a.HardLimit == b.HardLimit},
		{"rate_per_second", a.RatePerSecond == b.RatePerSecond},
		{"burst", a.Burst == b.Burst},
		{"price_model", a.PriceModel == b.PriceModel},
		{"overage_unit_size", a.OverageUnitSize == b.OverageUnitSize},
		{"overage_unit_price", a.OverageUnitPrice == b.OverageUnitPrice},
		{"tiers", sameTiers(a.Tiers, b.Tiers)},
		{"currency", a.Currency == b.Currency},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}

// MaxBurst is the largest burst a plan or an override may set: the
// subscription's terms keep it in a 32-bit integer column.
const MaxBurst = math.MaxInt32

// Bounds of a rate limit. The limiter counts in microseconds: a call's
// interval is 1e6 / rate_per_second of them, and a full burst's burst
// times that. Past MaxRatePerSecond the interval rounds to nothing; below
// MinRatePerSecond it leaves the int64 the limiter computes in (a rate of
// 1e-300 made an interval that wrapped around to one microsecond: no limit
// at all); and a burst that takes longer than MaxBurstRefill to come back
// overflows the limiter's arithmetic, refusing every call of the user.
const (
	MinRatePerSecond = 1e-6 // a call every 11.6 days
	MaxRatePerSecond = 1e6
	MaxBurstRefill   = 10 * 365 * 24 * time.Hour
)

// validRate reports whether r is a rate the limiter can apply.
func validRate(r float64) bool { return r >= MinRatePerSecond && r <= MaxRatePerSecond }

// rateRefusal is the error of a rate outside the bounds.
func rateRefusal() error {
	return FieldErrorf("rate_per_second", "must be between %g and %g", MinRatePerSecond, MaxRatePerSecond)
}

// Validate reports the first override that could never be applied.
func (o Overrides) Validate() error {
	switch {
	case o.IncludedCalls != nil && *o.IncludedCalls < 0:
		return FieldErrorf("included_calls", "must not be negative")
	case o.RatePerSecond != nil && !validRate(*o.RatePerSecond):
		return rateRefusal()
	case o.Burst != nil && (*o.Burst <= 0 || *o.Burst > MaxBurst):
		return FieldErrorf("burst", "must be between 1 and %d", MaxBurst)
	case o.OverageUnitSize != nil && *o.OverageUnitSize <= 0:
		return FieldErrorf("overage_unit_size", "must be positive")
	case o.OverageUnitPrice != nil && *o.OverageUnitPrice < 0:
		return FieldErrorf("overage_unit_price", "must not be negative")
	case o.Currency != nil && !isCurrency(*o.Currency):
		return FieldErrorf("currency", "must be a lowercase ISO 4217 code")
	case o.PriceModel != nil && !validModel(*o.PriceModel):
		return FieldErrorf("price_model", "must be per_unit, package, graduated or volume")
	case o.Tiers != nil:
		return ValidateTiers(o.Tiers, 0)
	}
	return nil
}

func validModel(m string) bool {
	switch m {
	case PricePerUnit, PricePackage, PriceGraduated, PriceVolume:
		return true
	}
	return false
}

// Validate reports the first part of the plan that could not price or
// limit anything: the checks of Overrides on the merged values, and the
// price as a whole (Price.Validate).
func (p Plan) Validate() error {
	switch {
	case p.IncludedCalls < 0:
		return FieldErrorf("included_calls", "must not be negative")
	case !validRate(p.RatePerSecond):
		return rateRefusal()
	case p.Burst <= 0 || p.Burst > MaxBurst:
		return FieldErrorf("burst", "must be between 1 and %d", MaxBurst)
	case float64(p.Burst)/p.RatePerSecond > MaxBurstRefill.Seconds():
		return FieldErrorf("burst", "of %d at %g calls a second takes more than %d years to come back", p.Burst, p.RatePerSecond,
			int(MaxBurstRefill.Hours()/24/365))
	case !isCurrency(p.Currency):
		return FieldErrorf("currency", "must be a lowercase ISO 4217 code")
	}
	return p.Price().Validate()
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// Apply returns the plan with the overrides applied: per-user values win.
func (p Plan) Apply(o Overrides) Plan {
	if o.IncludedCalls != nil {
		p.IncludedCalls = *o.IncludedCalls
	}
	if o.HardLimit != nil {
		p.HardLimit = *o.HardLimit
	}
	if o.RatePerSecond != nil {
		p.RatePerSecond = *o.RatePerSecond
	}
	if o.Burst != nil {
		p.Burst = *o.Burst
	}
	if o.OverageUnitSize != nil {
		p.OverageUnitSize = *o.OverageUnitSize
	}
	if o.OverageUnitPrice != nil {
		p.OverageUnitPrice = *o.OverageUnitPrice
	}
	if o.Currency != nil {
		p.Currency = *o.Currency
	}
	switch {
	case o.PriceModel != nil:
		p.PriceModel, p.Tiers = *o.PriceModel, o.Tiers
	case o.Tiers != nil:
		p.Tiers = o.Tiers
	}
	return p
}

// Bills reports whether usage above the included calls is charged: never
// on the free plan, otherwise when the price charges anything.
func (p Plan) Bills() bool { return p.ID != PlanFree && p.Price().Charges() }

// DefaultPeriodAnchor anchors the billing periods of a user without a
// subscription (the free plan): calendar months, UTC.
var DefaultPeriodAnchor = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Subscription ties a user to a plan. Effective is the plan with the user's
// overrides applied (Plan.Apply, the one place they are merged): the terms
// in force since the last change, unless Next has taken over.
type Subscription struct {
	UserID               string    `json:"user_id"`
	PlanID               string    `json:"plan_id"`
	Overrides            Overrides `json:"overrides"`
	Effective            Plan      `json:"effective"`
	StripeCustomerID     string    `json:"stripe_customer_id,omitempty"`
	StripeSubscriptionID string    `json:"stripe_subscription_id,omitempty"`
	PeriodAnchor         time.Time `json:"period_anchor"`
	// Next is a downgrade waiting for the end of the running period (its
	// From); nil when none. Subscription.At tells which terms are in force.
	Next *Terms `json:"next,omitempty"`
	// Version identifies what the subscription and its plan held when they
	// were read; the store changes it on every write of either, so a copy
	// kept in memory is checked by comparing versions. Opaque.
	Version string `json:"-"`
}

// Period is a half-open billing period [Start, End).
type Period struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Contains reports whether t falls in the period.
func (p Period) Contains(t time.Time) bool { return !t.Before(p.Start) && t.Before(p.End) }

// HasDay reports whether the calls of the UTC day day (its midnight, as
// the live counters key it) count in the period: the days from the one
// holding its start up to, not including, the one holding its end. The
// limiter and the counters' readers sum those, so that a period starting
// at 14:00 (an anchor migrated by SQL) counts its first day whole and its
// last day not at all, and each day is in one period.
func (p Period) HasDay(day time.Time) bool {
	return !day.Before(Day(p.Start)) && day.Before(Day(p.End))
}

// PeriodAt returns the monthly billing period anchored at anchor that holds
// t. Periods start on the anchor's day of month and time of day, clamped to
// the last day of shorter months (an anchor on the 31st bills from the 30th
// of April), and all arithmetic is in UTC.
func PeriodAt(anchor, t time.Time) Period {
	anchor, t = anchor.UTC(), t.UTC()
	k := (t.Year()-anchor.Year())*12 + int(t.Month()) - int(anchor.Month())
	start := addMonths(anchor, k)
	for start.After(t) {
		k--
		start = addMonths(anchor, k)
	}
	for {
		next := addMonths(anchor, k+1)
		if next.After(t) {
			return Period{Start: start, End: next}
		}
		k++
		start = next
	}
}

// PeriodBefore returns the period that ends where p starts.
func PeriodBefore(anchor time.Time, p Period) Period {
	return PeriodAt(anchor, p.Start.Add(-time.Nanosecond))
}

// addMonths adds k months to t, clamping the day to the target month's end.
func addMonths(t time.Time, k int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(k), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// Day returns the UTC calendar day holding t, as midnight UTC.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
