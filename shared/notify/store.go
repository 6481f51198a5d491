package notify

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Store is everything the notification workflow keeps (shared/postgres's
// NotifyStore): the armer's, the dispatcher's and the management API's
// parts.
type Store interface {
	ArmStore
	DeliveryStore
	ManageStore
}

// PendingDay is a day of a user whose usage moved while its period was
// not armed under the current versions (written by the record path in the
// counters' transaction).
type PendingDay struct {
	UserID string
	Day    time.Time
}

// UserTerms are what arming a user reads: its subscription (free at the
// default anchor without one), its version, and the rules that may apply
// (its plan's, for every plan it may be on, and its own).
type UserTerms struct {
	Sub     *usage.Subscription
	Version int64
	Rules   []Rule
}

// ArmingState is what the armer reads in one snapshot: the epoch and each
// user's terms.
type ArmingState struct {
	Epoch int64
	Users map[string]*UserTerms
}

// Arming is one user's period armed under the versions it was computed
// from; EventIDs are the ids of the events its thresholds would raise
// (kept for thresholds armed before).
type Arming struct {
	UserID      string
	Days        PeriodDays
	Epoch       int64
	UserVersion int64
	Thresholds  []Threshold
	EventIDs    []string
}

// ArmStore is the armer's store.
type ArmStore interface {
	// Pending returns up to limit pending days, oldest mark first.
	Pending(ctx context.Context, limit int) ([]PendingDay, error)
	// ArmingState reads the epoch and the users' terms in one snapshot.
	ArmingState(ctx context.Context, userIDs []string) (*ArmingState, error)
	// Arm writes the armings (notify_arm): the periods, their thresholds
	// (those fired before stay fired), clears their pending days and fires
	// what each period has crossed already. It returns the events fired.
	Arm(ctx context.Context, a []Arming, now time.Time) ([]string, error)
	// Refire fires what the open periods armed since since have crossed
	// (notify_fire): a record transaction that ran beside an arming and
	// committed after it is counted here.
	Refire(ctx context.Context, since, now time.Time) ([]string, error)
}

// LeaseState is what Lease found.
type LeaseState int

// Lease states.
const (
	// Leased: the delivery is due and leased for one attempt.
	Leased LeaseState = iota
	// NotDue: its next attempt is later (Lease's due time).
	NotDue
	// Busy: another attempt holds it.
	Busy
	// Done: delivered, failed for good, or gone.
	Done
)

// Lease is a delivery leased for one attempt: the delivery, its endpoint,
// its event and the attempt's number.
type Lease struct {
	Delivery Delivery
	Endpoint Endpoint
	Event    Event
	Attempt  int
}

// Finished is an attempt's outcome and what becomes of its delivery and
// endpoint.
type Finished struct {
	DeliveryID string
	EndpointID string
	Attempt    Attempt
	// Status is the delivery's new status; NextAttemptAt and RetryStep
	// its next attempt while pending.
	Status        string
	NextAttemptAt *time.Time
	RetryStep     int
	// DisableBefore: an endpoint failing since at or before this instant
	// is disabled with DisabledEventID's EventEndpointDisabled.
	DisableBefore   time.Time
	DisabledEventID string
}

// DeliveryStore is the dispatcher's store.
type DeliveryStore interface {
	// FanOut creates the deliveries of the event (one per enabled
	// endpoint that wants it: the user's own and the platform's; none
	// twice) and marks it fanned out. It returns the event, whether it was
	// published on the bus, and its pending deliveries. CodeNotFound when
	// there is no such event.
	FanOut(ctx context.Context, eventID string, now time.Time) (*Event, bool, []string, error)
	// MarkPublished records that the event is on the bus.
	MarkPublished(ctx context.Context, eventID string, now time.Time) error
	// Waiting returns up to limit events raised before before that are not
	// fanned out, or (withBus) not published, oldest first.
	Waiting(ctx context.Context, before time.Time, withBus bool, limit int) ([]string, error)
	// Lease leases the delivery for an attempt at now for leaseFor. A
	// delivery whose endpoint is disabled fails for good (Done).
	Lease(ctx context.Context, deliveryID string, now time.Time, leaseFor time.Duration) (*Lease, LeaseState, time.Time, error)
	// Finish records the attempt and its outcome (one transaction); it
	// returns whether it disabled the endpoint.
	Finish(ctx context.Context, f Finished) (bool, error)
	// Overdue returns up to limit pending deliveries due before before and
	// not leased.
	Overdue(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// Owner is who manages rules and endpoints: one user (its own) or an
// admin (everyone's).
type Owner struct {
	UserID string
	Admin  bool
}

// EndpointFilter selects endpoints: a user's (UserID), the platform's
// (Platform), or all.
type EndpointFilter struct {
	UserID   *string
	Platform bool
}

// DeliveryFilter selects deliveries, newest first.
type DeliveryFilter struct {
	EndpointID *string
	UserID     *string // the owner of the endpoint
	Status     *string
	// Before is the cursor: deliveries created before it (and with a
	// smaller id at the same instant).
	Before *DeliveryCursor
	Limit  int
}

// DeliveryCursor is a position in a delivery list.
type DeliveryCursor struct {
	CreatedAt time.Time `json:"c"`
	ID        string    `json:"i"`
}

// ReplayRequest replays one delivery (DeliveryID), or every failed
// delivery of an endpoint created since Since (EndpointID).
type ReplayRequest struct {
	DeliveryID string
	EndpointID string
	Since      time.Time
}

// ManageStore is the management API's store.
type ManageStore interface {
	// Rules lists rules: a plan's, a user's, or all; with both filters,
	// the user's and the plan's.
	Rules(ctx context.Context, f RuleFilter) ([]Rule, error)
	// Rule returns one rule (CodeNotFound).
	Rule(ctx context.Context, id string) (*Rule, error)
	// CreateRule stores a new rule: CodeConflict when its owner has one of
	// the same kind and value, or MaxRules already.
	CreateRule(ctx context.Context, r Rule) error
	// UpdateRule stores r's kind, value, enabled and description
	// (CodeNotFound, CodeConflict).
	UpdateRule(ctx context.Context, r Rule) error
	// DeleteRule deletes a rule (CodeNotFound).
	DeleteRule(ctx context.Context, id string) error
	// Endpoints lists endpoints.
	Endpoints(ctx context.Context, f EndpointFilter) ([]Endpoint, error)
	// Endpoint returns one endpoint with its secrets (CodeNotFound).
	Endpoint(ctx context.Context, id string) (*Endpoint, error)
	// CreateEndpoint stores a new endpoint: CodeConflict when its owner has
	// MaxEndpoints already.
	CreateEndpoint(ctx context.Context, e Endpoint) error
	// UpdateEndpoint reads endpoint id under a lock on it, stores what
	// change makes of it (its fields and secrets) and returns that, in one
	// transaction: whatever else writes the endpoint meanwhile (a
	// delivery's outcome, another change) waits or is waited for, never
	// lost (CodeNotFound; change's own errors as it returns them, nothing
	// stored).
	UpdateEndpoint(ctx context.Context, id string, change func(Endpoint) (Endpoint, error)) (*Endpoint, error)
	// DeleteEndpoint deletes an endpoint and its deliveries (CodeNotFound).
	DeleteEndpoint(ctx context.Context, id string) error
	// Deliveries lists deliveries with their attempts, newest first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// Delivery returns one delivery with its attempts (CodeNotFound).
	Delivery(ctx context.Context, id string) (*Delivery, error)
	// Replay makes the deliveries r names pending again, due at now, for
	// one more attempt each, and returns their ids (at most
	// MaxReplay).
	Replay(ctx context.Context, r ReplayRequest, now time.Time) ([]string, error)
}
