// Package limits decides, for every API call, "yes", "slow down" or "over
// quota": a GCRA rate limit per API key (per user when there is no key)
// whose state lives in PostgreSQL, and the billing period's quota of
// included calls against the live usage counters. It implements
// usage.LimitChecker.
//
//	c := limits.New(db, limits.Options{Alerter: alerts.NewLog(logger), Logger: logger})
//	d, err := c.Check(ctx, id, 1)
//	if err != nil { ... }          // CodeUnavailable: the limiter's state cannot be reached
//	if !d.Allowed { ... }          // d.Reason: usage.CodeRateLimited or usage.CodeQuotaExceeded
//
// # Round trips
//
// A decision is one round trip. The first call of a user on an instance,
// and the first after Options.CacheTTL, runs the SQL function limit_check:
// the effective plan, the billing period, the used calls of the period, the
// alert thresholds newly crossed, and the GCRA step, in one statement. Calls
// within the TTL reuse the plan and the used count from memory and run only
// the GCRA step (rate_limit_take). A hard-quota refusal within the TTL costs
// no round trip at all.
//
// # Worst-case overshoot of a hard quota
//
// A Checker keeps, per user, a lower bound of the period's usage: the
// counters read at the last refresh (never less than what it knew before)
// plus every call it admitted since. It reserves each call against that
// bound under a per-user lock, so one Checker alone never admits more than
// the N calls that were left: overshoot 0, whatever the concurrency and the
// TTL, even though the counters lag the admissions.
//
// What a Checker cannot see are calls admitted elsewhere (the other P−1
// instances serving the same user) that have not reached its estimate: calls
// admitted within the last TTL + L, where L is the recording lag (publisher
// flush, SQS batching window, the record function). Hence, with N calls
// left:
//
//	overshoot ≤ min((P−1)·N, K·(b + r·(TTL + L)))
//
// where each instance admits at most N, and the rate limit admits at most
// b + r·S calls per key in any window S (K keys of the user; JWT callers
// share one per-user key). For the free plan (r = 2/s, b = 10), TTL = 1 s
// and L ≈ 6 s: at most 24 calls per key. Tests: TestHardQuotaConcurrent
// (one instance, 50 concurrent requests: exactly N admitted) and
// TestHardQuotaTwoInstances (P = 2: N ≤ admitted ≤ 2N).
//
// # Usage alerts
//
// Alerts are checked on the refresh path, inside limit_check, against the
// period's usage (counters, or the instance's higher lower bound): when it
// reaches a threshold (80 % and 100 % of the included calls by default), the
// row (user, period start, threshold) is inserted into eco_usage_alerts with
// ON CONFLICT DO NOTHING; the one caller that gets it back emits the alert
// through the Alerter, so each threshold fires once per period however many
// instances race. An alert follows the crossing by at most TTL + L while the
// user keeps calling. A failed emission is logged and not retried (the
// claim row stays, so it is at most once per threshold and period).
package limits
