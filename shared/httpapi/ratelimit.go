package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// RateLimitHeaders returns the headers that carry a limit decision taken at
// now, the same on every answer that has one (the middleware's responses,
// allowed or refused, and POST /v1/limits/check):
//
//	RateLimit-Policy: "burst";q=<burst>;w=<burst/rate, s>, "quota";q=<included>;w=<period, s>
//	RateLimit: "burst";r=<remaining>;t=<reset, s>, "quota";r=<quota remaining>;t=<to period end, s>
//	X-RateLimit-Limit: <burst>
//	X-RateLimit-Remaining: <remaining>
//	X-RateLimit-Reset: <reset, s>
//	Retry-After: <retry after, s>            (refusals only)
//
// RateLimit-Policy and RateLimit are the Structured Field lists of
// draft-ietf-httpapi-ratelimit-headers-10 (a quoted policy name with q
// and w; r and t; unchanged since -08); the X-RateLimit-* headers are the
// widespread older form, in delta seconds. Durations are whole seconds
// rounded up; Retry-After is at least 1. A decision without a quota (zero
// Quota, as LimitChecker.CheckRate returns) has no "quota" policy: it
// decided the rate limit alone and says nothing of the usage.
func RateLimitHeaders(d usage.Decision, now time.Time) map[string]string {
	window := int64(1)
	if d.RatePerSecond > 0 {
		window = max(1, int64(math.Ceil(float64(d.Limit)/d.RatePerSecond)))
	}
	policy := fmt.Sprintf(`"burst";q=%d;w=%d`, d.Limit, window)
	limit := fmt.Sprintf(`"burst";r=%d;t=%d`, d.Remaining, Seconds(d.Reset))
	if p := d.Quota.Period; !p.End.IsZero() {
		policy += fmt.Sprintf(`, "quota";q=%d;w=%d`, d.Quota.Included, Seconds(p.End.Sub(p.Start)))
		limit += fmt.Sprintf(`, "quota";r=%d;t=%d`, d.Quota.Remaining, Seconds(p.End.Sub(now)))
	}
	h := map[string]string{
		"RateLimit-Policy":      policy,
		"RateLimit":             limit,
		"X-RateLimit-Limit":     strconv.FormatInt(d.Limit, 10),
		"X-RateLimit-Remaining": strconv.FormatInt(d.Remaining, 10),
		"X-RateLimit-Reset":     strconv.FormatInt(Seconds(d.Reset), 10),
	}
	if !d.Allowed {
		h["Retry-After"] = strconv.FormatInt(max(1, Seconds(d.RetryAfter)), 10)
	}
	return h
}

// Refusal returns the 429 problem+json response of a refused decision
// taken at now, with the rate limit headers. Its type names the reason:
// urn:nexus:problem:rate_limited or urn:nexus:problem:quota_exceeded.
func Refusal(d usage.Decision, now time.Time) Response {
	p := Problem{Type: ProblemType(usage.CodeRateLimited), Title: http.StatusText(http.StatusTooManyRequests),
		Status: http.StatusTooManyRequests,
		Detail: fmt.Sprintf("rate limit of %d calls at %s/s exceeded; retry in %d s",
			d.Limit, strconv.FormatFloat(d.RatePerSecond, 'f', -1, 64), max(1, Seconds(d.RetryAfter)))}
	if d.Reason == usage.CodeQuotaExceeded {
		p.Type = ProblemType(usage.CodeQuotaExceeded)
		p.Detail = fmt.Sprintf("the %d calls included in the billing period are used; the next period starts at %s",
			d.Quota.Included, d.Quota.Period.End.UTC().Format(time.RFC3339))
	}
	resp := ProblemResponse(p)
	for k, v := range RateLimitHeaders(d, now) {
		resp.Headers[k] = v
	}
	return resp
}

// Seconds rounds d up to whole seconds (0 for d ≤ 0), as every duration in
// a header or body of the API is given.
func Seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
