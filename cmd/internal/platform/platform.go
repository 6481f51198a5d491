package platform

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

// DefaultFlushInterval is how long a usage event may wait in the service's
// publisher before it is sent (sqspub.Options.MaxAge; 100 buffered events
// send at once). It is part of the lag from a served request to its count,
// and that lag bounds how far a user's other Limiters can overshoot a hard
// quota (burst + rate × (cache TTL + lag)). Measured on the local stack
// (make lag, 5 s batching window): 1 s gives a lag of 3.7 s median, 6.1 s
// max, where the publisher's default 5 s gives 7.7 s and 10.2 s; it costs
// one SendMessageBatch call a second at most per instance while requests
// trickle in (0.9/s at 5 requests/s, against 0.2/s), none while idle, and
// one per 100 events under load either way. docs/metering.md has the figures.
const DefaultFlushInterval = time.Second

// Config configures the service.
type Config struct {
	// DatabaseURL is the metering system's PostgreSQL: the API keys and
	// the limiter's state.
	DatabaseURL string
	// MaxConns bounds the service's pool (default 8: one round trip per
	// decision, at most one key lookup per key and 30 s).
	MaxConns int32
	// SQS is the client of the usage queue's SQS; the service adds its
	// call counter to a copy.
	SQS *sqs.Client
	// QueueURL is the usage queue.
	QueueURL string
	// JWT verifies bearer tokens; API keys are always accepted.
	JWT auth.JWTConfig
	// FlushInterval is the publisher's MaxAge (default DefaultFlushInterval).
	FlushInterval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API is the running service. It is an http.Handler.
type API struct {
	db      *postgres.DB
	pub     *sqspub.Publisher
	handler http.Handler
	timings *timings
	flush   time.Duration
	sends   atomic.Int64
}

// New builds the service: its pool, authenticator, limiter and publisher,
// and the handler that puts the routes behind the middleware. Close
// releases them.
func New(ctx context.Context, c Config) (*API, error) {
	if c.DatabaseURL == "" || c.SQS == nil || c.QueueURL == "" {
		return nil, errors.New("platform: DatabaseURL, SQS and QueueURL are required")
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 8
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	verifier, err := auth.NewJWTVerifier(c.JWT)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: c.DatabaseURL, MaxConns: c.MaxConns})
	if err != nil {
		return nil, err
	}
	a := &API{db: db, flush: c.FlushInterval}
	client := sqs.New(c.SQS.Options(), func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, countSendMessageBatch(&a.sends))
	})
	a.pub = sqspub.New(client, c.QueueURL, sqspub.Options{MaxAge: c.FlushInterval, Logger: c.Logger, Now: c.Now})
	m := meter.New(
		&auth.Authenticator{Keys: auth.NewKeyCache(postgres.NewAPIKeyStore(db), auth.DefaultKeyCacheTTL, c.Now), JWT: verifier},
		limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Logger: c.Logger, Now: c.Now}),
		a.pub,
		meter.Options{Logger: c.Logger, Now: c.Now},
	)
	a.timings = newTimings(c.Now)
	a.handler = a.routes(m, newCatalogue(c.Now).routes())
	return a, nil
}

// routes is the service's root: the metered API, timed, beside the
// unmetered health and metrics endpoints.
func (a *API) routes(m *meter.Middleware, api http.Handler) http.Handler {
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	root.HandleFunc("GET /metrics", a.getMetrics)
	root.Handle("/", a.timings.measure(m.HTTP(a.timings.handlerTime(api))))
	return root
}

// ServeHTTP serves the service.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Metrics returns the timings of the requests answered at or after since,
// and the publisher's counters.
func (a *API) Metrics(since time.Time) Metrics {
	m := a.timings.metrics(since)
	m.Usage = a.publisherMetrics()
	return m
}

func (a *API) publisherMetrics() PublisherMetrics {
	p := PublisherMetrics{FlushIntervalSeconds: a.flush.Seconds(), SendMessageBatchCalls: a.sends.Load()}
	if a.pub != nil {
		p.Published, p.Dropped = a.pub.Stats()
	}
	return p
}

// getMetrics answers GET /metrics[?since=RFC 3339 time].
func (a *API) getMetrics(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, usage.CodeInvalid, "since: must be a date-time (RFC 3339)", "since")
			return
		}
		since = t
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a.Metrics(since))
}

// Close sends the usage events still buffered and closes the pool. Call
// it once the server stopped taking requests.
func (a *API) Close(ctx context.Context) error {
	err := a.pub.Close(ctx)
	a.db.Close()
	return err
}

// countSendMessageBatch counts the client's SendMessageBatch calls in n.
func countSendMessageBatch(n *atomic.Int64) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("CountSendMessageBatch",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok {
					n.Add(1)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}
