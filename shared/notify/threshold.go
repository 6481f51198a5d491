package notify

import (
	"math"
	"math/big"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// PeriodDays is a billing period as the live counters see it: the UTC
// days [FirstDay, EndDay) whose calls it sums (a period starting at 10:00
// counts its first day whole and its last day not at all, as the limiter
// and the counters' readers do).
type PeriodDays struct {
	Period   usage.Period
	FirstDay time.Time
	EndDay   time.Time
}

// PeriodOfDay returns the period, anchored at anchor, whose days hold day.
func PeriodOfDay(anchor, day time.Time) PeriodDays {
	p := usage.PeriodAt(anchor, usage.Day(day).Add(24*time.Hour-time.Nanosecond))
	return PeriodDays{Period: p, FirstDay: usage.Day(p.Start), EndDay: usage.Day(p.End)}
}

// Threshold is a rule turned into calls for one user and period: the
// event the first crossing raises, of type EventType, when the period's
// used calls reach Calls.
type Threshold struct {
	RuleID    string
	EventType string
	Calls     int64
	// Data is the event's data but for what the crossing adds (the used
	// calls, when).
	Data Crossing
}

// RuleRef names the rule of a crossing.
type RuleRef struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Value int64  `json:"value"`
	// Scope is "plan" (a plan's default) or "user" (the user's own).
	Scope       string `json:"scope"`
	Description string `json:"description,omitempty"`
}

// Crossing is the data of a threshold event (EventThreshold, EventOverage,
// EventQuota).
type Crossing struct {
	UserID string       `json:"user_id"`
	PlanID string       `json:"plan_id"`
	Rule   RuleRef      `json:"rule"`
	Period usage.Period `json:"period"`
	// IncludedCalls and HardLimit are the terms the threshold was computed
	// under.
	IncludedCalls int64 `json:"included_calls"`
	HardLimit     bool  `json:"hard_limit"`
	// ThresholdCalls is the used calls at which the rule is reached.
	ThresholdCalls int64 `json:"threshold_calls"`
	// ThresholdPercent is a percent rule's percentage (the field the
	// EventBridge alerts of limits.Limiter carried).
	ThresholdPercent *int64 `json:"threshold_percent,omitempty"`
	// Amount and Currency are an overage rule's amount.
	Amount   *int64 `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
	// UsedCalls is the period's calls counted when the crossing was
	// recorded, and CrossedAt when.
	UsedCalls int64     `json:"used_calls"`
	CrossedAt time.Time `json:"crossed_at"`
}

// Thresholds turns the user's rules into thresholds of period p under the
// terms in force at at (sub.At): a plan's rules apply when it is the plan
// in force, a user's own always. Disabled rules, and rules the terms can
// never reach, give none: percent rules of a plan without included calls,
// quota rules of a plan without a hard limit (or included calls), overage
// rules of terms that never bill or never bill that much. An overage rule
// is priced as one segment under the terms in force, with the period's
// whole included calls: after a plan change within the period it is
// reached where those terms alone would have billed that much.
func Thresholds(sub *usage.Subscription, rules []Rule, p usage.Period, at time.Time) []Threshold {
	plan := sub.At(at)
	var out []Threshold
	for _, r := range rules {
		if !r.Enabled || (r.PlanID != "" && r.PlanID != plan.ID) || (r.UserID != "" && r.UserID != sub.UserID) {
			continue
		}
		c := Crossing{UserID: sub.UserID, PlanID: plan.ID, Period: p, IncludedCalls: plan.IncludedCalls, HardLimit: plan.HardLimit,
			Rule: RuleRef{ID: r.ID, Kind: r.Kind, Value: r.Value, Scope: r.Scope(), Description: r.Description}}
		var calls int64
		switch r.Kind {
		case KindPercent:
			if plan.IncludedCalls <= 0 {
				continue
			}
			calls = ceilPercent(plan.IncludedCalls, r.Value)
			pct := r.Value
			c.ThresholdPercent = &pct
		case KindCalls:
			calls = r.Value
		case KindQuota:
			if !plan.HardLimit || plan.IncludedCalls <= 0 {
				continue
			}
			calls = plan.IncludedCalls
		case KindOverage:
			if !plan.Bills() {
				continue
			}
			billable, ok := CallsForAmount(plan.Price(), r.Value)
			if !ok || billable > math.MaxInt64-plan.IncludedCalls {
				continue
			}
			calls = plan.IncludedCalls + billable
			amount := r.Value
			c.Amount, c.Currency = &amount, plan.Currency
		default:
			continue
		}
		c.ThresholdCalls = max(calls, 1)
		out = append(out, Threshold{RuleID: r.ID, EventType: r.EventType(), Calls: c.ThresholdCalls, Data: c})
	}
	return out
}

// ceilPercent returns ⌈n × pct / 100⌉, saturating at the int64 maximum.
func ceilPercent(n, pct int64) int64 {
	num := new(big.Int).Mul(big.NewInt(n), big.NewInt(pct))
	num.Add(num, big.NewInt(99))
	num.Quo(num, big.NewInt(100))
	if !num.IsInt64() {
		return math.MaxInt64
	}
	return num.Int64()
}

// CallsForAmount returns the fewest billable calls that pr charges at
// least amount for, and false when no number of calls does. Within one
// tier a price only rises with the calls, so each tier (the whole range
// for untiered prices) is searched by bisection and the first that
// reaches the amount wins; a volume price, which may charge less past a
// tier's bound, is thus reached where it first charges that much. A
// price that does not validate (a plan row written by SQL beyond the
// bounds, or off its currency's step) charges nothing, as the billing run
// bills nothing under it, and reaches no amount.
func CallsForAmount(pr usage.Price, amount int64) (int64, bool) {
	if pr.Validate() != nil {
		return 0, false
	}
	if amount <= 0 {
		return 1, true
	}
	charge := func(calls int64) int64 {
		c, err := pr.Charge(calls)
		if err != nil {
			return math.MaxInt64 // beyond what a ledger row holds: more than any amount
		}
		return c.Amount
	}
	ranges := [][2]int64{{1, MaxCalls}}
	if pr.Model == usage.PriceGraduated || pr.Model == usage.PriceVolume {
		ranges = ranges[:0]
		lo := int64(1)
		for _, t := range pr.Tiers {
			hi := int64(MaxCalls)
			if t.UpTo != nil {
				hi = min(*t.UpTo, MaxCalls)
			}
			if hi >= lo {
				ranges = append(ranges, [2]int64{lo, hi})
			}
			lo = hi + 1
		}
	}
	for _, r := range ranges {
		lo, hi := r[0], r[1]
		if charge(hi) < amount {
			continue
		}
		for lo < hi {
			mid := lo + (hi-lo)/2
			if charge(mid) >= amount {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		return lo, true
	}
	return 0, false
}
