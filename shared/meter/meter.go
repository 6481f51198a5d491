package meter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
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
	// DecisionTimeout bounds each request's decision (authenticating the
	// caller and checking its limits): past it the request is refused
	// with a 503, failing closed, whatever the request's own context. 0
	// means usage.DecisionTimeout; a negative value leaves the request's
	// context as the only bound.
	DecisionTimeout time.Duration
}

// Middleware meters requests. It is safe for concurrent use.
type Middleware struct {
	auth    usage.Authenticator
	limits  usage.LimitChecker
	pub     usage.Publisher
	logger  *slog.Logger
	now     func() time.Time
	flush   bool
	timeout time.Duration
}

// New returns the middleware.
func New(a usage.Authenticator, l usage.LimitChecker, p usage.Publisher, opts Options) *Middleware {
	m := &Middleware{auth: a, limits: l, pub: p, logger: opts.Logger, now: opts.Now, flush: opts.FlushEachRequest,
		timeout: opts.DecisionTimeout}
	if m.timeout == 0 {
		m.timeout = usage.DecisionTimeout
	}
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

// decide authenticates and checks the limits. A nil refusal means the
// request may go on, and the headers are to be added to its response;
// otherwise the refusal is the response: the problem of an authentication
// or limiter error, or the 429 of a refused decision.
func (m *Middleware) decide(ctx context.Context, header func(string) string, now time.Time) (usage.Identity, map[string]string, *httpapi.Response) {
	if m.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	id, err := m.auth.Authenticate(ctx, header)
	if err != nil {
		resp := httpapi.Error(ctx, m.logger, m.failed(ctx, err))
		return id, nil, &resp
	}
	d, err := m.limits.Check(ctx, id, 1)
	if err != nil {
		resp := httpapi.Error(ctx, m.logger, m.failed(ctx, err))
		return id, nil, &resp
	}
	if !d.Allowed {
		resp := httpapi.Refusal(d, now)
		return id, nil, &resp
	}
	return id, httpapi.RateLimitHeaders(d, now), nil
}

// failed is a decision's error: its own, or, when the decision's bound
// ended it, CodeUnavailable saying so (whatever the store made of its
// context's end).
func (m *Middleware) failed(ctx context.Context, err error) error {
	switch usage.ErrorCode(err) {
	case usage.CodeUnauthorized, usage.CodeForbidden, usage.CodeInvalid:
		return err
	}
	if m.timeout > 0 && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return &usage.Error{Code: usage.CodeUnavailable, RetryAfter: time.Second,
			Message: fmt.Sprintf("the caller could not be authenticated and its limits checked within %s; retry", m.timeout)}
	}
	return err
}

// publish sends the usage event of a served request. What the request
// carried that an event cannot describe exactly is normalised, never a
// reason to drop the event: an unknown method is recorded as
// usage.MethodOther, an endpoint is escaped and cut by
// usage.NormalizeEndpoint, a status outside 100–599 is clamped into it, and
// so are a latency outside 0–usage.MaxLatencyMS (a stream held open for
// hours) and byte counts outside 0–usage.MaxTransferBytes (a client may
// declare any Content-Length for a body the handler never reads). An
// event the publisher refuses is logged with all its fields, so that it can
// be replayed from the log; the publisher counts it as dropped.
func (m *Middleware) publish(ctx context.Context, e usage.Event, flush bool) {
	id, err := uuid.NewV7()
	if err != nil {
		m.logger.ErrorContext(ctx, "usage event id", "error", err)
		return
	}
	e.Version, e.EventID, e.Quantity = usage.EventVersion, id.String(), 1
	e.Method = usage.NormalizeMethod(e.Method)
	e.Endpoint = usage.NormalizeEndpoint(e.Endpoint)
	e.StatusCode = min(max(e.StatusCode, 100), 599)
	e.LatencyMS = min(max(e.LatencyMS, 0), usage.MaxLatencyMS)
	e.RequestBytes = min(max(e.RequestBytes, 0), usage.MaxTransferBytes)
	e.ResponseBytes = min(max(e.ResponseBytes, 0), usage.MaxTransferBytes)
	if err := m.pub.Publish(ctx, e); err != nil {
		m.logger.ErrorContext(ctx, "usage event not published: the request was served but is not counted; replay this event",
			"event", e, "code", usage.ErrorCode(err), "reason", usage.ErrorMessage(err))
		return
	}
	if flush {
		if err := m.pub.Flush(ctx); err != nil {
			m.logger.ErrorContext(ctx, "usage events not flushed", "user_id", e.UserID, "code", usage.ErrorCode(err), "reason", usage.ErrorMessage(err))
		}
	}
}
