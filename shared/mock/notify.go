package mock

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/notify"
)

var (
	_ notify.DeliveryStore = (*DeliveryStore)(nil)
	_ notify.ArmStore      = (*ArmStore)(nil)
	_ notify.Sender        = SenderFn(nil)
)

// DeliveryStore is a notify.DeliveryStore.
type DeliveryStore struct {
	FanOutFn        func(ctx context.Context, eventID string, now time.Time) (*notify.Event, bool, []string, error)
	MarkPublishedFn func(ctx context.Context, eventID string, now time.Time) error
	WaitingFn       func(ctx context.Context, before time.Time, withBus bool, limit int) ([]string, error)
	LeaseFn         func(ctx context.Context, deliveryID string, now time.Time, leaseFor time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error)
	FinishFn        func(ctx context.Context, f notify.Finished) (bool, error)
	OverdueFn       func(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// FanOut calls FanOutFn.
func (s *DeliveryStore) FanOut(ctx context.Context, eventID string, now time.Time) (*notify.Event, bool, []string, error) {
	return s.FanOutFn(ctx, eventID, now)
}

// MarkPublished calls MarkPublishedFn.
func (s *DeliveryStore) MarkPublished(ctx context.Context, eventID string, now time.Time) error {
	return s.MarkPublishedFn(ctx, eventID, now)
}

// Waiting calls WaitingFn.
func (s *DeliveryStore) Waiting(ctx context.Context, before time.Time, withBus bool, limit int) ([]string, error) {
	return s.WaitingFn(ctx, before, withBus, limit)
}

// Lease calls LeaseFn.
func (s *DeliveryStore) Lease(ctx context.Context, deliveryID string, now time.Time, leaseFor time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error) {
	return s.LeaseFn(ctx, deliveryID, now, leaseFor)
}

// Finish calls FinishFn.
func (s *DeliveryStore) Finish(ctx context.Context, f notify.Finished) (bool, error) {
	return s.FinishFn(ctx, f)
}

// Overdue calls OverdueFn.
func (s *DeliveryStore) Overdue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return s.OverdueFn(ctx, before, limit)
}

// ArmStore is a notify.ArmStore.
type ArmStore struct {
	PendingFn     func(ctx context.Context, limit int) ([]notify.PendingDay, error)
	ArmingStateFn func(ctx context.Context, userIDs []string) (*notify.ArmingState, error)
	ArmFn         func(ctx context.Context, a []notify.Arming, now time.Time) ([]string, error)
	RefireFn      func(ctx context.Context, since, now time.Time) ([]string, error)
}

// Pending calls PendingFn.
func (s *ArmStore) Pending(ctx context.Context, limit int) ([]notify.PendingDay, error) {
	return s.PendingFn(ctx, limit)
}

// ArmingState calls ArmingStateFn.
func (s *ArmStore) ArmingState(ctx context.Context, userIDs []string) (*notify.ArmingState, error) {
	return s.ArmingStateFn(ctx, userIDs)
}

// Arm calls ArmFn.
func (s *ArmStore) Arm(ctx context.Context, a []notify.Arming, now time.Time) ([]string, error) {
	return s.ArmFn(ctx, a, now)
}

// Refire calls RefireFn.
func (s *ArmStore) Refire(ctx context.Context, since, now time.Time) ([]string, error) {
	return s.RefireFn(ctx, since, now)
}

// SenderFn is a notify.Sender: the function sends.
type SenderFn func(ctx context.Context, r notify.Request) notify.Result

// Send calls f.
func (f SenderFn) Send(ctx context.Context, r notify.Request) notify.Result { return f(ctx, r) }
