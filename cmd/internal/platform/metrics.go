package platform

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// maxSamples bounds the timings kept: the most recent requests' (about
// 5 MB).
const maxSamples = 100_000

// Metrics is what GET /metrics answers: the requests the service answered
// since Since (or since the oldest timing it still keeps), and its
// publisher's counters since it started.
type Metrics struct {
	Since    time.Time        `json:"since"`
	Requests int              `json:"requests"`
	ByStatus map[string]int   `json:"by_status"`
	Served   Latency          `json:"served"`
	Refused  Latency          `json:"refused"`
	Usage    PublisherMetrics `json:"publisher"`
}

// Latency summarises the server-side timings of a set of requests, in
// microseconds. Total runs from the service's entry to its return (the
// middleware, the limiter, the handler and the publish); Handler is the
// bare handler's share (the ServeMux and the route); Added is Total −
// Handler, taken per request: what metering adds. Refused requests (401,
// 429, the limiter's 503) never reach the handler: their Handler is 0.
type Latency struct {
	Count   int         `json:"count"`
	Total   Percentiles `json:"total_us"`
	Handler Percentiles `json:"handler_us"`
	Added   Percentiles `json:"added_us"`
}

// Percentiles of a set of durations, in microseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// PublisherMetrics are the usage publisher's counters since the service
// started.
type PublisherMetrics struct {
	FlushIntervalSeconds float64 `json:"flush_interval_seconds"`
	Published            int64   `json:"published"`
	Dropped              int64   `json:"dropped"`
	// SendMessageBatchCalls counts the publisher's SQS calls (each SDK
	// call once, retries inside the SDK not counted again).
	SendMessageBatchCalls int64 `json:"send_message_batch_calls"`
}

// sample is one request's timing.
type sample struct {
	at      time.Time
	total   time.Duration
	handler time.Duration
	served  bool // the middleware let the request through to the handler
	status  int
}

// timings keeps the most recent requests' samples in a ring.
type timings struct {
	now func() time.Time

	mu   sync.Mutex
	ring []sample
	next int
}

func newTimings(now func() time.Time) *timings {
	return &timings{now: now}
}

type sampleKey struct{}

// measure times the whole service: everything next does for a request.
// The sample travels in the request's context to handlerTime, inside the
// middleware.
func (t *timings) measure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &sample{at: t.now()}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), sampleKey{}, s)))
		s.total = t.now().Sub(s.at)
		s.status = sw.status
		if s.status == 0 {
			s.status = http.StatusOK
		}
		t.add(*s)
	})
}

// handlerTime times the bare handler. It passes the request on as it got
// it: the ServeMux sets the matched pattern on it, which the middleware
// reads after it served.
func (t *timings) handlerTime(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := t.now()
		next.ServeHTTP(w, r)
		if s, ok := r.Context().Value(sampleKey{}).(*sample); ok {
			s.handler, s.served = t.now().Sub(start), true
		}
	})
}

func (t *timings) add(s sample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ring) < maxSamples {
		t.ring = append(t.ring, s)
		return
	}
	t.ring[t.next] = s
	t.next = (t.next + 1) % maxSamples
}

// metrics summarises the samples taken at or after since.
func (t *timings) metrics(since time.Time) Metrics {
	t.mu.Lock()
	var picked []sample
	for _, s := range t.ring {
		if !s.at.Before(since) {
			picked = append(picked, s)
		}
	}
	t.mu.Unlock()
	m := Metrics{Since: since, Requests: len(picked), ByStatus: map[string]int{}}
	var served, refused []sample
	for i, s := range picked {
		if i == 0 || s.at.Before(m.Since) {
			m.Since = s.at
		}
		m.ByStatus[strconv.Itoa(s.status)]++
		if s.served {
			served = append(served, s)
		} else {
			refused = append(refused, s)
		}
	}
	if len(picked) == 0 || m.Since.Before(since) {
		m.Since = since
	}
	m.Served, m.Refused = latency(served), latency(refused)
	return m
}

func latency(ss []sample) Latency {
	total := make([]time.Duration, len(ss))
	handler := make([]time.Duration, len(ss))
	added := make([]time.Duration, len(ss))
	for i, s := range ss {
		total[i], handler[i], added[i] = s.total, s.handler, s.total-s.handler
	}
	return Latency{Count: len(ss), Total: percentiles(total), Handler: percentiles(handler), Added: percentiles(added)}
}

// percentiles returns the nearest-rank p50, p99 and max of d.
func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(float64(len(d))*p)) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	us := func(v time.Duration) float64 { return float64(v.Nanoseconds()) / 1e3 }
	return Percentiles{P50: us(rank(0.50)), P99: us(rank(0.99)), Max: us(d[len(d)-1])}
}

// statusWriter records the status the service answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
