package limits

import (
	"time"

	"github.com/nexus/usage/shared/usage"
)

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

// decision is the decision of a GCRA step under p's rate limit and quota.
func decision(p usage.Plan, period usage.Period, used int64, r RateResult) usage.Decision {
	d := rateDecision(p, r)
	d.Quota = quota(p, period, used)
	return d
}

// rateDecision is the decision of a GCRA step under p's rate limit alone.
func rateDecision(p usage.Plan, r RateResult) usage.Decision {
	d := usage.Decision{
		Allowed:       r.Allowed,
		Limit:         int64(p.Burst),
		Remaining:     r.Remaining,
		Reset:         r.Reset,
		RetryAfter:    r.RetryAfter,
		RatePerSecond: p.RatePerSecond,
	}
	if !r.Allowed {
		d.Reason = usage.CodeRateLimited
	}
	return d
}
