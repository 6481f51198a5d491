package meter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// Problem types of the responses the middleware writes itself.
const (
	ProblemRateLimited   = "https://nexus.dev/problems/rate-limited"
	ProblemQuotaExceeded = "https://nexus.dev/problems/quota-exceeded"
	ProblemUnauthorized  = "https://nexus.dev/problems/unauthorized"
	ProblemUnavailable   = "https://nexus.dev/problems/unavailable"
	ProblemInternal      = "https://nexus.dev/problems/internal"
)

// Options configure the middleware.
type Options struct {
	// Logger logs publishing and infrastructure failures; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FlushEachRequest makes the net/http flavour flush the publisher after
	// every request. The Lambda flavour always flushes, as the Publisher
	// contract asks before a Lambda handler returns.
	FlushEachRequest bool
}

// Middleware meters requests. It is safe for concurrent use.
type Middleware struct {
	auth   usage.Authenticator
	limits usage.LimitChecker
	pub    usage.Publisher
	logger *slog.Logger
	now    func() time.Time
	flush  bool
}

// New returns the middleware.
func New(a usage.Authenticator, l usage.LimitChecker, p usage.Publisher, opts Options) *Middleware {
	m := &Middleware{auth: a, limits: l, pub: p, logger: opts.Logger, now: opts.Now, flush: opts.FlushEachRequest}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

type identityKey struct{}

// WithIdentity returns ctx carrying the caller.
func WithIdentity(ctx context.Context, id usage.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller the middleware authenticated.
func IdentityFrom(ctx context.Context) (usage.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(usage.Identity)
	return id, ok
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// refusal is a response the middleware writes instead of the handler's.
type refusal struct {
	problem Problem
	headers [][2]string
}

func (r *refusal) body() []byte {
	b, _ := json.Marshal(r.problem)
	return b
}

// decide authenticates and checks the limits. A nil refusal means the
// request may go on; the headers are to be added to the response.
func (m *Middleware) decide(ctx context.Context, h func(string) string, now time.Time) (usage.Identity, [][2]string, *refusal) {
	id, err := m.auth.Authenticate(ctx, h)
	if err != nil {
		return id, nil, m.errorRefusal(ctx, err)
	}
	d, err := m.limits.Check(ctx, id, 1)
	if err != nil {
		return id, nil, m.errorRefusal(ctx, err)
	}
	hdr := Headers(d, now)
	if d.Allowed {
		return id, hdr, nil
	}
	p := Problem{Type: ProblemRateLimited, Title: "Too Many Requests", Status: http.StatusTooManyRequests,
		Detail: fmt.Sprintf("rate limit of %d calls at %s/s exceeded; retry in %d s",
			d.Limit, strconv.FormatFloat(d.RatePerSecond, 'f', -1, 64), seconds(d.RetryAfter))}
	if d.Reason == usage.CodeQuotaExceeded {
		p.Type, p.Title = ProblemQuotaExceeded, "Quota Exceeded"
		p.Detail = fmt.Sprintf("the %d calls included in the billing period are used; the next period starts at %s",
			d.Quota.Included, d.Quota.Period.End.UTC().Format(time.RFC3339))
	}
	return id, nil, &refusal{problem: p, headers: hdr}
}

// errorRefusal maps an authentication or limiter error to a problem.
func (m *Middleware) errorRefusal(ctx context.Context, err error) *refusal {
	switch usage.ErrorCode(err) {
	case usage.CodeUnauthorized:
		return &refusal{problem: Problem{Type: ProblemUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized,
			Detail: usage.ErrorMessage(err)}, headers: [][2]string{{"WWW-Authenticate", `Bearer, ApiKey`}}}
	case usage.CodeUnavailable:
		m.logger.ErrorContext(ctx, "metering unavailable", "error", err)
		return &refusal{problem: Problem{Type: ProblemUnavailable, Title: "Service Unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the service is temporarily unavailable, retry"}, headers: [][2]string{{"Retry-After", "1"}}}
	}
	m.logger.ErrorContext(ctx, "metering failed", "error", err)
	return &refusal{problem: Problem{Type: ProblemInternal, Title: "Internal Server Error", Status: http.StatusInternalServerError,
		Detail: "internal error"}}
}

// Headers returns the response headers for a decision at now:
//
//	RateLimit-Policy: "burst";q=<burst>;w=<burst/rate, s>, "quota";q=<included>;w=<period, s>
//	RateLimit: "burst";r=<remaining>;t=<reset, s>, "quota";r=<quota remaining>;t=<period end, s>
//	X-RateLimit-Limit: <burst>
//	X-RateLimit-Remaining: <remaining>
//	X-RateLimit-Reset: <reset, s>
//	Retry-After: <retry after, s>            (refusals only)
//
// Durations are whole seconds rounded up; Retry-After is at least 1.
func Headers(d usage.Decision, now time.Time) [][2]string {
	window := int64(1)
	if d.RatePerSecond > 0 {
		window = max(1, int64(math.Ceil(float64(d.Limit)/d.RatePerSecond)))
	}
	period := d.Quota.Period
	h := [][2]string{
		{"RateLimit-Policy", fmt.Sprintf(`"burst";q=%d;w=%d, "quota";q=%d;w=%d`,
			d.Limit, window, d.Quota.Included, seconds(period.End.Sub(period.Start)))},
		{"RateLimit", fmt.Sprintf(`"burst";r=%d;t=%d, "quota";r=%d;t=%d`,
			d.Remaining, seconds(d.Reset), d.Quota.Remaining, seconds(period.End.Sub(now)))},
		{"X-RateLimit-Limit", strconv.FormatInt(d.Limit, 10)},
		{"X-RateLimit-Remaining", strconv.FormatInt(d.Remaining, 10)},
		{"X-RateLimit-Reset", strconv.FormatInt(seconds(d.Reset), 10)},
	}
	if !d.Allowed {
		h = append(h, [2]string{"Retry-After", strconv.FormatInt(max(1, seconds(d.RetryAfter)), 10)})
	}
	return h
}

// seconds rounds d up to whole seconds (0 for d ≤ 0).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// publish sends the usage event of a served request.
func (m *Middleware) publish(ctx context.Context, e usage.Event, flush bool) {
	id, err := uuid.NewV7()
	if err != nil {
		m.logger.ErrorContext(ctx, "usage event id", "error", err)
		return
	}
	e.Version, e.EventID, e.Quantity = usage.EventVersion, id.String(), 1
	if len(e.Endpoint) > usage.MaxEndpointBytes {
		e.Endpoint = e.Endpoint[:usage.MaxEndpointBytes]
	}
	if err := m.pub.Publish(ctx, e); err != nil {
		m.logger.ErrorContext(ctx, "usage event not published", "event_id", e.EventID, "user_id", e.UserID, "error", err)
		return
	}
	if flush {
		if err := m.pub.Flush(ctx); err != nil {
			m.logger.ErrorContext(ctx, "usage events not flushed", "user_id", e.UserID, "error", err)
		}
	}
}
