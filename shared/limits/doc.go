// Package limits decides whether a caller may make a call now: the rate
// limit (GCRA, per API key or per user) and the billing period's quota,
// combined into a usage.Decision by the Limiter over a RateStore (one round
// trip to the store per decision, its terms cached for DefaultCacheTTL),
// and the read budget of the analytics routes (Budget). GCRA is the
// reference of the arithmetic the store runs in SQL.
//
// It imports the vocabulary (shared/usage) and nothing else of this
// module; shared/postgres implements its RateStore.
package limits
