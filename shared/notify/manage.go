package notify

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Manager manages rules, endpoints and deliveries for their owners: what
// the analytics API's notification routes call. Service implements it.
type Manager interface {
	Rules(ctx context.Context, o Owner, f RuleFilter) ([]Rule, error)
	CreateRule(ctx context.Context, o Owner, r Rule) (*Rule, error)
	UpdateRule(ctx context.Context, o Owner, id string, in RuleInput) (*Rule, error)
	DeleteRule(ctx context.Context, o Owner, id string) error
	Endpoints(ctx context.Context, o Owner, f EndpointFilter) ([]Endpoint, error)
	CreateEndpoint(ctx context.Context, o Owner, userID string, in EndpointInput) (*Endpoint, error)
	UpdateEndpoint(ctx context.Context, o Owner, id string, in EndpointInput) (*Endpoint, error)
	DeleteEndpoint(ctx context.Context, o Owner, id string) error
	RotateSecret(ctx context.Context, o Owner, id string, overlap time.Duration) (*Endpoint, error)
	Deliveries(ctx context.Context, o Owner, f DeliveryFilter) ([]Delivery, error)
	Replay(ctx context.Context, o Owner, r ReplayRequest) (int, error)
}

var _ Manager = (*Service)(nil)

// Service manages rules, endpoints and deliveries for their owners: a
// user its own (it also sees its plan's rules), an admin everyone's. It
// is what the analytics API's notification routes call.
type Service struct {
	Store ManageStore
	// Queue, when set, gets a message for each replayed delivery (else the
	// deliver function's sweep finds them within a minute).
	Queue Queue
	// AllowPrivate lets endpoints point at private, loopback and
	// link-local addresses and use http: the local stack only.
	AllowPrivate bool
	// Now is the clock (required).
	Now func() time.Time
}

// notFound is what an owner gets for what is not its own: the same answer
// as for what does not exist.
func notFound(what string) error { return usage.Errorf(usage.CodeNotFound, "no such %s", what) }

// Rules lists the rules o sees: an admin those of the filter (all without
// one), a user its own and those of the plan it is on.
func (s *Service) Rules(ctx context.Context, o Owner, f RuleFilter) ([]Rule, error) {
	if !o.Admin {
		f = RuleFilter{UserID: &o.UserID, WithPlan: true}
	}
	return s.Store.Rules(ctx, f)
}

// CreateRule creates a rule: an admin's for a plan or a user, a user's for
// itself. Errors: CodeInvalid naming the field, CodeConflict.
func (s *Service) CreateRule(ctx context.Context, o Owner, r Rule) (*Rule, error) {
	if !o.Admin {
		r.PlanID, r.UserID = "", o.UserID
	}
	now := s.Now().UTC()
	r.ID, r.CreatedAt, r.UpdatedAt = NewID(), now, now
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.Store.CreateRule(ctx, r); err != nil {
		return nil, err
	}
	return &r, nil
}

// rule returns the rule id if o may change it: an admin any, a user its
// own (a plan's rule is not its to change: CodeForbidden).
func (s *Service) rule(ctx context.Context, o Owner, id string) (*Rule, error) {
	if !usage.IsUUID(id) {
		return nil, notFound("rule")
	}
	r, err := s.Store.Rule(ctx, id)
	if err != nil {
		return nil, err
	}
	if o.Admin {
		return r, nil
	}
	if r.PlanID != "" {
		return nil, usage.Errorf(usage.CodeForbidden, "this rule is your plan's; an admin changes it")
	}
	if r.UserID != o.UserID {
		return nil, notFound("rule")
	}
	return r, nil
}

// UpdateRule changes a rule's fields set in in.
func (s *Service) UpdateRule(ctx context.Context, o Owner, id string, in RuleInput) (*Rule, error) {
	r, err := s.rule(ctx, o, id)
	if err != nil {
		return nil, err
	}
	next, err := in.Apply(*r)
	if err != nil {
		return nil, err
	}
	next.UpdatedAt = s.Now().UTC()
	if err := s.Store.UpdateRule(ctx, next); err != nil {
		return nil, err
	}
	return &next, nil
}

// DeleteRule deletes a rule.
func (s *Service) DeleteRule(ctx context.Context, o Owner, id string) error {
	if _, err := s.rule(ctx, o, id); err != nil {
		return err
	}
	return s.Store.DeleteRule(ctx, id)
}

// Endpoints lists the endpoints o sees: a user its own, an admin those of
// the filter.
func (s *Service) Endpoints(ctx context.Context, o Owner, f EndpointFilter) ([]Endpoint, error) {
	if !o.Admin {
		f = EndpointFilter{UserID: &o.UserID}
	}
	return s.Store.Endpoints(ctx, f)
}

// endpoint returns the endpoint id if o may see it.
func (s *Service) endpoint(ctx context.Context, o Owner, id string) (*Endpoint, error) {
	if !usage.IsUUID(id) {
		return nil, notFound("endpoint")
	}
	e, err := s.Store.Endpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	if !o.Admin && e.UserID != o.UserID {
		return nil, notFound("endpoint")
	}
	return e, nil
}

// CreateEndpoint creates an endpoint with a new secret, returned with it
// (the one time it is shown besides a rotation). A user's is its own; an
// admin's is userID's, or the platform's when userID is "".
func (s *Service) CreateEndpoint(ctx context.Context, o Owner, userID string, in EndpointInput) (*Endpoint, error) {
	if !o.Admin {
		userID = o.UserID
	}
	if userID != "" && !usage.IsUUID(userID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	if in.URL == nil {
		return nil, usage.FieldErrorf("url", "is required")
	}
	if in.Enabled == nil {
		on := true
		in.Enabled = &on
	}
	now := s.Now().UTC()
	e, err := in.Apply(Endpoint{ID: NewID(), UserID: userID, CreatedAt: now, UpdatedAt: now}, s.AllowPrivate)
	if err != nil {
		return nil, err
	}
	if e.Secret, err = NewSecret(); err != nil {
		return nil, err
	}
	if err := s.Store.CreateEndpoint(ctx, e); err != nil {
		return nil, err
	}
	return &e, nil
}

// UpdateEndpoint changes an endpoint's fields set in in.
func (s *Service) UpdateEndpoint(ctx context.Context, o Owner, id string, in EndpointInput) (*Endpoint, error) {
	return s.change(ctx, o, id, func(e Endpoint) (Endpoint, error) {
		next, err := in.Apply(e, s.AllowPrivate)
		if err != nil {
			return e, err
		}
		next.UpdatedAt = s.Now().UTC()
		return next, nil
	})
}

// change applies f to o's endpoint id as the store holds it at that
// moment (ManageStore.UpdateEndpoint), so that a change made at the same
// time by another caller or by the dispatcher is not lost.
func (s *Service) change(ctx context.Context, o Owner, id string, f func(Endpoint) (Endpoint, error)) (*Endpoint, error) {
	if !usage.IsUUID(id) {
		return nil, notFound("endpoint")
	}
	return s.Store.UpdateEndpoint(ctx, id, func(e Endpoint) (Endpoint, error) {
		if !o.Admin && e.UserID != o.UserID {
			return e, notFound("endpoint")
		}
		return f(e)
	})
}

// DeleteEndpoint deletes an endpoint and its deliveries.
func (s *Service) DeleteEndpoint(ctx context.Context, o Owner, id string) error {
	if _, err := s.endpoint(ctx, o, id); err != nil {
		return err
	}
	return s.Store.DeleteEndpoint(ctx, id)
}

// RotateSecret gives the endpoint a new secret, returned with it; the old
// one keeps signing beside it for overlap (DefaultRotationOverlap when 0,
// at most MaxRotationOverlap), so that the receiver can change its own.
// A rotation during an overlap ends the older secret at once.
func (s *Service) RotateSecret(ctx context.Context, o Owner, id string, overlap time.Duration) (*Endpoint, error) {
	if overlap == 0 {
		overlap = DefaultRotationOverlap
	}
	if overlap < 0 || overlap > MaxRotationOverlap {
		return nil, usage.FieldErrorf("overlap_seconds", "must be between 0 and %d", int64(MaxRotationOverlap/time.Second))
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, err
	}
	return s.change(ctx, o, id, func(e Endpoint) (Endpoint, error) {
		now := s.Now().UTC()
		until := now.Add(overlap)
		e.PreviousSecret, e.PreviousExpiresAt, e.Secret, e.UpdatedAt = e.Secret, &until, secret, now
		return e, nil
	})
}

// Deliveries lists the deliveries o sees, newest first: a user's those of
// its own endpoints.
func (s *Service) Deliveries(ctx context.Context, o Owner, f DeliveryFilter) ([]Delivery, error) {
	if !o.Admin {
		f.UserID = &o.UserID
	}
	if f.EndpointID != nil && !usage.IsUUID(*f.EndpointID) {
		return nil, usage.FieldErrorf("endpoint_id", "must be a UUID")
	}
	if f.Status != nil && *f.Status != StatusPending && *f.Status != StatusDelivered && *f.Status != StatusFailed {
		return nil, usage.FieldErrorf("status", "must be pending, delivered or failed")
	}
	return s.Store.Deliveries(ctx, f)
}

// Replay sends one delivery again (DeliveryID), or every failed delivery
// of an endpoint created since Since (EndpointID): each gets one more
// attempt at once, with the event's id and body as before. It returns how
// many deliveries it made pending (at most MaxReplay).
func (s *Service) Replay(ctx context.Context, o Owner, r ReplayRequest) (int, error) {
	switch {
	case r.DeliveryID != "" && r.EndpointID == "":
		if !usage.IsUUID(r.DeliveryID) {
			return 0, notFound("delivery")
		}
		d, err := s.Store.Delivery(ctx, r.DeliveryID)
		if err != nil {
			return 0, err
		}
		if _, err := s.endpoint(ctx, o, d.EndpointID); err != nil {
			return 0, notFound("delivery")
		}
		if d.Status == StatusPending {
			return 0, usage.Errorf(usage.CodeConflict, "the delivery is still pending: its next attempt is due at %s",
				d.NextAttemptAt.UTC().Format(time.RFC3339))
		}
	case r.EndpointID != "" && r.DeliveryID == "":
		if _, err := s.endpoint(ctx, o, r.EndpointID); err != nil {
			return 0, err
		}
		if r.Since.IsZero() {
			return 0, usage.FieldErrorf("since", "is required to replay an endpoint's failed deliveries")
		}
	default:
		return 0, usage.Errorf(usage.CodeInvalid, "name a delivery_id, or an endpoint_id and since")
	}
	ids, err := s.Store.Replay(ctx, r, s.Now().UTC())
	if err != nil {
		return 0, err
	}
	if s.Queue != nil && len(ids) > 0 {
		msgs := make([]Message, len(ids))
		for i, id := range ids {
			msgs[i] = Message{DeliveryID: id}
		}
		// Not sent: the sweep finds them, due now.
		_ = s.Queue.Send(ctx, msgs)
	}
	return len(ids), nil
}
