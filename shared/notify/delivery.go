package notify

import (
	"context"
	"time"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Attempt outcomes.
const (
	// OutcomeDelivered: the endpoint answered 2xx.
	OutcomeDelivered = "delivered"
	// OutcomeFailed: another answer, a timeout, a refused connection.
	OutcomeFailed = "failed"
	// OutcomeRefused: the endpoint's address is one deliveries never go
	// to (Blocked); not retried.
	OutcomeRefused = "refused"
)

// Delivery is one event's delivery to one endpoint.
type Delivery struct {
	ID         string `json:"id"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	EndpointID string `json:"endpoint_id"`
	// UserID is the event's user.
	UserID        string     `json:"user_id,omitempty"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	RetryStep     int        `json:"-"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     string     `json:"last_error,omitempty"`
	Replays       int        `json:"replays"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	// Log is the delivery's latest attempts (at most LoggedAttempts),
	// first first.
	Log []Attempt `json:"attempts_log"`
}

// Attempt is one try of a delivery: when, the endpoint's answer (status
// and the start of its body, or what went wrong in our words) and how long
// it took.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"`
	Outcome    string    `json:"outcome"`
	Answer     string    `json:"answer"`
	LatencyMS  int64     `json:"latency_ms"`
	// Replay is true for an attempt asked for by a replay.
	Replay bool `json:"replay"`
}

// MaxAnswer bounds the part of an endpoint's answer the log keeps, in
// bytes.
const MaxAnswer = 1024

// Schedule is the wait before each retry of a failed delivery: the n-th
// retry comes Schedule[n-1] after the attempt before it.
type Schedule []time.Duration

// DefaultSchedule retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
// 10 h: eight attempts over 27 h 35 min (Svix's schedule).
var DefaultSchedule = Schedule{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// After returns the wait after a failed attempt at retry step step (0 for
// the first attempt), and false when the schedule is over.
func (s Schedule) After(step int) (time.Duration, bool) {
	if step < 0 || step >= len(s) {
		return 0, false
	}
	return s[step], true
}

// Span is the time from a first attempt to the last retry.
func (s Schedule) Span() time.Duration {
	var d time.Duration
	for _, w := range s {
		d += w
	}
	return d
}

// Defaults of the dispatcher.
const (
	// AttemptTimeout bounds one attempt: the endpoint has this long to
	// answer.
	AttemptTimeout = 15 * time.Second
	// DefaultDisableAfter is how long an endpoint may fail every attempt
	// before it is disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// MaxQueueDelay is the longest delay a queue message can carry (SQS).
	MaxQueueDelay = 15 * time.Minute
	// MaxReplay bounds the deliveries one replay makes pending again.
	MaxReplay = 1000
	// LoggedAttempts is how many of a delivery's attempts are kept and
	// shown (Delivery.Log): the latest. A delivery can be replayed any
	// number of times, and each attempt keeps the start of its answer,
	// so its log would otherwise grow without bound (past what one
	// answer of the API can carry); Attempts counts them all.
	LoggedAttempts = 20
	// ReplayStep is the retry step of a replayed delivery: its one attempt
	// is not retried (Schedule.After has no step so far).
	ReplayStep = 1000
)

// Request is one signed webhook request to send.
type Request struct {
	URL       string
	MessageID string
	Timestamp time.Time
	Body      []byte
	// Secrets sign the request (Endpoint.Secrets).
	Secrets []string
}

// Result is the outcome of one request.
type Result struct {
	Outcome string
	// StatusCode is the endpoint's answer (0 when there was none).
	StatusCode int
	// Answer is the start of the answer's body, or what went wrong in our
	// words.
	Answer  string
	Latency time.Duration
}

// Sender signs and sends webhook requests (shared/webhook).
type Sender interface {
	// Send sends r once, within AttemptTimeout; it never returns an error:
	// every failure is a Result.
	Send(ctx context.Context, r Request) Result
}

// Publisher puts events on the platform's bus (shared/alerts: EventBridge).
type Publisher interface {
	// Publish puts e on the bus; CodeUnavailable when it cannot be
	// reached.
	Publish(ctx context.Context, e Event) error
}

// Message is a message of the notify queue: an event to fan out, or a
// delivery to attempt; Delay is how long the queue hides it first (at most
// MaxQueueDelay).
type Message struct {
	EventID    string        `json:"event_id,omitempty"`
	DeliveryID string        `json:"delivery_id,omitempty"`
	Delay      time.Duration `json:"-"`
}

// Queue sends messages to the notify queue (shared/sqspub).
type Queue interface {
	// Send sends the messages; CodeUnavailable when the queue cannot be
	// reached. Messages that are not sent are found by Dispatcher.Sweep.
	Send(ctx context.Context, msgs []Message) error
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
